"""A second, deliberately plain implementation of the simulation model.

It shares nothing with lightgrid's scheduling code: it re-sorts and rebuilds
everything at every step, and reads the trace with its own parser. Tests compare the
two job by job.
"""

from __future__ import annotations

import contextlib
import gzip


def read_trace(path: str, procs: int | None = None, limit: int | None = None):
    """Return (P, jobs, skipped); jobs are dicts with id, submit, run, procs, est."""
    opener = gzip.open if path.endswith(".gz") else open
    header: dict[str, int] = {}
    jobs = []
    skipped = 0
    lines = 0
    with opener(path, "rt") as f:
        rows = []
        for line in f:
            s = line.strip()
            if not s:
                continue
            if s.startswith(";"):
                key, _, value = s[1:].partition(":")
                if value.split():
                    with contextlib.suppress(ValueError):
                        header[key.strip()] = int(value.split()[0])
                continue
            if limit is not None and lines >= limit:
                break
            lines += 1
            rows.append([float(x) for x in s.split()])
    if procs is None:
        procs = header.get("MaxProcs", -1)
        if procs <= 0:
            procs = header.get("MaxNodes", -1)
    for r in rows:
        run = int(r[3])
        p = int(r[7]) if r[7] > 0 else int(r[4])
        est = int(r[8]) if r[8] > 0 else run
        if run < 0 or p <= 0 or p > procs:
            skipped += 1
            continue
        jobs.append({"id": int(r[0]), "submit": int(r[1]), "run": min(run, est),
                     "procs": p, "est": est})
    return procs, jobs, skipped




def simulate(jobs, P, policy):
    """Return {id: (submit, start, end, procs)} for every job."""
    pending = sorted(jobs, key=lambda j: (j["submit"], j["id"]))
    arrivals = list(pending)
    queue: list[dict] = []
    running: list[dict] = []
    out = {}
    ai = 0
    while ai < len(arrivals) or queue or running:
        times = [j["end"] for j in running]
        if ai < len(arrivals):
            times.append(arrivals[ai]["submit"])
        t = min(times)
        for j in [j for j in running if j["end"] == t]:
            running.remove(j)
            out[j["id"]] = (j["submit"], j["start"], j["end"], j["procs"])
        while ai < len(arrivals) and arrivals[ai]["submit"] == t:
            queue.append(arrivals[ai])
            ai += 1
        queue.sort(key=lambda j: (j["submit"], j["id"]))
        if policy == "fcfs":
            started = _fcfs(queue, running, P, t)
        elif policy == "easy":
            started = _easy(queue, running, P, t)
        else:
            started = _conservative(queue, running, P, t)
        for j in started:
            queue.remove(j)
            j["start"] = t
            j["end"] = t + j["run"]
            running.append(j)
    return out


def _free(running, P):
    return P - sum(j["procs"] for j in running)


def _fcfs(queue, running, P, t):
    free = _free(running, P)
    started = []
    for j in queue:
        if j["procs"] > free:
            break
        free -= j["procs"]
        started.append(j)
    return started


def _easy(queue, running, P, t):
    started = _fcfs(queue, running, P, t)
    rest = [j for j in queue if j not in started]
    if not rest:
        return started
    held = running + [dict(j, start=t) for j in started]
    free = P - sum(j["procs"] for j in held)
    head = rest[0]
    ends = sorted({j["start"] + j["est"] for j in held})
    shadow = None
    extra = 0
    for e in ends:
        avail = free + sum(j["procs"] for j in held if j["start"] + j["est"] <= e)
        if avail >= head["procs"]:
            shadow = e
            extra = avail - head["procs"]
            break
    for j in rest[1:]:
        if j["procs"] > free:
            continue
        if t + j["est"] <= shadow:
            pass
        elif j["procs"] <= extra:
            extra -= j["procs"]
        else:
            continue
        free -= j["procs"]
        started.append(j)
    return started


def _conservative(queue, running, P, t):
    # Reservations as (start, end, procs); free at time x = P - sum over those covering x.
    booked = [(j["start"], j["start"] + j["est"], j["procs"]) for j in running]

    def free_at(x):
        return P - sum(p for s, e, p in booked if s <= x < e)

    def fits(x, dur, p):
        if dur == 0:
            return free_at(x) >= p
        points = [x] + [s for s, e, _ in booked if x < s < x + dur]
        return all(free_at(y) >= p for y in points)

    started = []
    for j in queue:
        candidates = sorted({t} | {e for _, e, _ in booked if e > t})
        for x in candidates:
            if fits(x, j["est"], j["procs"]):
                break
        if j["est"] > 0:
            booked.append((x, x + j["est"], j["procs"]))
        if x == t:
            started.append(j)
    return started
