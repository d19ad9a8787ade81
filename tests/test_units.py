"""Unit tests for labkit's pure logic: nothing here needs a Docker engine."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest

from labkit import images
from labkit.aptsources import debian_mirror
from labkit.backends import dind
from labkit.errors import ImageBuildError, InvalidInput
from labkit.kernel import kernel_findings
from labkit.report import Finding
from labkit.topology import (
    CANDIDATE_SUBNETS,
    HUB_HOSTNAME,
    LABEL_LAB,
    MAX_MANAGERS,
    MAX_WORKERS,
    AddressPlan,
    Names,
    NodeSpec,
    Topology,
    lab_name,
    parse_node_name,
    pick_subnet,
)

SUBNET = ipaddress.ip_network("172.30.10.0/24")


def node_names(topology: Topology) -> list[str]:
    return [spec.name for spec in topology.nodes]


# ---------------------------------------------------------------- Topology


def test_default_topology_is_one_manager_then_two_workers():
    assert node_names(Topology()) == ["manager1", "worker1", "worker2"]


def test_default_topology_roles_and_indexes():
    assert [(s.role, s.index) for s in Topology().nodes] == [("manager", 1), ("worker", 1), ("worker", 2)]


def test_three_managers_and_no_workers():
    assert node_names(Topology(managers=3, workers=0)) == ["manager1", "manager2", "manager3"]


def test_largest_topology_is_allowed():
    topology = Topology(managers=MAX_MANAGERS, workers=MAX_WORKERS)
    assert len(topology.nodes) == MAX_MANAGERS + MAX_WORKERS


def test_zero_managers_is_refused_with_a_suggestion():
    with pytest.raises(InvalidInput) as excinfo:
        Topology(managers=0)
    message = str(excinfo.value)
    assert "not 0" in message
    assert "--managers 1" in message


def test_too_many_managers_is_refused_with_a_suggestion():
    with pytest.raises(InvalidInput) as excinfo:
        Topology(managers=MAX_MANAGERS + 1)
    message = str(excinfo.value)
    assert f"not {MAX_MANAGERS + 1}" in message
    assert "Try --managers" in message


def test_too_many_workers_is_refused_with_a_suggestion():
    with pytest.raises(InvalidInput) as excinfo:
        Topology(workers=MAX_WORKERS + 1)
    message = str(excinfo.value)
    assert f"not {MAX_WORKERS + 1}" in message
    assert "Try --workers" in message


def test_negative_workers_are_refused():
    with pytest.raises(InvalidInput, match="--workers"):
        Topology(workers=-1)


@pytest.mark.parametrize(
    ("name", "role", "index"),
    [("manager1", "manager", 1), ("manager3", "manager", 3), ("worker12", "worker", 12)],
)
def test_parse_node_name_accepts_lab_node_names(name, role, index):
    assert parse_node_name(name) == NodeSpec(name, role, index)


@pytest.mark.parametrize("name", ["node1", "manager0", "Manager1", "", "worker", "worker01", "manager1 ", "xworker1"])
def test_parse_node_name_rejects_other_names(name):
    with pytest.raises(InvalidInput) as excinfo:
        parse_node_name(name)
    assert "labkit status" in str(excinfo.value)


# ---------------------------------------------------------------- lab_name


def test_lab_name_defaults_to_lab(monkeypatch):
    monkeypatch.delenv("LABKIT_LAB", raising=False)
    assert lab_name() == "lab"


def test_lab_name_comes_from_labkit_lab(monkeypatch):
    monkeypatch.setenv("LABKIT_LAB", "course-2")
    assert lab_name() == "course-2"


def test_lab_name_argument_wins_over_labkit_lab(monkeypatch):
    monkeypatch.setenv("LABKIT_LAB", "course-2")
    assert lab_name("mine") == "mine"


def test_empty_labkit_lab_means_the_default(monkeypatch):
    monkeypatch.setenv("LABKIT_LAB", "")
    assert lab_name() == "lab"


@pytest.mark.parametrize("name", ["Lab", "1lab", "-lab", "my_lab", "my lab", "a" * 32, "lab/x"])
def test_invalid_lab_names_are_refused(name, monkeypatch):
    monkeypatch.delenv("LABKIT_LAB", raising=False)
    with pytest.raises(InvalidInput, match="not a valid lab name"):
        lab_name(name)


def test_invalid_labkit_lab_is_refused(monkeypatch):
    monkeypatch.setenv("LABKIT_LAB", "Bad Name")
    with pytest.raises(InvalidInput, match="not a valid lab name"):
        lab_name()


def test_longest_valid_lab_name_is_accepted():
    assert lab_name("a" * 31) == "a" * 31


def test_lab_name_with_trailing_newline_is_refused():
    with pytest.raises(InvalidInput):
        lab_name("lab\n")


# ---------------------------------------------------------------- Names


def test_default_lab_containers_are_named_like_the_nodes():
    names = Names("lab")
    assert [names.container(n) for n in ("manager1", "worker1")] == ["manager1", "worker1"]


def test_other_labs_prefix_their_containers():
    assert Names("course").container("worker2") == "course-worker2"


def test_network_hub_and_volume_names():
    names = Names("course")
    assert names.network == "labkit-course"
    assert names.hub == "labkit-course-hub"
    assert names.volume("manager1") == "labkit-course-manager1-docker"


def test_default_lab_network_and_hub_are_prefixed_too():
    names = Names("lab")
    assert names.network == "labkit-lab"
    assert names.hub == "labkit-lab-hub"


def test_labels_carry_the_lab_kind_and_extras():
    labels = Names("course").labels("node", **{"labkit.node": "worker1"})
    assert labels[LABEL_LAB] == "course"
    assert labels["labkit.kind"] == "node"
    assert labels["labkit.node"] == "worker1"


def test_labels_of_two_labs_differ():
    assert Names("a").labels("network")[LABEL_LAB] != Names("b").labels("network")[LABEL_LAB]


# ---------------------------------------------------------------- AddressPlan


def test_fixed_addresses_in_a_slash_24():
    plan = AddressPlan(SUBNET)
    by_name = {spec.name: plan.node(spec) for spec in Topology().nodes}
    assert plan.gateway == "172.30.10.1"
    assert plan.hub == "172.30.10.2"
    assert by_name == {"manager1": "172.30.10.11", "worker1": "172.30.10.21", "worker2": "172.30.10.22"}


def test_hosts_lists_every_node_and_the_hub():
    plan = AddressPlan(SUBNET)
    topology = Topology(managers=3, workers=2)
    hosts = plan.hosts(topology)
    assert set(hosts) == {*node_names(topology), HUB_HOSTNAME}
    assert HUB_HOSTNAME == "labkit-hub"
    assert hosts["labkit-hub"] == plan.hub
    assert hosts["manager3"] == "172.30.10.13"


def test_a_slash_25_is_too_small():
    with pytest.raises(InvalidInput, match="/24"):
        AddressPlan(ipaddress.ip_network("172.30.10.0/25"))


def test_a_larger_subnet_is_accepted():
    assert AddressPlan(ipaddress.ip_network("172.30.0.0/16")).hub == "172.30.0.2"


@pytest.mark.parametrize(("managers", "workers"), [(1, MAX_WORKERS), (MAX_MANAGERS, MAX_WORKERS)])
def test_node_addresses_are_distinct_and_inside_the_subnet(managers, workers):
    plan = AddressPlan(SUBNET)
    addresses = [ipaddress.ip_address(plan.node(spec)) for spec in Topology(managers, workers).nodes]
    reserved = {
        SUBNET.network_address,
        SUBNET.broadcast_address,
        ipaddress.ip_address(plan.gateway),
        ipaddress.ip_address(plan.hub),
    }
    assert len(set(addresses)) == len(addresses) == managers + workers
    assert all(a in SUBNET for a in addresses)
    assert not reserved & set(addresses)


# ---------------------------------------------------------------- pick_subnet


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(text)


def test_pick_subnet_with_nothing_taken_is_the_first_candidate():
    assert pick_subnet([]) == net("172.30.10.0/24")


def test_pick_subnet_skips_a_taken_subnet():
    assert pick_subnet([net("172.30.10.0/24")]) == net("172.30.11.0/24")


def test_pick_subnet_skips_overlapping_larger_subnets():
    assert pick_subnet([net("172.30.8.0/22"), net("172.30.12.0/23")]) == net("172.30.14.0/24")


def test_pick_subnet_skips_overlapping_smaller_subnets():
    assert pick_subnet([net("172.30.10.128/25")]) == net("172.30.11.0/24")


def test_pick_subnet_ignores_unrelated_networks():
    assert pick_subnet([net("172.17.0.0/16"), net("10.0.0.0/8"), net("192.168.0.0/16")]) == net("172.30.10.0/24")


def test_pick_subnet_raises_when_the_whole_range_is_taken():
    with pytest.raises(InvalidInput) as excinfo:
        pick_subnet([net("172.30.0.0/16")])
    assert "docker network prune" in str(excinfo.value)


@pytest.mark.parametrize("taken", [[], [net("172.30.0.0/17")], [net("172.30.10.0/24"), net("172.30.200.0/21")]])
def test_pick_subnet_never_returns_a_subnet_inside_10_slash_8(taken):
    picked = pick_subnet(taken)
    assert not picked.overlaps(net("10.0.0.0/8"))
    assert not any(picked.overlaps(t) for t in taken)


def test_no_candidate_subnet_clashes_with_swarm_or_inner_bridges():
    swarm_pool, docker0, gwbridge = net("10.0.0.0/8"), net("172.17.0.0/16"), net("172.18.0.0/16")
    for candidate in CANDIDATE_SUBNETS:
        assert not any(candidate.overlaps(n) for n in (swarm_pool, docker0, gwbridge)), candidate


# ---------------------------------------------------------------- aptsources

DEB822 = """\
# Managed by hand
Types: deb
URIs: http://disabled.test/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb deb-src
URIs: http://mirror.test/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.test/debian-security
Suites: bookworm-security
Components: main
"""


def apt_dir(tmp_path: Path, sources_list: str | None = None, **files: str) -> Path:
    """A fake /etc/apt: an optional sources.list, and files in sources.list.d (debian_sources= writes
    debian.sources)."""
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True)
    if sources_list is not None:
        (root / "sources.list").write_text(sources_list)
    for name, text in files.items():
        (root / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return root


def test_deb822_mirror_with_trailing_slash_stripped(tmp_path):
    root = apt_dir(tmp_path, debian_sources=DEB822)
    assert debian_mirror("bookworm", root) == "http://mirror.test/debian"


def test_deb822_disabled_stanza_is_ignored(tmp_path):
    root = apt_dir(tmp_path, debian_sources=DEB822)
    assert debian_mirror("bookworm", root) != "http://disabled.test/debian"


def test_deb822_only_disabled_stanza_matches_gives_error(tmp_path):
    text = "Types: deb\nURIs: http://disabled.test/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n"
    root = apt_dir(tmp_path, debian_sources=text)
    with pytest.raises(ImageBuildError, match="LABKIT_DEBIAN_MIRROR"):
        debian_mirror("bookworm", root)


def test_deb822_security_suite_is_found_by_its_own_name(tmp_path):
    root = apt_dir(tmp_path, debian_sources=DEB822)
    assert debian_mirror("bookworm-security", root) == "http://security.test/debian-security"


def test_deb822_deb_src_only_stanza_is_ignored(tmp_path):
    text = "Types: deb-src\nURIs: http://src.test/debian\nSuites: bookworm\nComponents: main\n"
    root = apt_dir(tmp_path, src_sources=text)
    with pytest.raises(ImageBuildError, match="LABKIT_DEBIAN_MIRROR"):
        debian_mirror("bookworm", root)


def test_one_line_sources_list_with_options_and_comments(tmp_path):
    sources_list = """\
# deb http://commented.test/debian bookworm main
deb-src http://src.test/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.test/debian/ bookworm main
deb http://later.test/debian bookworm main  # a trailing comment
"""
    root = apt_dir(tmp_path, sources_list)
    assert debian_mirror("bookworm", root) == "http://mirror.test/debian"


def test_one_line_trailing_comment_is_not_read_as_components(tmp_path):
    sources_list = """\
deb http://contrib.test/debian bookworm contrib  # no main here
deb http://mirror.test/debian bookworm main
"""
    root = apt_dir(tmp_path, sources_list)
    assert debian_mirror("bookworm", root) == "http://mirror.test/debian"


def test_one_line_single_option(tmp_path):
    root = apt_dir(tmp_path, "deb [signed-by=/k.gpg] http://mirror.test/debian bookworm main\n")
    assert debian_mirror("bookworm", root) == "http://mirror.test/debian"


def test_one_line_file_in_sources_list_d(tmp_path):
    root = apt_dir(tmp_path, extra_list="deb http://extra.test/debian bookworm main non-free\n")
    assert debian_mirror("bookworm", root) == "http://extra.test/debian"


def test_other_suites_and_components_do_not_match(tmp_path):
    sources_list = """\
deb http://old.test/debian bullseye main
deb http://updates.test/debian bookworm-updates main
deb http://contrib.test/debian bookworm contrib non-free
"""
    root = apt_dir(tmp_path, sources_list)
    with pytest.raises(ImageBuildError) as excinfo:
        debian_mirror("bookworm", root)
    message = str(excinfo.value)
    assert "LABKIT_DEBIAN_MIRROR" in message
    assert "bookworm" in message


def test_no_apt_sources_at_all_names_labkit_debian_mirror(tmp_path):
    with pytest.raises(ImageBuildError, match="LABKIT_DEBIAN_MIRROR"):
        debian_mirror("bookworm", tmp_path / "nowhere")


def test_one_line_and_deb822_sources_are_both_read(tmp_path):
    root = apt_dir(tmp_path, "deb http://old.test/debian bullseye main\n", debian_sources=DEB822)
    assert debian_mirror("bookworm", root) == "http://mirror.test/debian"
    assert debian_mirror("bullseye", root) == "http://old.test/debian"


# ---------------------------------------------------------------- images

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd5a1f2000)
\tlibpcre2-8.so.0 => /lib/x86_64-linux-gnu/libpcre2-8.so.0 (0x00007f3c8a5a0000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3c8a3bf000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f3c8a6a5000)
"""


def test_parse_ldd_returns_library_paths_without_the_vdso():
    assert images.parse_ldd(LDD_OUTPUT) == [
        "/lib/x86_64-linux-gnu/libpcre2-8.so.0",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]


def test_parse_ldd_of_a_static_binary_is_empty():
    assert images.parse_ldd("\tstatically linked\n") == []


@pytest.fixture
def recipes(tmp_path, monkeypatch) -> Path:
    """A private copy of labkit/recipes that images.RECIPES points to."""
    copy = tmp_path / "recipes"
    shutil.copytree(images.RECIPES, copy)
    monkeypatch.setattr(images, "RECIPES", copy)
    return copy


def test_recipe_hash_is_stable():
    first = images.recipe_hash()
    assert images.recipe_hash() == first
    assert len(first) == 16
    int(first, 16)  # hexadecimal


def test_recipe_hash_depends_on_content_not_location(recipes):
    copied = images.recipe_hash()
    original = Path(images.__file__).parent / "recipes"
    assert recipes != original
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(images, "RECIPES", original)
        assert images.recipe_hash() == copied


# Every file an image is built from, relative to labkit/recipes.
IMAGE_RECIPE_FILES = [
    "node-packages.txt",
    "install-engine.sh",
    "node-entrypoint.sh",
    "registry.yml",
    "workloads/common/etc/passwd",
    "workloads/common/etc/group",
    "workloads/common/etc/nsswitch.conf",
    "workloads/nginx/etc/passwd",
    "workloads/nginx/etc/group",
    "workloads/nginx/etc/nginx/nginx.conf",
    "workloads/nginx/etc/nginx/labkit/version.conf",
    "workloads/nginx/etc/nginx/labkit/health.conf",
    "workloads/nginx/usr/share/nginx/html/index.html",
    "workloads/nginx-1.24/etc/nginx/labkit/version.conf",
    "workloads/nginx-1.24/usr/share/nginx/html/index.html",
    "workloads/nginx-1.25/etc/nginx/labkit/version.conf",
    "workloads/nginx-1.25/usr/share/nginx/html/index.html",
    "workloads/nginx-1.26-broken/etc/nginx/labkit/version.conf",
    "workloads/nginx-1.26-broken/etc/nginx/labkit/health.conf",
    "workloads/nginx-1.26-broken/usr/share/nginx/html/index.html",
]


def test_the_recipe_files_listed_here_are_all_there_are():
    listed = {p.relative_to(images.RECIPES).as_posix() for p in images.image_recipe_files()}
    assert listed == set(IMAGE_RECIPE_FILES)
    assert "form-swarm.sh" not in listed and (images.RECIPES / "form-swarm.sh").is_file()


@pytest.mark.parametrize("name", IMAGE_RECIPE_FILES)
def test_recipe_hash_changes_when_a_file_that_goes_into_an_image_changes(recipes, name):
    before = images.recipe_hash()
    path = recipes / name
    path.write_bytes(path.read_bytes() + b"\n")
    assert images.recipe_hash() != before


def test_recipe_hash_changes_when_a_file_is_added_to_a_workload_tree(recipes):
    before = images.recipe_hash()
    extra = recipes / "workloads/alpine/etc/motd"
    extra.parent.mkdir(parents=True)
    extra.write_text("hello\n")
    assert images.recipe_hash() != before


def test_recipe_hash_changes_when_a_file_moves_to_another_path(recipes):
    before = images.recipe_hash()
    (recipes / "workloads/nginx/usr/share/nginx/html/index.html").rename(
        recipes / "workloads/nginx/usr/share/nginx/html/welcome.html"
    )
    assert images.recipe_hash() != before


def test_recipe_hash_changes_with_the_workload_definitions(monkeypatch):
    before = images.recipe_hash()
    monkeypatch.setattr(images, "_WORKLOAD_DESCRIPTION", "another stand-in for {0}")
    assert images.recipe_hash() != before


def test_recipe_hash_ignores_files_that_are_not_part_of_the_images(recipes):
    before = images.recipe_hash()
    script = recipes / "form-swarm.sh"
    script.write_text(script.read_text() + "# changed\n")
    assert images.recipe_hash() == before


def test_every_workload_tree_belongs_to_a_workload():
    trees = {p.name for p in (images.RECIPES / images.WORKLOAD_TREES).iterdir()}
    assert trees <= {t for w in images.WORKLOADS for t in w.trees}


def test_the_lab_images_are_published_under_the_tags_learners_type():
    refs = [w.ref for w in images.WORKLOADS]
    assert refs == ["alpine:latest", "nginx:latest", "nginx:1.24", "nginx:1.25", "nginx:1.26-broken"]
    w = images.workload("nginx:1.25")
    assert (w.image, w.repository, w.tag) == ("labkit/nginx:1.25", "library/nginx", "1.25")
    assert images.workload("nginx") is images.workload("nginx:latest")
    assert images.workload("nginx").image == "labkit/nginx:latest"
    with pytest.raises(InvalidInput, match=r"nginx:1\.25"):
        images.workload("nginx:9.9")


def test_every_nginx_tag_runs_the_same_binary_with_the_headers_more_module():
    nginx = [w for w in images.WORKLOADS if w.name == "nginx"]
    assert {(w.binaries, w.files, w.changes) for w in nginx} == {(nginx[0].binaries, nginx[0].files, nginx[0].changes)}
    module = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so"
    assert module in nginx[0].binaries and "/bin/busybox" in nginx[0].binaries  # busybox wget: health checks
    assert f"load_module {module};" in (images.RECIPES / "workloads/nginx/etc/nginx/nginx.conf").read_text()
    assert "libnginx-mod-http-headers-more-filter" in images.node_packages()


def _laid(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_assemble_lays_the_nginx_page_and_config_where_nginx_reads_them(tmp_path):
    images.lay_workload_files(tmp_path, "nginx")
    files = _laid(tmp_path)
    assert "root /usr/share/nginx/html;" in files["etc/nginx/nginx.conf"]
    assert "user www-data;" in files["etc/nginx/nginx.conf"]
    assert "<h1>Welcome to nginx!</h1>" in files["usr/share/nginx/html/index.html"]
    assert "www-data:x:33:33:" in files["etc/passwd"] and files["etc/passwd"].startswith("root:x:0:0:")
    assert "www-data:x:33:" in files["etc/group"] and "nogroup:x:65534:" in files["etc/group"]
    assert files["etc/nsswitch.conf"] == (images.RECIPES / "workloads/common/etc/nsswitch.conf").read_text()
    assert 'NAME="labkit nginx"' in files["etc/os-release"]
    # latest names Debian's real version and keeps nginx's own Server header
    assert 'set $labkit_version "nginx/$nginx_version";' in files["etc/nginx/labkit/version.conf"]
    assert "more_set_headers" not in files["etc/nginx/labkit/version.conf"]


def _nginx_conf(files: dict[str, str]) -> str:
    """nginx.conf with its includes of etc/nginx/labkit/ inlined, as nginx reads it."""
    conf = files["etc/nginx/nginx.conf"]
    for rel in ("labkit/version.conf", "labkit/health.conf"):
        assert f"include /etc/nginx/{rel};" in conf
        conf = conf.replace(f"include /etc/nginx/{rel};", files[f"etc/nginx/{rel}"])
    return conf


@pytest.mark.parametrize("tag", ["latest", "1.24", "1.25", "1.26-broken"])
def test_every_nginx_tag_answers_whoami_and_health(tmp_path, tag):
    images.lay_workload_files(tmp_path, f"nginx:{tag}")
    conf = _nginx_conf(_laid(tmp_path))
    whoami = conf.split("location = /whoami {", 1)[1].split("}", 1)[0]
    assert 'return 200 "$hostname $labkit_version\\n";' in whoami and "default_type text/plain;" in whoami
    health = conf.split("location = /health {", 1)[1].split("}", 1)[0]
    if tag.endswith("-broken"):
        assert "return 500 " in health
    else:
        assert 'return 200 "ok\\n";' in health


@pytest.mark.parametrize("tag", ["1.24", "1.25", "1.26-broken"])
def test_versioned_nginx_tags_name_their_version_in_page_header_and_whoami(tmp_path, tag):
    version = tag.removesuffix("-broken")
    images.lay_workload_files(tmp_path, f"nginx:{tag}")
    files = _laid(tmp_path)
    page = files["usr/share/nginx/html/index.html"]
    assert "<h1>Welcome to nginx!</h1>" in page and f"nginx {version}" in page
    conf = _nginx_conf(files)
    assert f'more_set_headers "Server: nginx/{version}";' in conf
    assert f'set $labkit_version "nginx/{version}";' in conf
    others = {"1.24", "1.25", "1.26"} - {version}
    assert not any(f"nginx {v}" in page or f"nginx/{v}" in conf for v in others)
    assert f'VERSION_ID="{tag}"' in files["etc/os-release"]
    assert f"labkit stand-in for nginx:{tag}" in files["etc/os-release"]


def test_only_the_broken_nginx_tag_fails_its_health_check(tmp_path):
    laid = {}
    for tag in ("1.25", "1.26-broken"):
        images.lay_workload_files(tmp_path / tag, f"nginx:{tag}")
        laid[tag] = _laid(tmp_path / tag)
    assert "return 500" in laid["1.26-broken"]["etc/nginx/labkit/health.conf"]
    assert "return 500" not in laid["1.25"]["etc/nginx/labkit/health.conf"]
    # everything else 1.26-broken serves is 1.25's, with its own version number
    same = {rel for rel in laid["1.25"] if rel not in ("etc/nginx/labkit/health.conf", "etc/os-release")}
    for rel in same:
        assert laid["1.26-broken"][rel].replace("1.26-broken", "1.26") == laid["1.25"][rel].replace("1.25", "1.26"), rel


def test_assemble_gives_alpine_the_common_workload_files_only(tmp_path):
    images.lay_workload_files(tmp_path, "alpine")
    files = _laid(tmp_path)
    assert set(files) == {"etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/os-release"}
    assert "www-data" not in files["etc/passwd"] + files["etc/group"]
    assert 'NAME="labkit alpine"' in files["etc/os-release"]
    assert "labkit stand-in for alpine" in files["etc/os-release"]


def test_assemble_replaces_files_and_symlinks_without_following_them(tmp_path):
    outside = tmp_path / "host-os-release"
    outside.write_text("the host's\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").symlink_to(outside)
    (root / "etc/passwd").write_text("stale\n")
    images.lay_workload_files(root, "alpine")
    assert outside.read_text() == "the host's\n"
    assert not (root / "etc/os-release").is_symlink()
    assert (root / "etc/passwd").read_text() == (images.RECIPES / "workloads/common/etc/passwd").read_text()


def test_node_packages_leave_the_engine_to_install_engine_sh():
    packages = images.node_packages()
    assert "docker.io" not in packages and "docker-registry" in packages
    assert "docker.io" in (images.RECIPES / "install-engine.sh").read_text()
    assert all(p and not p.startswith("#") and p == p.strip() for p in packages)


def test_node_packages_ignore_comments_and_blank_lines(recipes):
    (recipes / "node-packages.txt").write_text("# engine\ndocker.io\n\n   \n# tools\nkmod  \n")
    assert images.node_packages() == ["docker.io", "kmod"]


# ---------------------------------------------------------------- dind


def test_dockerd_listens_only_on_unix_sockets():
    flags = dind.dockerd_flags("172.30.10.2", 999)
    hosts = [f.split("=", 1)[1] for f in flags if f.startswith(("--host=", "-H"))]
    assert hosts
    assert all(h.startswith("unix://") for h in hosts)
    assert "unix:///labkit/docker.sock" in hosts
    assert not any("tcp://" in f for f in flags)


def test_dockerd_uses_the_hub_for_dns_and_as_registry_mirror():
    flags = dind.dockerd_flags("172.30.10.2", 999)
    assert "--dns=172.30.10.2" in flags
    assert "--registry-mirror=http://172.30.10.2:5000" in flags
    assert "--insecure-registry=172.30.10.2:5000" in flags


def test_dockerd_socket_group_is_passed_on():
    assert "--group=999" in dind.dockerd_flags("172.30.10.2", 999)


def test_fallback_host_config_drops_sys_resource_and_is_not_privileged():
    config = dind.FALLBACK_HOST_CONFIG
    assert "SYS_RESOURCE" in config["cap_drop"]
    assert not config.get("privileged", False)


# ---------------------------------------------------------------- doctor


def fake_kernel(
    tmp_path: Path, *, filesystems: str = "", ipvs: str | None = None, vxlan: bool = False, cgroup2: bool = False
) -> tuple[Path, Path]:
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    proc.mkdir()
    sys.mkdir()
    (proc / "filesystems").write_text(filesystems)
    if ipvs == "proc":
        (proc / "sys/net/ipv4/vs").mkdir(parents=True)
    elif ipvs == "module":
        (sys / "module/ip_vs").mkdir(parents=True)
    if vxlan:
        (sys / "module/vxlan").mkdir(parents=True)
    if cgroup2:
        (sys / "fs/cgroup").mkdir(parents=True)
        (sys / "fs/cgroup/cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    return proc, sys


def finding(findings: list[Finding], name: str) -> Finding:
    (match,) = [f for f in findings if f.name == name]
    return match


def test_ipvs_absent_warns_about_the_routing_mesh(tmp_path):
    ipvs = finding(kernel_findings(*fake_kernel(tmp_path)), "IPVS")
    assert ipvs.level == "warn"
    # a fact about this machine: what does not work, and what does
    assert ipvs.detail.startswith("absent: the routing mesh")
    assert "do not work" in ipvs.detail
    assert "mode=host" in ipvs.detail
    assert "--endpoint-mode dnsrr" in ipvs.detail
    assert "instead" not in ipvs.detail  # no promise of what labs will do


@pytest.mark.parametrize("where", ["proc", "module"])
def test_ipvs_present_is_ok(tmp_path, where):
    assert finding(kernel_findings(*fake_kernel(tmp_path, ipvs=where)), "IPVS").level == "ok"


def test_overlay_listed_in_proc_filesystems_is_ok(tmp_path):
    proc, sys = fake_kernel(tmp_path, filesystems="nodev\tsysfs\nnodev\ttmpfs\nnodev\toverlay\n\text4\n")
    assert finding(kernel_findings(proc, sys), "overlay filesystem").level == "ok"


def test_overlay_missing_warns_about_vfs(tmp_path):
    proc, sys = fake_kernel(tmp_path, filesystems="nodev\tsysfs\n\text4\n")
    overlay = finding(kernel_findings(proc, sys), "overlay filesystem")
    assert overlay.level == "warn"
    assert "vfs" in overlay.detail


def test_missing_proc_filesystems_means_no_overlay(tmp_path):
    assert finding(kernel_findings(tmp_path / "noproc", tmp_path / "nosys"), "overlay filesystem").level == "warn"


def test_cgroup_v2_detected_from_cgroup_controllers(tmp_path):
    assert finding(kernel_findings(*fake_kernel(tmp_path, cgroup2=True)), "cgroups").detail == "v2"


def test_cgroup_v1_without_cgroup_controllers(tmp_path):
    assert finding(kernel_findings(*fake_kernel(tmp_path)), "cgroups").detail == "v1"


def test_vxlan_module_detection(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert finding(kernel_findings(*fake_kernel(tmp_path / "a", vxlan=True)), "vxlan").level == "ok"
    assert finding(kernel_findings(*fake_kernel(tmp_path / "b")), "vxlan").level == "warn"


def test_kernel_findings_levels_are_known():
    # Reads this machine's real /proc and /sys: only the shape is checked.
    findings = kernel_findings()
    assert {f.name for f in findings} == {"overlay filesystem", "vxlan", "IPVS", "cgroups"}
    assert all(f.level in ("ok", "warn", "fail") for f in findings)
