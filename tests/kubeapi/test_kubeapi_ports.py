"""The test API server's fixture (tests/kubeapi/server.py) against the free-port race: a port another process
takes between free_port() and the bind is retried with another one, and a stranger listening on our port is
never taken for our server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.kubeapi import server
from tests.kubeapi.server import ApiServer, Etcd


@contextmanager
def _taken_port() -> Iterator[int]:
    """A loopback port another process (here: this one) listens on."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        yield int(taken.getsockname()[1])


def _first_port_taken(monkeypatch: pytest.MonkeyPatch, taken: int) -> list[int]:
    """free_port() answers `taken` once (as if it was taken right after the kernel said it was free), then
    honestly; returns the ports it handed out."""
    handed: list[int] = []
    honest = server.free_port

    def racing(host: str = "127.0.0.1") -> int:
        handed.append(taken if not handed else honest(host))
        return handed[-1]

    monkeypatch.setattr(server, "free_port", racing)
    return handed


def test_etcd_retries_a_port_taken_before_its_bind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _taken_port() as taken:
        handed = _first_port_taken(monkeypatch, taken)
        etcd = Etcd(tmp_path / "etcd")
        try:
            etcd.start()
            assert handed[0] == taken and etcd.client_port not in (taken, 0)
            assert "address already in use" not in (tmp_path / "etcd" / "etcd.log").read_text()  # the log of the start that won
            assert etcd._healthy()
        finally:
            etcd.stop()


def test_kube_apiserver_retries_a_port_taken_before_its_bind(kube_etcd: Etcd, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _taken_port() as taken:
        handed = _first_port_taken(monkeypatch, taken)
        api = ApiServer("port-race", tmp_path / "api", kube_etcd)
        try:
            api.start()
            assert handed[0] == taken and api.port not in (taken, 0)
            assert api.process is not None and api.process.alive()
        finally:
            api.stop()
