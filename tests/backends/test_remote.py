"""A backend served to the center's other processes over its local socket."""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from lightgrid.backends.remote import BackendServer, RemoteBackend
from lightgrid.core.errors import BackendRejected, BackendUnavailable, InvalidRequest
from lightgrid.core.jobs import JobState
from tests.backends.test_embedded import make, request, wait_state

KEY = b"k" * 32


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    backend = make(tmp_path)
    # A short path: unix socket addresses are limited to about 100 bytes.
    address = Path(f"/tmp/lg-remote-{os.getpid()}-{id(tmp_path)}.sock")
    server = BackendServer(backend, address, KEY)
    server.start()
    try:
        yield backend, RemoteBackend(address, KEY, kind=backend.kind), address, server
    finally:
        server.stop()
        backend.stop()


def test_calls_run_in_the_serving_process_with_their_answers(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend, remote, address, _ = served
    assert stat.S_IMODE(address.stat().st_mode) & 0o077 == 0  # private to the service
    results = remote.submit_batch([request(tmp_path, 1, "echo one"),
                                   replace(request(tmp_path, 2, "true"), partition="nosuch"),
                                   request(tmp_path, 3, "sleep 30")])
    assert results[0].backend_id == "1" and results[2].backend_id == "3"
    assert isinstance(results[1], BackendRejected) and "invalid partition" in results[1].message
    assert wait_state(backend, "1", {JobState.COMPLETED}) is JobState.COMPLETED
    assert remote.poll(["1"])["1"].state is JobState.COMPLETED
    assert remote.usage(["1"])["1"].exit_code == 0
    assert [p.partition.name for p in remote.partitions()] == ["cpu"]
    assert remote.find_by_platform_id("job-3")[0].backend_id == "3"
    remote.cancel("3")
    assert wait_state(backend, "3", {JobState.CANCELLED}) is JobState.CANCELLED
    # A refusal keeps its class and the field it names.
    with pytest.raises(BackendRejected) as refused:
        remote.submit(replace(request(tmp_path, 4, "true"), partition="nosuch"))
    assert refused.value.field == "partition"


def test_each_thread_has_its_own_connection(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, remote, _, _ = served
    answers: list[str] = []

    def submit(n: int) -> None:
        answers.append(remote.submit(request(tmp_path, n, "true")).backend_id)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(10, 20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == [str(n) for n in range(10, 20)]


def test_only_the_interface_can_be_called(served) -> None:  # type: ignore[no-untyped-def]
    _, remote, _, _ = served
    with pytest.raises(InvalidRequest, match="no backend method 'stop'"):
        remote._call("stop")


def test_a_stopped_or_unreachable_server_is_backend_unavailable(served) -> None:  # type: ignore[no-untyped-def]
    _, remote, _, server = served
    assert remote.partitions()
    server.stop()
    with pytest.raises(BackendUnavailable):
        remote.partitions()  # the open connection is gone
    with pytest.raises(BackendUnavailable, match="not reachable"):
        remote.partitions()  # and no new one can be made


def test_a_wrong_secret_is_refused(served) -> None:  # type: ignore[no-untyped-def]
    _, remote, address, _ = served
    with pytest.raises(BackendUnavailable):
        RemoteBackend(address, b"x" * 32, kind="embedded").partitions()
    assert remote.partitions()  # and the server goes on serving the others
