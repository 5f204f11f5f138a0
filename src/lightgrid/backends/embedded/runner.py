"""The per-job runner: `python -m lightgrid.backends.embedded.runner JOB_DIR`.

Started detached (its own session) by the embedded backend, it outlives a restart of
the service. It runs the job script in its own process group, enforces the time
limit (SIGTERM, then SIGKILL after the grace period) and the memory allocation,
forwards cancellation, measures CPU time and peak RSS, and writes `status.json`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lightgrid.backends.embedded.records import (
    JOB_FILE,
    SCRIPT_FILE,
    STATUS_FILE,
    JobRecord,
    read_json,
    write_json_atomic,
)

_cancel_requested = False


def _on_term(signum: int, _frame: object) -> None:
    global _cancel_requested
    _cancel_requested = True


def _open_output(path: str) -> int:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _tree_rss(pid: int) -> int:
    """Resident memory of the job's process tree, in bytes (0 if unreadable)."""
    try:
        import psutil

        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except Exception:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except Exception:
            continue
    return total


def run(job_dir: Path) -> int:
    data = read_json(job_dir / JOB_FILE)
    if data is None:
        print(f"runner: no job record in {job_dir}", file=sys.stderr)
        return 2
    record = JobRecord.from_json(data)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)

    stdout_fd = _open_output(record.stdout)
    stderr_fd = stdout_fd if record.stderr == record.stdout else _open_output(record.stderr)
    script = job_dir / SCRIPT_FILE
    first = script.read_text(errors="replace").split("\n", 1)[0]
    argv = [str(script)] if first.startswith("#!") else ["/bin/sh", str(script)]
    start = time.time()
    try:
        proc = subprocess.Popen(argv, cwd=record.workdir, env=record.environment,
                                stdin=subprocess.DEVNULL, stdout=stdout_fd, stderr=stderr_fd,
                                start_new_session=True)
    except OSError as exc:
        os.write(stderr_fd, f"lightgrid: cannot start job script: {exc}\n".encode())
        end = time.time()
        write_json_atomic(job_dir / STATUS_FILE, {
            "state": "FAILED", "exit_code": 127, "start_time": start, "end_time": end,
            "cpu_time": 0.0, "max_rss": 0, "reason": f"cannot start: {exc}"})
        return 0
    os.close(stdout_fd)
    if stderr_fd != stdout_fd:
        os.close(stderr_fd)

    mem_limit = record.tres.get("mem", 0) * 1024 * 1024
    deadline = start + record.time_limit
    state, reason = None, ""
    kill_at: float | None = None
    peak_rss = 0
    rusage = None
    status = 0
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.time()
        if state is None:
            if _cancel_requested:
                state, reason = "CANCELLED", "cancelled"
            elif now >= deadline:
                state, reason = "TIMEOUT", "time limit reached"
            else:
                rss = _tree_rss(proc.pid)
                peak_rss = max(peak_rss, rss)
                if mem_limit and rss > mem_limit:
                    state, reason = "OUT_OF_MEMORY", "memory allocation exceeded"
                    _signal_group(proc.pid, signal.SIGKILL)
            if state in ("CANCELLED", "TIMEOUT"):
                _signal_group(proc.pid, signal.SIGTERM)
                kill_at = now + record.kill_grace
        elif kill_at is not None and now >= kill_at:
            _signal_group(proc.pid, signal.SIGKILL)
            kill_at = None
        time.sleep(0.05 if now - start < 2 else 0.25)
    end = time.time()
    # Reap what is left of the group (background children of the script).
    _signal_group(proc.pid, signal.SIGKILL)
    exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    if state is None:
        state = "COMPLETED" if exit_code == 0 else "FAILED"
    cpu = rusage.ru_utime + rusage.ru_stime if rusage else 0.0
    max_rss = max(peak_rss, (rusage.ru_maxrss * 1024) if rusage else 0)
    write_json_atomic(job_dir / STATUS_FILE, {
        "state": state, "exit_code": exit_code, "start_time": start, "end_time": end,
        "cpu_time": cpu, "max_rss": max_rss, "reason": reason})
    return 0


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]).resolve()))
