"""The checks of lab secrets (labkit/checks/secrets.py) through each of their outcomes, on the fake cluster
of tests/fakes.py, with the steps, hints and explanations of labs/15-secrets.toml. The scenes follow the lab:
db_password stored; api (granted it, on worker1) reads it from a tmpfs; other beside it on worker1 cannot;
`docker secret rm db_password` refused while api uses it; db_password_v2 swapped in at the same target;
everything removed.
"""

from __future__ import annotations

from tests.fakes import FakeContainer, FakeLab, Json, swarm_lab
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

SECRET_CHECKS = ["secret_stored", "secret_mounted", "secret_isolated", "secret_in_use", "secret_rotated",
                 "secrets_removed"]
V1, V2 = "pa55-v1-rosebud", "pa55-v2-tulip"
DISK = "find /var/lib/docker -xdev"  # the search of a node's disk (outside tmpfs and overlay mounts)
RAFT = "find /var/lib/docker/swarm"  # the search of the managers' Raft data
NOTHING = (123, "", "")  # what `find | xargs grep -l` gives when no file holds the value
NO_FILE = (1, b"cat: can't open '/run/secrets/db_password': No such file or directory\n")


# --- scenes, in the lab's order -------------------------------------------------------------------


def created_lab() -> FakeLab:
    """create done: db_password stored on manager1; nodes' disks searched find nothing."""
    lab = swarm_lab()
    lab.secret("db_password", V1, at=5)
    for node in ("manager1", "worker1", "worker2"):
        lab[node].outputs[DISK] = NOTHING
        lab[node].outputs[RAFT] = NOTHING
    return lab


def api(lab: FakeLab, on: str = "worker1", secret: str | None = "db_password", target: str | None = None) -> Json:
    service = lab.service("api", on=(on,), image="alpine:latest", args=("sleep", "1d"),
                          constraints=(f"node.hostname=={on}",), at=10)
    if secret:
        lab.grant(service, secret, target)
    lab.mount_secrets(service, created=True)
    return service


def other(lab: FakeLab, on: str = "worker1", secret: str | None = None) -> tuple[Json, FakeContainer]:
    service = lab.service("other", on=(on,), image="alpine:latest", args=("sleep", "1d"),
                          constraints=(f"node.hostname=={on}",), at=20)
    if secret:
        lab.grant(service, secret)
    lab.mount_secrets(service, created=True)
    container = lab.container_of(lab.tasks(service)[0])
    container.execs.setdefault("cat /run/secrets/db_password", NO_FILE)
    return service, container


def granted_lab() -> tuple[FakeLab, Json]:
    lab = created_lab()
    return lab, api(lab)


def other_lab() -> tuple[FakeLab, Json, Json]:
    lab, a = granted_lab()
    o, _ = other(lab)
    return lab, a, o


def rotated_lab(target: str = "db_password", remove_old: bool = True, value: str = V2,
                at: float = 40) -> tuple[FakeLab, Json]:
    """rotate done: db_password_v2 swapped into api at TARGET (api's task replaced), db_password removed
    (unless not REMOVE_OLD)."""
    lab, a, _ = other_lab()
    lab.secret("db_password_v2", value, at=30)
    lab.grant(a, "db_password_v2", target, remove=("db_password",))
    lab.move(a, ["worker1"], at=at)
    lab.mount_secrets(a)
    if remove_old:
        lab.remove_secret("db_password")
    return lab, a


# --- secrets:create --------------------------------------------------------------------------------


def test_stored_passes_and_tells_inspect_shows_no_value():
    result = run_check("secret_stored", created_lab())
    passed(result, "db_password is stored, and no inspect shows its value.")
    assert "its Spec holds: Labels, Name (no Data)" in result.evidence
    assert "the value is in neither the API's secret object nor `docker secret inspect`" in result.evidence


def test_stored_fails_before_create_with_the_first_hint():
    failed(run_check("secret_stored", swarm_lab()), "There is no secret called db_password yet.",
           hint=hints("secret_stored")[0])


def test_stored_names_a_misspelt_secret():
    lab = swarm_lab()
    lab.secret("db-password", V1)
    result = run_check("secret_stored", lab)
    failed(result, "There is no secret called db_password, but there is db-password.",
           hint="`docker secret rm db-password`, then create db_password as shown.")


def test_stored_fails_if_inspect_shows_the_value():
    lab = created_lab()
    lab["manager1"].outputs["docker secret inspect db_password"] = f'[{{"Spec": {{"Data": "{V1}"}}}}]'
    failed(run_check("secret_stored", lab), "The value of db_password shows in docker secret inspect.",
           hint="was it stored as a config instead?")


# --- secrets:grant ---------------------------------------------------------------------------------


def test_mounted_passes_with_tmpfs_no_file_on_disk_and_raft_encrypted():
    lab, a = granted_lab()
    result = run_check("secret_mounted", lab)
    passed(result, "api's container on worker1 reads db_password from /run/secrets/db_password, a tmpfs")
    cid = lab.container_of(lab.tasks(a)[0]).id[:12]
    assert result.evidence == (
        f"api's container {cid} on worker1: /run/secrets/db_password holds the value (15 bytes)",
        "/run/secrets/db_password is mounted as tmpfs",
        "worker1: the value is in no file under /var/lib/docker (the tmpfs is in memory)",
        "manager1: Raft log under /var/lib/docker/swarm: the value is not there in clear: it is stored encrypted",
    )


def test_mounted_no_service_gives_the_first_hint():
    failed(run_check("secret_mounted", created_lab()), "There is no service called api yet.",
           hint=hints("secret_mounted")[0])


def test_mounted_service_without_the_secret():
    lab = created_lab()
    api(lab, secret=None)
    result = run_check("secret_mounted", lab)
    failed(result, "api was not granted the secret db_password.",
           hint="`docker service update --secret-add db_password api`")
    assert result.evidence == ("api's secrets: none",)


def test_mounted_at_another_target():
    lab = created_lab()
    api(lab, target="password")
    failed(run_check("secret_mounted", lab), "api gets db_password at /run/secrets/password, not at "
           "/run/secrets/db_password.")


def test_mounted_on_the_wrong_node():
    lab = created_lab()
    api(lab, on="manager1")
    failed(run_check("secret_mounted", lab), "api runs on manager1, not on worker1.",
           hint="`docker service update --constraint-rm node.hostname==manager1 --constraint-add "
           "node.hostname==worker1 api`")


def test_mounted_pending_while_the_task_starts():
    lab = created_lab()
    service = lab.service("api", on=(), image="alpine:latest", args=("sleep", "1d"))
    lab.grant(service, "db_password")
    lab.task(service, "worker1", 1, "preparing")
    failed(run_check("secret_mounted", lab), "api is starting.", pending=True)


def test_mounted_not_a_tmpfs():
    lab, a = granted_lab()
    lab.container_of(lab.tasks(a)[0]).execs["cat /proc/mounts"] = (0, b"overlay / overlay rw 0 0\n")
    result = run_check("secret_mounted", lab)
    failed(result, "/run/secrets/db_password in api's container is not a tmpfs mount.", hint="Grant the secret")
    assert "/run/secrets/db_password is mounted as nothing of its own (a file of the image?)" in result.evidence


def test_mounted_file_not_readable_yet():
    lab, a = granted_lab()
    lab.container_of(lab.tasks(a)[0]).execs["cat /run/secrets/db_password"] = NO_FILE
    failed(run_check("secret_mounted", lab), "api's container on worker1 cannot read /run/secrets/db_password yet.",
           pending=True)


def test_mounted_value_written_to_the_nodes_disk():
    lab, _ = granted_lab()
    lab["worker1"].outputs[DISK] = "/var/lib/docker/containers/abc/abc-json.log\n"
    result = run_check("secret_mounted", lab)
    failed(result, "The value is also on worker1's disk: something wrote it out.", hint="Did the container print")
    assert "worker1: the value is also in /var/lib/docker/containers/abc/abc-json.log" in result.evidence


def test_mounted_says_when_the_searches_fail():
    lab, _ = granted_lab()
    lab["worker1"].outputs[DISK] = (2, "", "find: permission denied\n")
    lab["manager1"].outputs[RAFT] = (2, "", "find: permission denied\n")
    result = run_check("secret_mounted", lab)
    passed(result)
    assert "worker1: could not search /var/lib/docker" in result.evidence
    assert not any("Raft" in e for e in result.evidence)


# --- secrets:other ---------------------------------------------------------------------------------


def test_isolated_no_is_right():
    lab, _, o = other_lab()
    assert answer_of("secret_isolated", lab) == "no"
    result = run_check("secret_isolated", lab, "No.")
    passed(result, "Right: No")
    cid = lab.container_of(lab.tasks(o)[0]).id[:12]
    assert result.evidence == ("api tasks on: worker1", "other tasks on: worker1",
                               f"other's container {cid} on worker1: cat /run/secrets/db_password: "
                               "cat: can't open '/run/secrets/db_password': No such file or directory")


def test_isolated_yes_gets_the_wrong_container_explanation():
    lab, _, _ = other_lab()
    wrong_answer(run_check("secret_isolated", lab, "yes"), "yes", explain("secret_isolated", "yes"))
    assert "service.name=other" in explain("secret_isolated", "yes")


def test_isolated_no_other_service_yet():
    lab, _ = granted_lab()
    failed(run_check("secret_isolated", lab, "no"), "There is no service called other yet.",
           hint=hints("secret_isolated")[0])


def test_isolated_other_granted_the_secret_too():
    lab, _ = granted_lab()
    other(lab, secret="db_password")
    result = run_check("secret_isolated", lab, "yes")
    failed(result, "other was granted db_password too", hint="`docker service update --secret-rm db_password other`")


def test_isolated_other_on_another_node():
    lab, _ = granted_lab()
    other(lab, on="worker2")
    failed(run_check("secret_isolated", lab, "no"), "other runs on worker2, api on worker1: this step wants them "
           "on the same node.", hint="`docker service update --constraint-rm node.hostname==worker2 "
           "--constraint-add node.hostname==worker1 other`")


def test_isolated_api_lost_its_secret():
    lab = created_lab()
    api(lab, secret=None)
    other(lab)
    failed(run_check("secret_isolated", lab, "no"), "api is gone or no longer granted db_password")


def test_isolated_pending_while_other_starts():
    lab, _ = granted_lab()
    lab.service("other", on=(), image="alpine:latest", args=("sleep", "1d"))
    failed(run_check("secret_isolated", lab, "no"), "The services are starting.", pending=True)


def test_isolated_answer_yes_if_other_could_read_it():
    lab, _, o = other_lab()
    lab.container_of(lab.tasks(o)[0]).execs["cat /run/secrets/db_password"] = (0, V1.encode())
    assert answer_of("secret_isolated", lab) == "yes"
    passed(run_check("secret_isolated", lab, "yes"))


# --- secrets:rm-in-use -----------------------------------------------------------------------------


def test_in_use_no_is_right():
    lab, _, _ = other_lab()
    assert answer_of("secret_in_use", lab) == "no"
    result = run_check("secret_in_use", lab, "no, it is refused")
    passed(result, "Right")
    assert "used by: api" in result.evidence


def test_in_use_yes_gets_its_explanation_and_no_answer_asks():
    lab, _, _ = other_lab()
    wrong_answer(run_check("secret_in_use", lab, "yes"), "yes", explain("secret_in_use", "yes"))
    failed(run_check("secret_in_use", lab), "Predict, run the command(s), then answer")


def test_in_use_secret_gone():
    lab, a, _ = other_lab()
    lab.remove_service(a)
    lab.remove_secret("db_password")
    failed(run_check("secret_in_use", lab, "no"), "db_password is gone", hint="labkit reset secrets:rm-in-use")


def test_in_use_but_no_service_uses_it():
    lab, a, _ = other_lab()
    lab.remove_service(a)
    assert answer_of("secret_in_use", lab) == "yes"
    result = run_check("secret_in_use", lab, "no")
    failed(result, "No service uses db_password now", hint="`docker service update --secret-add db_password api`")
    assert result.evidence == ("db_password: used by no service",)


# --- secrets:rotate --------------------------------------------------------------------------------


def test_rotated_no_is_right_a_new_task_mounts_the_new_secret():
    lab, _ = rotated_lab()
    assert answer_of("secret_rotated", lab) == "no"
    result = run_check("secret_rotated", lab, "no")
    passed(result, "Right: no")
    assert result.evidence[:2] == ("api: db_password_v2 mounted at /run/secrets/db_password",
                                   "api's container on worker1 reads the new value at /run/secrets/db_password")
    assert "(with db_password) is shutdown" in result.evidence[2]
    assert result.evidence[-1] == "db_password: removed"


def test_rotated_yes_gets_its_explanation():
    lab, _ = rotated_lab()
    wrong_answer(run_check("secret_rotated", lab, "yes"), "yes", explain("secret_rotated", "yes"))


def test_rotated_before_the_new_secret():
    lab, _, _ = other_lab()
    failed(run_check("secret_rotated", lab, "no"), "There is no secret called db_password_v2 yet.",
           hint=hints("secret_rotated")[0])


def test_rotated_new_secret_not_given_to_api():
    lab, _, _ = other_lab()
    lab.secret("db_password_v2", V2)
    result = run_check("secret_rotated", lab, "no")
    failed(result, "api does not use db_password_v2 yet.",
           hint="`docker service update --secret-rm db_password --secret-add "
           "source=db_password_v2,target=db_password api`")
    assert result.evidence == ("api's secrets: db_password",)


def test_rotated_without_target_mounts_at_the_new_name():
    lab, _ = rotated_lab(target="db_password_v2")
    failed(run_check("secret_rotated", lab, "no"), "api gets db_password_v2 at /run/secrets/db_password_v2, but "
           "the app reads /run/secrets/db_password.", hint="source=db_password_v2,target=db_password api")


def test_rotated_old_secret_still_stored():
    lab, _ = rotated_lab(remove_old=False)
    assert answer_of("secret_rotated", lab) == "no"
    failed(run_check("secret_rotated", lab, "no"), "api reads the new value, but db_password is still stored.",
           hint="`docker secret rm db_password`")


def test_rotated_pending_while_updating():
    lab, a = rotated_lab()
    a["UpdateStatus"] = {"State": "updating"}
    failed(run_check("secret_rotated", lab, "no"), "api is being updated.", pending=True)


def test_rotated_pending_while_the_old_container_still_reads_the_old_value():
    lab, a = rotated_lab()
    lab.container_of(lab.tasks(a)[-1]).execs["cat /run/secrets/db_password"] = (0, V1.encode())
    failed(run_check("secret_rotated", lab, "no"), "api's container still reads the old value.", pending=True)


def test_rotated_pending_without_a_container():
    lab, a = rotated_lab()
    lab.remove_container(lab.tasks(a)[-1])
    failed(run_check("secret_rotated", lab, "no"), "api's new task is starting.", pending=True)


def test_rotated_another_value():
    lab, _ = rotated_lab(value="something-else")
    failed(run_check("secret_rotated", lab, "no"), "not the value this step stores in db_password_v2",
           hint="Was db_password_v2 created with another value?")


def test_rotated_no_service():
    lab = created_lab()
    failed(run_check("secret_rotated", lab, "no"), "There is no service called api yet.")


# --- secrets:clean ---------------------------------------------------------------------------------


def test_removed_passes_when_nothing_is_left():
    lab, a = rotated_lab()
    lab.remove_service(a)
    lab.remove_service(next(s for s in lab.swarm.services if s["Spec"]["Name"] == "other"))
    lab.remove_secret("db_password_v2")
    result = run_check("secrets_removed", lab)
    passed(result, "No service and no secret is left")
    assert result.evidence == ("docker service ls: empty", "docker secret ls: empty", "checked 3 nodes")


def test_removed_services_still_there():
    lab, _ = rotated_lab()
    failed(run_check("secrets_removed", lab), "Services api, other are still there.",
           hint="`docker service rm api other`")


def test_removed_secret_still_there():
    lab = created_lab()
    failed(run_check("secrets_removed", lab), "Secret db_password is still there.",
           hint="`docker secret rm db_password`")


def test_removed_pending_while_containers_stop():
    lab, a = granted_lab()
    lab.remove_service(a, stopping=True)
    lab.remove_secret("db_password")
    failed(run_check("secrets_removed", lab), "The services are gone; their containers are still stopping.",
           pending=True)
