"""The checks of lab trust (labkit/checks/trust.py) through each of their outcomes, on the fake cluster of
tests/fakes.py, with the steps, hints and explanations of labs/13-trust.toml. The scenes follow the lab: the
worker token saved on worker2 and rotated, worker2 out of the swarm (left, removed) and back with the current
token, worker1 promoted and demoted (its certificate's OU follows), 720h certificates, the root CA rotated
(every certificate re-issued, new tokens), and worker2 back in with a token of the new CA. Each node's
certificate is a real one on its fake disk, read as the learner's openssl prints it (checked against this
machine's openssl below).
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labkit.checks.pki import _dn, _validity_days, cert_on_disk
from tests.fakes import (
    NODE_CERT,
    NODE_CERT_READ,
    FakeLab,
    FakeNode,
    ca_digest,
    issue_cert,
    leave_swarm,
    real_pem,
    rejoin,
    rotate_ca,
    rotate_token,
    save_file,
    set_cert_expiry,
    set_role,
    trust_lab,
)
from tests.test_checks_offline import (  # noqa: F401 (no_real_engine: autouse, so no real engine here either)
    answer_of,
    explain,
    failed,
    hints,
    no_real_engine,
    passed,
    run_check,
    step_for,
    wrong_answer,
)

TRUST_CHECKS = ["token_rotated", "node_removed", "rejoined", "promoted", "demoted", "cert_expiry", "ca_rotated",
                "rejoined_new_ca"]
OLD_TOKEN, TOKEN_BEFORE_CA, CERT_BEFORE = "/root/old-token", "/root/token-before-ca", "/root/cert-before"


def short(token: str) -> str:
    _, _, digest, secret = token.split("-")
    return f"SWMTKN-1-{digest[:10]}…-…{secret[-6:]}"


# --- scenes, in the lab's order -------------------------------------------------------------------


def rotated_lab() -> tuple[FakeLab, str]:
    """rotate-token done: the worker token saved on worker2 at 5 s, then rotated. The saved token."""
    lab = trust_lab()
    old = lab.swarm.tokens["Worker"]
    save_file(lab, "worker2", OLD_TOKEN, old + "\n", at=5)
    rotate_token(lab)
    return lab, old


def removed_lab() -> tuple[FakeLab, str]:
    """remove done: worker2 left (its certificates gone) and manager1 removed it."""
    lab, old = rotated_lab()
    leave_swarm(lab, "worker2")
    lab.remove_node("worker2")
    return lab, old


def rejoined_lab() -> tuple[FakeLab, str]:
    """rejoin done: worker2 joined again at 30 s with the current worker token."""
    lab, old = removed_lab()
    rejoin(lab, "worker2", at=30)
    return lab, old


def promoted_lab() -> FakeLab:
    lab, _ = rejoined_lab()
    set_role(lab, "worker1", "manager")
    return lab


def demoted_lab() -> FakeLab:
    lab = promoted_lab()
    set_role(lab, "worker1", "worker")
    return lab


def expiry_lab() -> tuple[FakeLab, str]:
    """cert-expiry done: 720h for new certificates; worker1's serial and dates saved at 40 s. Its serial."""
    lab = demoted_lab()
    set_cert_expiry(lab, 720)
    printed = lab["worker1"].outputs[NODE_CERT_READ]
    assert isinstance(printed, str)
    save_file(lab, "worker1", CERT_BEFORE, printed.split("\n", 1)[1], at=40)
    return lab, printed.split("serial=")[1].split("\n")[0]


def ca_lab(behind: tuple[str, ...] = ()) -> tuple[FakeLab, str, str]:
    """ca-rotate done: the worker token saved on worker2 at 50 s, the root CA rotated at 55 s (the nodes of
    BEHIND still on the old CA). worker1's serial before, and the saved token."""
    lab, serial = expiry_lab()
    token = lab.swarm.tokens["Worker"]
    save_file(lab, "worker2", TOKEN_BEFORE_CA, token + "\n", at=50)
    rotate_ca(lab, behind=behind, at=55)
    return lab, serial, token


def ca_token_lab() -> tuple[FakeLab, str]:
    """ca-token done: worker2 left, was removed, and joined at 70 s with a token of the new CA."""
    lab, _, token = ca_lab()
    leave_swarm(lab, "worker2")
    lab.remove_node("worker2")
    rejoin(lab, "worker2", at=70)
    return lab, token


# --- trust:rotate-token -----------------------------------------------------------------------------


def test_token_rotated_no_the_members_stay():
    lab, old = rotated_lab()
    assert answer_of("token_rotated", lab) == "no"
    for answer in ("no", "No, they stay."):
        passed(run_check("token_rotated", lab, answer), "Right:")
    assert run_check("token_rotated", lab, "no").evidence == (
        f"saved in /root/old-token on worker2: {short(old)}",
        f"the swarm's worker token now: {short(lab.swarm.tokens['Worker'])}: same CA digest, new secret",
        "members: worker1 ready, worker2 ready")


def test_token_rotated_yes_is_explained():
    lab, _ = rotated_lab()
    result = run_check("token_rotated", lab, "yes")
    wrong_answer(result, "yes", explain("token_rotated", "yes"))
    assert result.hint == hints("token_rotated")[0]
    failed(run_check("token_rotated", lab, None), "Predict, run the command(s), then answer: When the worker token")


def test_token_rotated_answer_follows_the_members():
    lab, _ = rotated_lab()
    lab.mark_node("worker1", "down", at=9)
    assert answer_of("token_rotated", lab) == "yes"
    passed(run_check("token_rotated", lab, "yes"))


def test_token_rotated_no_saved_token():
    lab = trust_lab()
    failed(run_check("token_rotated", lab, "no"), "worker2 has no saved worker token in /root/old-token.",
           hint=hints("token_rotated")[0])
    save_file(lab, "worker2", OLD_TOKEN, "paste here\n")
    failed(run_check("token_rotated", lab, "no"), "worker2 has no saved worker token in /root/old-token.")


def test_token_rotated_saved_but_not_rotated_or_the_manager_token_rotated():
    lab = trust_lab()
    save_file(lab, "worker2", OLD_TOKEN, lab.swarm.tokens["Worker"] + "\n")
    rotate_token(lab, "Manager")
    result = run_check("token_rotated", lab, "no")
    failed(result, "The worker token is still the one saved in /root/old-token: it was not rotated since.",
           hint="`docker swarm join-token --rotate worker` (`worker`: rotating the manager token leaves")
    assert result.evidence[0] == result.evidence[1].replace("the swarm's worker token now", "saved in "
                                                            "/root/old-token on worker2")


def test_token_rotated_a_malformed_swarm_token():
    lab, _ = rotated_lab()
    lab.swarm.tokens["Worker"] = "garbage"
    failed(run_check("token_rotated", lab, "no"), "The swarm's worker token is missing or malformed.")


def test_token_rotated_with_the_root_ca_rotated_too():
    lab = trust_lab()
    save_file(lab, "worker2", OLD_TOKEN, lab.swarm.tokens["Worker"] + "\n")
    rotate_ca(lab)
    result = run_check("token_rotated", lab, "no")
    passed(result)
    assert result.evidence[1].endswith(": a new CA digest (the root CA was rotated too)")


# --- trust:remove -----------------------------------------------------------------------------------


def test_node_removed_passes_with_no_certificate_left():
    lab, _ = removed_lab()
    result = run_check("node_removed", lab)
    passed(result, "worker2 left and the managers forgot it.")
    assert result.evidence == (
        "worker2: Swarm: inactive", "manager1 lists no worker2",
        f"{NODE_CERT} on worker2: gone: it has no certificate to show the managers; only a valid join token "
        "brings it back")


def test_node_removed_still_a_member_the_refused_node_rm():
    lab, _ = rotated_lab()  # `docker node rm worker2` while it is up is refused: nothing changed
    result = run_check("node_removed", lab)
    failed(result, "worker2 is still a member of the swarm.", hint=hints("node_removed")[0])
    assert "refuses a node that is still up" in result.hint
    assert result.evidence == ("worker2: Swarm: active", "manager1 lists worker2: ready")


def test_node_removed_left_but_not_down_yet_is_pending():
    lab, _ = rotated_lab()
    leave_swarm(lab, "worker2")
    lab.mark_node("worker2", "ready", at=12)  # the managers notice about 10 s later
    result = run_check("node_removed", lab)
    failed(result, "worker2 left; the managers have not marked it Down yet.", pending=True,
           hint="mark a node that left Down within about 10 s; then run `docker node rm worker2` on manager1.")


def test_node_removed_left_but_still_listed_down():
    lab, _ = rotated_lab()
    leave_swarm(lab, "worker2")
    result = run_check("node_removed", lab)
    failed(result, "worker2 left, but the managers still list it (Down).",
           hint="On manager1 run `docker node rm worker2`")
    assert result.evidence == ("worker2: Swarm: inactive", "manager1 lists worker2: down")


def test_node_removed_by_force_while_up():
    lab, _ = rotated_lab()
    lab.remove_node("worker2")  # `docker node rm --force worker2`, no leave
    result = run_check("node_removed", lab)
    failed(result, "worker2 was removed by force while it was up: its engine still believes it is a member",
           hint=hints("node_removed")[1])
    assert "docker swarm leave --force" in result.hint


# --- trust:rejoin -------------------------------------------------------------------------------------


def test_rejoined_with_the_current_token():
    lab, old = rejoined_lab()
    entry = lab.swarm.nodes[-1]
    result = run_check("rejoined", lab)
    passed(result, "worker2 is back in the swarm with the current token; the old one admits no one.")
    assert result.evidence[:2] == (
        f"token in /root/old-token: {short(old)}; the swarm's worker token: {short(lab.swarm.tokens['Worker'])}",
        "that token's secret was rotated away: the managers refuse it ('A valid join token is necessary to join "
        "this cluster')")
    assert result.evidence[2] == f"worker2: worker, ready, node id {entry['ID'][:12]}…, joined at 12:00:30"
    assert result.evidence[3].startswith(f"worker2's certificate on its disk: OU=swarm-worker, CN={entry['ID'][:12]}…")
    assert result.evidence[3].endswith("valid 90 days, verified against the root CA: OK")


def test_rejoined_not_in_the_swarm_the_old_token_refused():
    lab, _ = removed_lab()  # the join with /root/old-token was refused: worker2 is still out
    result = run_check("rejoined", lab)
    failed(result, "worker2 is not in the swarm.", hint=hints("rejoined")[0])
    assert "was rotated away" in result.hint
    assert result.evidence[-1] == "worker2: Swarm: inactive"


def test_rejoined_is_pending_while_joining():
    lab, _ = removed_lab()
    lab["worker2"].engine.local_state = "pending"
    failed(run_check("rejoined", lab), "worker2 is joining.", pending=True)


def test_rejoined_as_a_manager():
    lab, _ = removed_lab()
    rejoin(lab, "worker2", at=30, role="manager")
    failed(run_check("rejoined", lab), "worker2 joined as a manager, not as a worker.",
           hint="That was the manager token: on manager1 run `docker node demote worker2`.")


def test_rejoined_the_saved_token_is_still_the_current_one():
    lab = trust_lab()
    save_file(lab, "worker2", OLD_TOKEN, lab.swarm.tokens["Worker"] + "\n")
    failed(run_check("rejoined", lab), "The token in /root/old-token is still the swarm's worker token",
           hint="Rotate first: `docker swarm join-token --rotate worker` on manager1.")


def test_rejoined_pending_until_listed_ready_and_certified():
    lab, _ = rejoined_lab()
    lab.mark_node("worker2", "unknown", at=31)
    failed(run_check("rejoined", lab), "worker2 joined but is not Ready yet.", pending=True)
    lab.mark_node("worker2", "ready", at=32)
    lab["worker2"].files.pop(NODE_CERT)
    failed(run_check("rejoined", lab), "worker2 has no certificate of its own yet.", pending=True)
    issue_cert(lab, "worker2")
    lab.swarm.nodes[-1]["Description"]["TLSInfo"]["CertIssuerPublicKey"] = "another key"
    failed(run_check("rejoined", lab), "worker2's certificate is not yet signed by the swarm's current root CA.",
           pending=True)


def test_rejoined_the_managers_do_not_list_it_yet():
    lab, _ = rejoined_lab()
    lab.swarm.nodes.pop()
    failed(run_check("rejoined", lab), "worker2 is joining: the managers do not list it yet.", pending=True)


def test_rejoined_without_a_saved_token_still_judges_the_membership():
    lab, _ = rejoined_lab()
    del lab["worker2"].files[OLD_TOKEN]
    result = run_check("rejoined", lab)
    passed(result)
    assert result.evidence[0].startswith("worker2: worker, ready")


# --- trust:promote, demote ----------------------------------------------------------------------------


def test_promoted_swarm_manager_in_the_certificate():
    lab = promoted_lab()
    assert answer_of("promoted", lab) == "swarm-manager"
    for answer in ("swarm-manager", "OU=swarm-manager"):
        passed(run_check("promoted", lab, answer), "Right:")
    evidence = run_check("promoted", lab, "swarm-manager").evidence
    assert evidence[0] == "worker1: manager, reachable"
    assert evidence[1].startswith("worker1's certificate on its disk: OU=swarm-manager, CN=")


def test_promoted_swarm_worker_is_explained():
    lab = promoted_lab()
    result = run_check("promoted", lab, "swarm-worker")
    wrong_answer(result, "swarm-worker", explain("promoted", "swarm-worker"))
    failed(run_check("promoted", lab, None), "Predict, run the command(s), then answer: After the promotion")


def test_promoted_still_a_worker():
    lab, _ = rejoined_lab()
    failed(run_check("promoted", lab, "swarm-manager"), "worker1 is still a worker.", hint=hints("promoted")[0])


def test_promoted_pending_until_reachable_and_certified():
    lab, _ = rejoined_lab()
    set_role(lab, "worker1", "manager", cert_follows=False, reachability="unknown")
    failed(run_check("promoted", lab, "swarm-manager"), "worker1 is becoming a manager (unknown).", pending=True)
    lab.swarm.node("worker1")["ManagerStatus"]["Reachability"] = "reachable"
    assert answer_of("promoted", lab) == "swarm-manager"  # what the certificate will say: the CA follows the role
    failed(run_check("promoted", lab, "swarm-manager"), "worker1 is a manager for the swarm, but the certificate on "
           "its disk says OU=swarm-worker: the new one is on its way.", pending=True)
    lab["worker1"].files.pop(NODE_CERT)
    failed(run_check("promoted", lab, "swarm-manager"), "says OU=unreadable", pending=True)


@pytest.mark.parametrize("name", ["promoted", "demoted"])
def test_worker1_not_in_the_swarm(name):
    lab, _ = rejoined_lab()
    leave_swarm(lab, "worker1")
    lab.remove_node("worker1")
    failed(run_check(name, lab, "swarm-manager"), "worker1 is not in the swarm.",
           hint="Join worker1 as a worker first.")


def test_demoted_a_worker_again():
    lab = demoted_lab()
    result = run_check("demoted", lab)
    passed(result, "worker1 is a worker again, with a worker's certificate.")
    assert result.evidence[0] == "worker1: worker, ready; control API: refused (only managers serve it)"
    assert result.evidence[1].startswith("worker1's certificate on its disk: OU=swarm-worker")


def test_demoted_still_a_manager():
    failed(run_check("demoted", promoted_lab()), "worker1 is still a manager.", hint=hints("demoted")[0])


def test_demoted_pending_while_the_certificate_says_manager():
    lab = promoted_lab()
    set_role(lab, "worker1", "worker", cert_follows=False)
    result = run_check("demoted", lab)
    failed(result, "worker1 is a worker for the managers, but its certificate still says OU=swarm-manager: the CA "
           "issues a worker's certificate within seconds.", pending=True)


# --- trust:cert-expiry --------------------------------------------------------------------------------


def test_cert_expiry_90_days_on_disk():
    lab, _ = expiry_lab()
    assert answer_of("cert_expiry", lab) == "90"
    for answer in ("90", "90 days"):
        passed(run_check("cert_expiry", lab, answer), "Right:")
    evidence = run_check("cert_expiry", lab, "90").evidence
    assert evidence[0] == "CAConfig: NodeCertExpiry 720h (30 days), for certificates issued from now on"
    assert evidence[1].endswith("valid 90 days")


def test_cert_expiry_30_is_explained():
    lab, _ = expiry_lab()
    wrong_answer(run_check("cert_expiry", lab, "30"), "30", explain("cert_expiry", "30"))


def test_cert_expiry_not_set():
    lab = demoted_lab()
    result = run_check("cert_expiry", lab, "90")
    failed(result, "The swarm still issues node certificates for 90 days (2160h), not 720h.",
           hint=hints("cert_expiry")[0])
    assert result.evidence == ("CAConfig: NodeCertExpiry 2160h",)


def test_cert_expiry_unreadable_certificate():
    lab, _ = expiry_lab()
    lab["worker1"].files.pop(NODE_CERT)
    failed(run_check("cert_expiry", lab, "90"), "Could not read worker1's certificate.")
    assert answer_of("cert_expiry", lab) == ""


# --- trust:ca-rotate ------------------------------------------------------------------------------------


def test_ca_rotated_new_serial_30_days_new_token():
    lab, serial, token = ca_lab()
    assert answer_of("ca_rotated", lab) == "no"
    for answer in ("no", "No, it changes."):
        passed(run_check("ca_rotated", lab, answer), "Right:")
    evidence = run_check("ca_rotated", lab, "no").evidence
    assert evidence[0] == "root CA rotated (1 time); every node holds a certificate of the new CA"
    assert evidence[1].startswith(f"worker1's serial: {serial[:8]}… -> ")
    assert evidence[1].endswith("valid 30 days (certificates now live 30 days)")
    assert evidence[2] == f"worker token now: {short(lab.swarm.tokens['Worker'])} (before: {short(token)})"
    assert ca_digest(lab.swarm.ca_pem) in lab.swarm.tokens["Worker"]


def test_ca_rotated_yes_is_explained():
    lab, _, _ = ca_lab()
    wrong_answer(run_check("ca_rotated", lab, "yes"), "yes", explain("ca_rotated", "yes"))


def test_ca_rotated_not_yet_or_only_the_join_token():
    lab, _ = expiry_lab()
    rotate_token(lab)
    result = run_check("ca_rotated", lab, "no")
    failed(result, "The root CA has not been rotated yet.", hint=hints("ca_rotated")[0])
    assert result.evidence == ("CAConfig: ForceRotate 0",)


def test_ca_rotated_in_progress():
    lab, _, _ = ca_lab(behind=("worker2",))
    result = run_check("ca_rotated", lab, "no")
    failed(result, "The root CA rotation is in progress: worker2 still hold", pending=True)
    assert result.evidence == ("nodes on the old CA: worker2",)


def test_ca_rotated_worker1_still_shows_the_saved_certificate():
    lab, _ = expiry_lab()
    rotate_ca(lab, behind=("worker1",))
    lab.swarm.trust["RootRotationInProgress"] = False
    lab.swarm.node("worker1")["Description"]["TLSInfo"] = dict(lab.swarm.trust["TLSInfo"])
    failed(run_check("ca_rotated", lab, "no"), "worker1's certificate is still the one saved in /root/cert-before.",
           pending=True)
    lab["worker1"].files.pop(NODE_CERT)
    failed(run_check("ca_rotated", lab, "no"), "Could not read worker1's certificate.", pending=True)


def test_ca_rotated_token_saved_after_the_rotation():
    lab, _ = expiry_lab()
    rotate_ca(lab)
    save_file(lab, "worker2", TOKEN_BEFORE_CA, lab.swarm.tokens["Worker"] + "\n")
    assert answer_of("ca_rotated", lab) == "yes"
    failed(run_check("ca_rotated", lab, "yes"), "The token saved in /root/token-before-ca already names the new root "
           "CA: it was saved after the rotation.", hint="then run `docker swarm ca --rotate` on manager1 once more")


def test_ca_rotated_without_the_saved_copies():
    lab, _, _ = ca_lab()
    del lab["worker1"].files[CERT_BEFORE]
    del lab["worker2"].files[TOKEN_BEFORE_CA]
    result = run_check("ca_rotated", lab, "no")
    passed(result)
    assert "(no copy in /root/cert-before)" in result.evidence[1]
    assert result.evidence[2] == f"worker token now: {short(lab.swarm.tokens['Worker'])}"


# --- trust:ca-token ---------------------------------------------------------------------------------------


def test_rejoined_new_ca_with_a_token_of_the_new_ca():
    lab, token = ca_token_lab()
    result = run_check("rejoined_new_ca", lab)
    passed(result, "worker2 joined with a token of the new root CA and holds a certificate it signed.")
    assert result.evidence[0] == (f"token in /root/token-before-ca: {short(token)}; the swarm's worker token: "
                                  f"{short(lab.swarm.tokens['Worker'])}")
    assert result.evidence[1] == ("that token names the old root CA: a node given it refuses the swarm ('remote CA "
                                  "does not match fingerprint')")
    assert result.evidence[3].endswith("valid 30 days, verified against the root CA: OK")
    assert result.evidence[4] == f"the root CA's digest: {ca_digest(lab.swarm.ca_pem)[:10]}…, as in the current token"


def test_rejoined_new_ca_before_leaving():
    lab, _, _ = ca_lab()
    result = run_check("rejoined_new_ca", lab)
    failed(result, "worker2 is still the member it was before: it has not left and joined again since the token in "
           "/root/token-before-ca was saved.", hint="On worker2 run `docker swarm leave`; once it is Down, "
           "`docker node rm worker2` on manager1; then join with the current token.")
    assert result.evidence[-1] == "worker2 joined at 12:00:30, the token was saved at 12:00:50"


def test_rejoined_new_ca_the_old_ca_token_refused():
    lab, _, _ = ca_lab()
    leave_swarm(lab, "worker2")
    lab.remove_node("worker2")
    failed(run_check("rejoined_new_ca", lab), "worker2 is not in the swarm.", hint=hints("rejoined_new_ca")[0])
    assert "remote CA does not match fingerprint" in hints("rejoined_new_ca")[0]


def test_rejoined_new_ca_no_saved_token():
    lab, _ = ca_token_lab()
    del lab["worker2"].files[TOKEN_BEFORE_CA]
    failed(run_check("rejoined_new_ca", lab), "worker2 has no token saved in /root/token-before-ca: step ca-rotate "
           "saves it before the rotation.")


def test_rejoined_new_ca_token_saved_after_the_rotation_or_no_rotation():
    lab, _ = expiry_lab()
    rotate_ca(lab)
    save_file(lab, "worker2", TOKEN_BEFORE_CA, lab.swarm.tokens["Worker"] + "\n", at=60)
    rotate_token(lab)
    failed(run_check("rejoined_new_ca", lab), "The token in /root/token-before-ca names the current root CA: it was "
           "saved after the rotation.", hint="then on manager1 run `docker swarm ca --rotate` once more.")
    save_file(lab, "worker2", TOKEN_BEFORE_CA, lab.swarm.tokens["Worker"] + "\n", at=60)
    failed(run_check("rejoined_new_ca", lab), "The token in /root/token-before-ca is still the swarm's worker token",
           hint="Rotate first (`docker swarm ca --rotate` on manager1).")


@pytest.mark.parametrize("serial", [0x0ABC, 0xABC, 0xFF01, 0x80 << 120, 1])
def test_cert_on_disk_reads_what_the_learners_openssl_prints(serial: int, tmp_path: Path) -> None:
    """The rotation step compares the serial a learner saved with `openssl x509 -serial` with the one
    cert_on_disk reads: the same digits (a leading zero, a high bit), subject and lifetime."""
    pem = real_pem("nodeid", "swarm-worker", "swarmid", serial, datetime(2026, 11, 25, 12, tzinfo=UTC), 90)
    (tmp_path / "cert").write_text(pem)
    printed = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "cert"), "-noout", "-subject", "-serial",
                              "-startdate", "-enddate", "-nameopt", "RFC2253"], capture_output=True, text=True,
                             check=True).stdout
    node = FakeNode("worker1", "worker", "10.0.0.3")
    node.files[NODE_CERT] = pem
    lines = dict(line.split("=", 1) for line in printed.splitlines())
    assert cert_on_disk(node) == {"subject": _dn(f"subject={lines['subject']}"), "serial": lines["serial"],
                                  "days": _validity_days(printed)} == {
        "subject": {"CN": "nodeid", "OU": "swarm-worker", "O": "swarmid"}, "serial": lines["serial"], "days": 90}


def test_a_file_that_is_no_certificate_reads_as_none() -> None:
    node = FakeNode("worker1", "worker", "10.0.0.3")
    node.files[NODE_CERT] = "-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n"
    assert cert_on_disk(node) is None
    del node.files[NODE_CERT]
    assert cert_on_disk(node) is None
