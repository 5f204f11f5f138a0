"""API submissions per second and latency with concurrent clients.

Runs a center (embedded backend, scheduler paused so that the machine's two cores go
to the API and the database, not to running the submitted jobs) in a server process,
and drives it from this process with N keep-alive HTTP/1.1 connections, each
submitting `#SBATCH` scripts of jobs that do nothing, one request at a time.

    .venv/bin/python benchmarks/api_submit.py --db sqlite --clients 32 --seconds 20
    .venv/bin/python benchmarks/api_submit.py --db postgresql+psycopg://postgres@127.0.0.1:54329/postgres

Prints one JSON line: database, clients, requests, errors, rate (submissions/s),
p50/p90/p99 latency in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

SCRIPT = "#!/bin/sh\n#SBATCH --time=1\ntrue\n"
PROJECTS = 8
CLIENTS_MAX = 256
#: Callables run on the benchmark center before serving (e.g. funding the projects).
SETUP_HOOKS: list = []  # type: ignore[type-arg]


def _serve(db_url: str, data_dir: str, port: int,
           ready: multiprocessing.Queue,  # type: ignore[type-arg]
           batches: Any, workers: int) -> None:
    from lightgrid.api.app import create_app
    from lightgrid.api.workers import listen, serve_socket, start_api_workers
    from lightgrid.center import tenancy
    from lightgrid.center.auth import issue_token
    from lightgrid.center.service import Center
    from lightgrid.settings import load_settings

    settings = load_settings(None, data_dir=Path(data_dir), database_url=db_url,
                             api_workers=workers)
    center = Center.from_settings(settings)
    tokens = []
    # Many users in several projects, as on a real center (one client per user).
    with center.factory() as s, s.begin():
        org = tenancy.create_org(s, "bench-org", "university")
        projects = [tenancy.create_project(s, org, f"bench{p}") for p in range(PROJECTS)]
        for i in range(CLIENTS_MAX):
            user = tenancy.create_user(s, f"bench-user{i}")
            tenancy.add_member(s, projects[i % PROJECTS], user)
            tokens.append(issue_token(s, user)[1])
    for hook in SETUP_HOOKS:
        hook(center)
    # The scheduler stays paused: jobs are accepted and queued, not run.
    center.intake.start()
    # How many submissions the group commits carried (batches[0] of them in batches[1]).
    submit_many = center.jobs.submit_many

    def recording(items):  # type: ignore[no-untyped-def]
        batches[0] += len(items)
        batches[1] += 1
        return submit_many(items)

    center.jobs.submit_many = recording  # type: ignore[method-assign]
    app = create_app(center, manage_lifecycle=False)
    sock = listen("127.0.0.1", port, shared=workers > 1)
    if workers > 1:
        # The extra API processes (as `lightgrid serve` starts them); the backend
        # server is started here by hand since the center's loops stay stopped.
        start_api_workers(center, workers - 1, "127.0.0.1", port)
        center.background[-1].start()
    ready.put(tokens)
    serve_socket(app, sock)


async def _client(port: int, token: str, body: bytes, stop_at: float,
                  latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    request = head + body
    while time.perf_counter() < stop_at:
        start = time.perf_counter()
        writer.write(request)
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - start)
        if not status_line.startswith(b"HTTP/1.1 201"):
            errors.append(int(status_line.split()[1]))
            if len(errors) == 1:
                print("first error:", status_line.decode().strip(), file=sys.stderr)
    writer.close()


async def _load(port: int, tokens: list[str], clients: int, seconds: float,
                warmup: float) -> tuple[list[float], list[int], float]:
    body = json.dumps({"script": SCRIPT}).encode()
    scratch: list[float] = []
    await asyncio.gather(*(_client(port, tokens[i], body, time.perf_counter() + warmup,
                                   scratch, []) for i in range(clients)))
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, tokens[i], body, start + seconds, latencies,
                                   errors) for i in range(clients)))
    return latencies, errors, time.perf_counter() - start


def _pg_cpu() -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL process on this machine."""
    import psutil

    out = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] in ("postgres", "postmaster") and proc.info["cpu_times"]:
            out[proc.pid] = proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return out


def _tree_cpu(proc: Any) -> float:
    """CPU seconds of the server process and its API worker processes."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def _wait_for_processes(port: int, count: int) -> None:
    """Until `count` API processes answer (new connections go to any of them)."""
    import httpx

    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while len(seen) < count and time.monotonic() < deadline:
        try:
            seen.add(httpx.get(f"http://127.0.0.1:{port}/api/v1/status",
                               timeout=5).json()["process_id"])
        except httpx.TransportError:
            time.sleep(0.1)
    if len(seen) < count:
        raise SystemExit(f"only {len(seen)} of {count} API processes answered")


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fresh_pg(url: str) -> tuple[str, str]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(url)
    name = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(f"host={admin.host} port={admin.port} user={admin.username} "
                         f"dbname={admin.database}", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name).render_as_string(hide_password=False), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="sqlite", help="'sqlite' or a PostgreSQL URL")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--workers", type=int, default=1,
                        help="API processes (the center's api_workers setting)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db_label = "sqlite" if args.db == "sqlite" else "postgresql"
        db_url = f"sqlite:///{tmp}/bench.db" if args.db == "sqlite" else _fresh_pg(args.db)[0]
        port = _free_port()
        ready: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        batches = multiprocessing.Array("q", 2, lock=False)
        server = multiprocessing.Process(target=_serve,
                                         args=(db_url, tmp, port, ready, batches,
                                               args.workers))
        # Not a daemon: it starts the extra API processes itself. Stopped below, or
        # at exit if this process fails first.
        atexit.register(server.terminate)
        server.start()
        tokens = ready.get(timeout=120)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        _wait_for_processes(port, args.workers)
        import psutil

        proc = psutil.Process(server.pid)
        pg_before = _pg_cpu()
        cpu_before = _tree_cpu(proc)
        client_before = time.process_time()
        latencies, errors, elapsed = asyncio.run(
            _load(port, tokens, args.clients, args.seconds, args.warmup))
        client_cpu = time.process_time() - client_before
        cpu_after = _tree_cpu(proc)
        pg_after = _pg_cpu()
        submitted, commits = batches[0], batches[1]
        server.terminate()
        server.join(10)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    # CPU per request, measured on the server process (and on PostgreSQL's processes):
    # unlike the rate, it hardly depends on what else the machine is doing.
    warm = len(latencies)
    server_cpu = cpu_after - cpu_before
    print(json.dumps({
        "server_cpu_ms_per_request": round(server_cpu / max(warm, 1) * 1000, 3),
        "postgres_cpu_ms_per_request": round(_cpu_delta(pg_before, pg_after)
                                             / max(warm, 1) * 1000, 3),
        # The load generator's own CPU (warm-up included), on the same two cores.
        "client_cpu_ms_per_request": round(client_cpu / max(warm, 1) * 1000, 3),
        "mean_batch": round(submitted / max(commits, 1), 1), "api_processes": args.workers,
        "database": db_label, "clients": args.clients, "seconds": round(elapsed, 1),
        "requests": len(latencies), "errors": len(errors),
        "rate": round(len(latencies) / elapsed, 1), "p50_ms": pct(0.50),
        "p90_ms": pct(0.90), "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "cpus": os.cpu_count(), "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
