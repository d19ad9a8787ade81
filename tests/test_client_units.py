"""labkit.client reads a command's whole output, even when its first frame comes with the response's
headers (docker/docker-py#3332: a `%%node` cell had lost its first line in a CI run).

The engine here is a unix socket that answers `exec start` byte for byte as dockerd does, in the one
order that trips docker-py: the upgrade headers and the first frame in a single write.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from labkit.client import DockerClient

UPGRADE = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
           b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
PROMPT = b"manager1$ docker service rm pinger\n"


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def serve(listener: socket.socket, writes: list[bytes]) -> None:
    """Answer one request with WRITES, each a separate send, then hang up."""
    conn, _ = listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        head, _, body = request.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(4096)
        for data in writes:
            conn.sendall(data)
            threading.Event().wait(0.05)  # the next write comes later, as a command's next line does


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    with listener:
        yield f"unix://{path}", listener


def exec_output(client_class: type[docker.DockerClient], engine: tuple[str, socket.socket],
                writes: list[bytes], **kwargs: bool) -> object:
    url, listener = engine
    server = threading.Thread(target=serve, args=(listener, writes), daemon=True)
    server.start()
    client = client_class(base_url=url, version="1.41", timeout=10)
    try:
        return client.api.exec_start("e1", **kwargs)
    finally:
        server.join(5)
        client.close()


def test_the_first_frame_sent_with_the_headers_is_kept(engine: tuple[str, socket.socket]) -> None:
    out = exec_output(DockerClient, engine, [UPGRADE + frame(1, PROMPT), frame(1, b"pinger\n")], demux=True)
    assert out == (PROMPT + b"pinger\n", None)


def test_stdout_and_stderr_are_told_apart_and_joined_in_order(engine: tuple[str, socket.socket]) -> None:
    writes = [UPGRADE + frame(1, b"one\n") + frame(2, b"oops\n"), frame(1, b"two\n")]
    assert exec_output(DockerClient, engine, writes, demux=True) == (b"one\ntwo\n", b"oops\n")


def test_a_cut_off_stream_returns_what_came(engine: tuple[str, socket.socket]) -> None:
    """The engine went away mid-frame (a node stopped): what came is kept, nothing hangs."""
    writes = [UPGRADE + frame(1, b"done\n") + struct.pack(">BxxxL", 1, 100) + b"part"]
    assert exec_output(DockerClient, engine, writes) == b"done\npart"


def test_a_tty_stream_is_read_as_it_comes(engine: tuple[str, socket.socket]) -> None:
    assert exec_output(DockerClient, engine, [UPGRADE + b"hello ", b"world\n"], tty=True) == b"hello world\n"


def test_the_stock_client_still_loses_it(engine: tuple[str, socket.socket]) -> None:
    """Why labkit.client exists. When this fails, docker-py reads its buffer: labkit.client can go."""
    out = exec_output(docker.DockerClient, engine, [UPGRADE + frame(1, PROMPT), frame(1, b"pinger\n")],
                      demux=True)
    assert out == (b"pinger\n", None)  # the CI run's symptom: the prompt line gone


def answer_version(listener: socket.socket) -> None:
    """Answer one `GET /version` as an engine would."""
    conn, _ = listener.accept()
    with conn:
        while b"\r\n\r\n" not in conn.recv(4096):
            pass
        body = b'{"ApiVersion": "1.41", "Version": "20.10.24"}'
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_an_engine_over_tcp_is_reached_directly_whatever_proxy_the_environment_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A workshop machine with HTTP_PROXY set: labkit still talks to the lab's engines (a Vagrant VM's,
    over TCP) directly, not through a proxy that cannot reach them."""
    with socket.socket() as dead:  # a proxy address nothing listens on
        dead.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = threading.Thread(target=answer_version, args=(listener,), daemon=True)
        server.start()
        client = DockerClient(base_url=f"tcp://127.0.0.1:{listener.getsockname()[1]}", version="1.41", timeout=5)
        try:
            assert client.version()["Version"] == "20.10.24"
        finally:
            client.close()
            server.join(5)
