"""The checks of lab configs (labkit/checks/configs.py) through each of their outcomes, on the fake cluster
of tests/fakes.py, with the steps, hints and explanations of labs/16-configs.toml. The scenes follow the lab:
the configs site-v1 (nginx's configuration) and page-v1 (its page), the service web (nginx, 3 replicas, port
8080 in host mode) mounting them, page-v2 beside page-v1, page-v2 swapped into web (its tasks replaced), and
the clean-up. Each staged mistake (a config without `target=`, a server config where nginx never reads it,
a server block without /whoami, a config nginx refuses, an update not run) gets its own words.
"""

from __future__ import annotations

from unittest.mock import ANY

from tests.fakes import FakeLab, Json, swarm_lab
from tests.test_checks_offline import (  # noqa: F401 (no_real_engine: autouse, so no real engine here either)
    answer_of,
    explain,
    failed,
    foreign_swarm_on_worker1,
    hints,
    no_real_engine,
    passed,
    run_check,
    step_for,
    wrong_answer,
)

CONFIG_CHECKS = ["configs_stored", "configs_served", "config_in_use", "config_versioned", "config_rolled",
                 "configs_removed"]
ALL_NODES = ("manager1", "worker1", "worker2")
NGINX_CONF, INDEX = "/etc/nginx/nginx.conf", "/usr/share/nginx/html/index.html"
PAGE_V1, PAGE_V2 = "<h1>Hello from page v1</h1>\n", "<h1>Hello from page v2</h1>\n"
SITE = "user www-data;\nevents {}\nhttp {\n    server {\n        listen 80;\n    }\n}\n"
HOST_8080: Json = {"PublishedPort": 8080, "PublishMode": "host"}
IPVS = "/proc/sys/net/ipv4/vs"


# --- scenes, in the lab's order -------------------------------------------------------------------


def stored_lab(names: tuple[str, ...] = ("site-v1", "page-v1")) -> FakeLab:
    """create done: the configs NAMES, made on manager1."""
    lab = swarm_lab()
    for name in names:
        lab.config(name, SITE if name.startswith("site") else PAGE_V1, at=5)
    return lab


def served_lab(page_target: str | None = INDEX, site_target: str | None = NGINX_CONF, ports: tuple[Json, ...] =
               (HOST_8080,), on: tuple[str, ...] = ALL_NODES, whoami: bool = True) -> tuple[FakeLab, Json]:
    """serve done: web (nginx, 3 replicas, tasks on ON) mounting site-v1 at SITE_TARGET and page-v1 at
    PAGE_TARGET (None: `--config NAME` with no target), publishing PORTS; WHOAMI: whether the server block
    kept /whoami."""
    lab = stored_lab()
    web = lab.service("web", replicas=3, on=on, image="nginx:latest", args=(), ports=ports, at=10)
    lab.use_config(web, "site-v1", site_target)
    lab.use_config(web, "page-v1", page_target)
    lab.serve_nginx(web, created=True, whoami=whoami)
    return lab, web


def versioned_lab(text: str = PAGE_V2) -> tuple[FakeLab, Json]:
    """new-page done: page-v2 (of TEXT) beside page-v1."""
    lab, web = served_lab()
    lab.config("page-v2", text, at=30)
    return lab, web


def rolled_lab(target: str | None = INDEX, remove: tuple[str, ...] = ("page-v1",),
               state: str = "completed") -> tuple[FakeLab, Json]:
    """roll done: page-v2 swapped into web at TARGET (removing REMOVE), its tasks replaced on every node;
    the update in STATE."""
    lab, web = versioned_lab()
    lab.use_config(web, "page-v2", target, remove=remove)
    web["UpdateStatus"] = {"State": state, "Message": f"update {state}"}
    lab.move(web, ALL_NODES, at=40)
    lab.serve_nginx(web)
    return lab, web


def failed_task(lab: FakeLab, web: Json, node: str = "worker1", slot: int = 1,
                err: str = "task: non-zero exit (1)") -> Json:
    """A task of web (with its current spec) that failed as it started: nginx exited."""
    task = lab.task(web, node, slot, state="failed", at=12)
    task["DesiredState"] = "shutdown"
    task["Status"]["Err"] = err
    return task


# --- configs:create --------------------------------------------------------------------------------


def test_configs_stored_none_yet():
    result = run_check("configs_stored", swarm_lab(), "yes")
    failed(result, "There is no config called site-v1 or page-v1 yet.", hint=hints("configs_stored")[0])
    assert result.evidence == ("configs in the swarm: none",)


def test_configs_stored_another_name_gets_the_rename_hint():
    lab = stored_lab(("site-v1", "page"))
    result = run_check("configs_stored", lab, "yes")
    failed(result, "There is no config called page-v1 yet.", hint="A config's name is fixed")
    assert result.evidence == ("configs in the swarm: page, site-v1",)


def test_configs_stored_yes_is_right_the_content_shows():
    lab = stored_lab()
    assert answer_of("configs_stored", lab) == "yes"
    result = run_check("configs_stored", lab, "Yes, it does.")
    passed(result, "Right: Yes, it does")
    assert result.evidence == (
        "site-v1: 72 bytes, 7 line(s), shown by the API as it was given: 'user www-data;'",
        "page-v1: 28 bytes, 1 line(s), shown by the API as it was given: '<h1>Hello from page v1</h1>'",
    )


def test_configs_stored_no_is_explained():
    result = run_check("configs_stored", stored_lab(), "no")
    wrong_answer(result, "no", explain("configs_stored", "no"))
    assert "That is a secret's way" in result.summary


def test_configs_stored_asks_for_a_prediction():
    failed(run_check("configs_stored", stored_lab(), None), "Predict, run the command(s), then answer: Will")


def test_configs_stored_answer_follows_the_engine():
    """An engine that gave no Data (as for a secret) would make 'no' the truth."""
    lab = stored_lab()
    for config in lab.swarm.configs:
        config["Spec"].pop("Data")
    assert answer_of("configs_stored", lab) == "no"
    passed(run_check("configs_stored", lab, "no"), "Right: no")


# --- configs:serve ---------------------------------------------------------------------------------


def test_configs_served_no_service():
    failed(run_check("configs_served", stored_lab()), "There is no service called web yet.",
           hint=hints("configs_served")[0])


def test_configs_served_a_config_missing():
    lab = stored_lab(("page-v1",))
    lab.service("web", replicas=3, on=ALL_NODES, image="nginx:latest", args=(), ports=(HOST_8080,))
    result = run_check("configs_served", lab)
    failed(result, "There is no config called site-v1.", hint="Create it first")
    assert result.evidence == ("configs in the swarm: page-v1",)


def test_configs_served_service_without_the_server_config():
    lab = stored_lab()
    web = lab.service("web", replicas=3, on=ALL_NODES, image="nginx:latest", args=(), ports=(HOST_8080,))
    lab.use_config(web, "page-v1", INDEX)
    result = run_check("configs_served", lab)
    failed(result, "web does not use the config site-v1.", hint=hints("configs_served")[0])
    assert result.evidence == ("web mounts: page-v1 at /usr/share/nginx/html/index.html",)


def test_configs_served_page_without_target_lands_at_its_name():
    lab, _ = served_lab(page_target=None)
    result = run_check("configs_served", lab)
    failed(result, "web mounts page-v1 at /page-v1, a file nginx never reads: nginx serves its page at / from "
           "/usr/share/nginx/html/index.html.",
           hint="`docker service update --config-rm page-v1 --config-add source=page-v1,"
           "target=/usr/share/nginx/html/index.html web`")
    assert result.evidence == ("page-v1 mounted at /page-v1 (no target=: a config lands at /NAME)",)


def test_configs_served_server_config_where_nginx_never_reads():
    lab, _ = served_lab(site_target="/etc/nginx/conf.d/default.conf")
    result = run_check("configs_served", lab)
    failed(result, "web mounts site-v1 at /etc/nginx/conf.d/default.conf, a file nginx never reads: nginx reads "
           "its configuration from /etc/nginx/nginx.conf.",
           hint="--config-add source=site-v1,target=/etc/nginx/nginx.conf web")
    assert result.evidence == ("site-v1 mounted at /etc/nginx/conf.d/default.conf",)


def test_configs_served_no_port():
    lab, _ = served_lab(ports=())
    failed(run_check("configs_served", lab), "web does not publish port 8080.", hint=hints("configs_served")[0])


def test_configs_served_routing_mesh_without_ipvs():
    lab, _ = served_lab(ports=({"PublishedPort": 8080},))
    result = run_check("configs_served", lab)
    failed(result, "web publishes 8080 through the routing mesh, but this machine's kernel has no IPVS",
           hint="--publish-add mode=host,target=80,published=8080 web")
    assert result.evidence == ("port 8080: publish mode ingress, IPVS: no",)


def test_configs_served_routing_mesh_with_ipvs_passes():
    lab, _ = served_lab(ports=({"PublishedPort": 8080, "PublishMode": "ingress"},))
    lab["manager1"].dirs.add(IPVS)
    passed(run_check("configs_served", lab), "All 3 tasks of web serve your page with your server config.")


def test_configs_served_nginx_refuses_its_configuration():
    lab, web = served_lab(on=())
    failed_task(lab, web, "worker1", 1)
    failed_task(lab, web, "worker2", 2)
    result = run_check("configs_served", lab)
    failed(result, "web's new tasks stop as soon as they start: nginx refused its configuration.",
           hint="`docker service logs web` shows nginx's complaint. Fix it and store the fixed site.conf as a new "
           "config, `docker config create site-v2 site.conf`")
    assert result.evidence[0] == "web: 0/3 tasks running"
    assert result.evidence[1].endswith("on worker1: task: non-zero exit (1)")


def test_configs_served_old_failures_of_another_spec_do_not_count():
    """A task that failed with the configs web had before is history: the new tasks are only starting."""
    lab, web = served_lab(on=())
    old = failed_task(lab, web)
    old["Spec"]["ContainerSpec"]["Configs"] = []
    failed(run_check("configs_served", lab), "web's tasks are starting.", pending=True)


def test_configs_served_starting_is_pending():
    lab, _ = served_lab(on=("manager1",))
    result = run_check("configs_served", lab)
    failed(result, "web's tasks are starting.", pending=True)
    assert result.evidence == ("web: 1/3 tasks running",)


def test_configs_served_paused_update():
    lab, web = served_lab()
    web["UpdateStatus"] = {"State": "paused", "Message": "update paused due to failure or early termination of "
                           "task x"}
    result = run_check("configs_served", lab)
    failed(result, "web's update is paused: a new task failed.", hint="`docker service logs web`")
    assert result.evidence == ("update status: update paused due to failure or early termination of task x",
                               "web: 3/3 tasks running")


def test_configs_served_server_block_without_whoami():
    lab, _ = served_lab(whoami=False)
    result = run_check("configs_served", lab)
    failed(result, "web serves your page, but not /whoami: the server block you wrote replaced the image's, "
           "and left it out.", hint="Put `location = /whoami` back in site.conf (the lab's checks ask it which task "
           "answered), then store the fixed site.conf as a new config, `docker config create site-v2 site.conf`")
    assert "/whoami 'no answer'" in result.evidence[1]


def test_configs_served_a_task_with_another_page_is_pending():
    lab, web = served_lab()
    lab.container_of(lab.tasks(web)[1]).execs["http://127.0.0.1/"] = (0, b"<h1>Welcome to nginx!</h1>\n")
    result = run_check("configs_served", lab)
    failed(result, "Some of web's tasks do not serve page-v1 yet.", pending=True)
    assert "/ '<h1>Welcome to nginx!</h1>'" in result.evidence[2]


def test_configs_served_nginx_not_answering_is_pending():
    lab, web = served_lab()
    lab.container_of(lab.tasks(web)[0]).execs["http://127.0.0.1/"] = (1, b"wget: can't connect\n")
    failed(run_check("configs_served", lab), "nginx in some of web's tasks does not answer / yet.", pending=True)


def test_configs_served_every_task_serves_the_page():
    lab, web = served_lab()
    result = run_check("configs_served", lab)
    passed(result, "All 3 tasks of web serve your page with your server config.")
    ids = [t["ID"][:12] for t in lab.tasks(web)]
    cids = [t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in lab.tasks(web)]
    assert result.evidence == (
        "web mounts page-v1 at /usr/share/nginx/html/index.html, site-v1 at /etc/nginx/nginx.conf",
        *(f"task {i} on {n}: / '<h1>Hello from page v1</h1>', /whoami '{c} nginx/1.22.1'"
          for i, n, c in zip(ids, ALL_NODES, cids, strict=True)),
    )
    container = lab.container_of(lab.tasks(web)[0])
    assert container.exec_log == [["sh", "-c", ANY]]  # one exec per task for both pages
    assert "wget -q -O- http://127.0.0.1/;" in container.exec_log[0][2]  # no -T: that busybox crashes on it


def test_configs_served_a_fixed_server_config_site_v2_counts():
    """The hint for a server block without /whoami: store the fixed file as site-v2 and swap it in; site-v1,
    unused now, may even be gone."""
    lab, web = served_lab(whoami=False)
    lab.config("site-v2", SITE, at=20)
    lab.use_config(web, "site-v2", NGINX_CONF, remove=("site-v1",))
    lab.move(web, ALL_NODES, at=25)
    lab.serve_nginx(web)
    lab.remove_config("site-v1")
    result = run_check("configs_served", lab)
    passed(result, "All 3 tasks of web serve your page with your server config.")
    assert result.evidence[0] == ("web mounts page-v1 at /usr/share/nginx/html/index.html, "
                                  "site-v2 at /etc/nginx/nginx.conf")


def test_configs_served_a_later_version_in_the_wrong_place_is_named():
    lab, web = served_lab()
    lab.config("site-v2", SITE, at=20)
    lab.use_config(web, "site-v2", "/etc/nginx/conf.d/site.conf", remove=("site-v1",))
    failed(run_check("configs_served", lab), "web mounts site-v2 at /etc/nginx/conf.d/site.conf, a file nginx never "
           "reads", hint="--config-rm site-v2 --config-add source=site-v2,target=/etc/nginx/nginx.conf web")


# --- configs:in-use --------------------------------------------------------------------------------


def test_config_in_use_no_service():
    failed(run_check("config_in_use", stored_lab(), "no"), "There is no service called web yet.")


def test_config_in_use_no_is_right():
    lab, _ = served_lab()
    assert answer_of("config_in_use", lab) == "no"
    result = run_check("config_in_use", lab, "No.")
    passed(result, "Right: No")
    assert result.evidence == ("page-v1 still exists", "page-v1 used by: web")


def test_config_in_use_yes_is_explained():
    lab, _ = served_lab()
    wrong_answer(run_check("config_in_use", lab, "yes"), "yes", explain("config_in_use", "yes"))


def test_config_in_use_removed_after_web_let_go_of_it():
    lab, web = served_lab()
    web["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"] = [
        c for c in web["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"] if c["ConfigName"] != "page-v1"]
    lab.remove_config("page-v1")
    assert answer_of("config_in_use", lab) == "yes"
    failed(run_check("config_in_use", lab, "no"), "page-v1 is gone: web no longer used it when it was removed.",
           hint="docker config create page-v1 -")


def test_config_in_use_web_not_using_it():
    lab, web = served_lab()
    web["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"] = []
    result = run_check("config_in_use", lab, "no")
    failed(result, "web does not use page-v1: then nothing stops its removal.", hint=hints("config_in_use")[0])
    assert result.evidence == ("page-v1 used by: no service",)


# --- configs:new-page ------------------------------------------------------------------------------


def test_config_versioned_not_yet():
    lab, _ = served_lab()
    failed(run_check("config_versioned", lab), "There is no config called page-v2 yet.",
           hint=hints("config_versioned")[0])


def test_config_versioned_same_page_as_before():
    lab, _ = versioned_lab(PAGE_V1)
    result = run_check("config_versioned", lab)
    failed(result, "page-v2 holds the same page as page-v1: swapping it in would change nothing.",
           hint="`docker config rm page-v2`, then create it again with the new text: `echo")


def test_config_versioned_new_config_beside_the_old():
    lab, _ = versioned_lab()
    result = run_check("config_versioned", lab)
    passed(result, "page-v2 is a new config beside page-v1, with the new page.")
    assert result.evidence[0].startswith("page-v1: '<h1>Hello from page v1</h1>', unchanged since 2024-05-01T12:00:05")
    assert result.evidence[1] == "page-v2: '<h1>Hello from page v2</h1>' (created 2024-05-01T12:00:30)"


def test_config_versioned_passes_without_the_old_one():
    lab = stored_lab(("site-v1", "page-v2"))
    lab.swarm.configs[1]["Spec"]["Data"] = lab.swarm.configs[0]["Spec"]["Data"]
    passed(run_check("config_versioned", lab), "page-v2 is a new config")


# --- configs:roll ----------------------------------------------------------------------------------


def test_config_rolled_no_service():
    failed(run_check("config_rolled", stored_lab(), "no"), "There is no service called web yet.")


def test_config_rolled_no_new_config():
    lab, _ = served_lab()
    failed(run_check("config_rolled", lab, "no"), "There is no config called page-v2.", hint="Create it first")


def test_config_rolled_update_not_run():
    lab, _ = versioned_lab()
    result = run_check("config_rolled", lab, "no")
    failed(result, "web does not use page-v2 yet. It still mounts page-v1.", hint=hints("config_rolled")[0])
    assert result.evidence == ("web mounts: page-v1 at /usr/share/nginx/html/index.html, "
                               "site-v1 at /etc/nginx/nginx.conf",)


def test_config_rolled_without_target_serves_the_images_page():
    lab, _ = rolled_lab(target=None)
    result = run_check("config_rolled", lab, "no")
    failed(result, "web mounts page-v2 at /page-v2, a file nginx never reads: nginx serves its page from "
           "/usr/share/nginx/html/index.html, which no config covers now: your tasks serve the image's own page.",
           hint="`docker service update --config-rm page-v2 --config-add source=page-v2,"
           "target=/usr/share/nginx/html/index.html web`.")
    assert result.evidence == ("page-v2 mounted at /page-v2 (no target=: a config lands at /NAME)",)


def test_config_rolled_at_another_path_while_the_old_page_stays():
    lab, _ = rolled_lab(target="/usr/share/nginx/html/v2.html", remove=())
    failed(run_check("config_rolled", lab, "no"), "web mounts page-v2 at /usr/share/nginx/html/v2.html, a file "
           "nginx never reads: nginx serves its page from /usr/share/nginx/html/index.html.")


def test_config_rolled_while_updating_is_pending():
    lab, _ = rolled_lab(state="updating")
    failed(run_check("config_rolled", lab, "no"), "web's tasks are starting.", pending=True)


def test_config_rolled_a_task_still_serving_the_old_page_is_pending():
    lab, web = rolled_lab()
    running = [t for t in lab.tasks(web) if t["DesiredState"] == "running"]
    lab.container_of(running[2]).execs["http://127.0.0.1/"] = (0, PAGE_V1.encode())
    result = run_check("config_rolled", lab, "no")
    failed(result, "Some of web's tasks do not serve page-v2 yet.", pending=True)
    assert "/ '<h1>Hello from page v1</h1>'" in result.evidence[2]


def test_config_rolled_new_tasks_no_is_right():
    lab, web = rolled_lab()
    assert answer_of("config_rolled", lab) == "no"
    running = [lab.container_of(t) for t in lab.tasks(web) if t["DesiredState"] == "running"]
    assert not any(c.exec_log for c in running), "the answer reads the tasks, asks no task's nginx"
    result = run_check("config_rolled", lab, "No, new ones.")
    passed(result, "Right: No, new ones")
    old = [t for t in lab.tasks(web) if t["DesiredState"] == "shutdown"]
    new = [t for t in lab.tasks(web) if t["DesiredState"] == "running"]
    assert result.evidence == (
        *(f"task {t['ID'][:12]} on {n}, mounting page-v2: / '<h1>Hello from page v2</h1>'"
          for t, n in zip(new, ALL_NODES, strict=True)),
        *(f"old task {t['ID'][:12]} (mounting page-v1) on {n}: shutdown at 12:00:40"
          for t, n in zip(old, ALL_NODES, strict=True)),
    )


def test_config_rolled_yes_is_explained():
    lab, _ = rolled_lab()
    wrong_answer(run_check("config_rolled", lab, "yes"), "yes", explain("config_rolled", "yes"))


def test_config_rolled_answer_before_the_roll_is_still_no():
    """`labkit solve` asks before the update ran: a swapped config always means new tasks."""
    lab, _ = versioned_lab()
    assert answer_of("config_rolled", lab) == "no"


# --- configs:clean ---------------------------------------------------------------------------------


def test_configs_removed_service_still_there():
    lab, _ = rolled_lab()
    result = run_check("configs_removed", lab)
    failed(result, "The service web still runs.", hint=hints("configs_removed")[0])
    assert result.evidence == ("configs left: page-v1, page-v2, site-v1",)


def test_configs_removed_configs_left():
    lab, web = rolled_lab()
    lab.remove_service(web)
    lab.remove_config("page-v1")
    result = run_check("configs_removed", lab)
    failed(result, "The config(s) page-v2, site-v1 are still there.", hint="`docker config rm page-v2 site-v1`")


def test_configs_removed_all_gone():
    lab, web = rolled_lab()
    lab.remove_service(web)
    for name in ("site-v1", "page-v1", "page-v2"):
        lab.remove_config(name)
    result = run_check("configs_removed", lab)
    passed(result, "web and its configs are removed.")
    assert result.evidence == ("web: removed", "configs removed: site-v1, page-v1, page-v2")


def test_configs_removed_names_later_versions_left_too():
    """site-v2 (a fixed server config made along the way) is the lab's as well."""
    lab, web = rolled_lab()
    lab.config("site-v2", SITE, at=50)
    lab.config("other", "not the lab's", at=50)
    lab.remove_service(web)
    for name in ("site-v1", "page-v1", "page-v2"):
        lab.remove_config(name)
    failed(run_check("configs_removed", lab), "The config(s) site-v2 are still there.",
           hint="`docker config rm site-v2`")


def test_configs_served_paused_by_failing_new_tasks_names_the_next_version():
    """The update to a server config nginx refuses: new tasks fail, the update pauses (old tasks still run)."""
    lab, web = served_lab()
    lab.config("site-v2", "events {}\nhttp { server { listen 80 } }\n", at=20)
    lab.use_config(web, "site-v2", NGINX_CONF, remove=("site-v1",))
    web["UpdateStatus"] = {"State": "paused", "Message": "update paused due to failure or early termination of "
                           "task x"}
    lab.shutdown(lab.tasks(web)[0], at=21)
    failed_task(lab, web, "manager1", 1)
    result = run_check("configs_served", lab)
    failed(result, "web's new tasks stop as soon as they start (so its update is paused): nginx refused its "
           "configuration.", hint="`docker config create site-v3 site.conf`, and swap it in: `docker service "
           "update --config-rm site-v2 --config-add source=site-v3,target=/etc/nginx/nginx.conf web`.")
    assert result.evidence[0] == "web: 2/3 tasks running"
