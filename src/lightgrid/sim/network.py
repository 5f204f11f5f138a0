"""Multi-center simulation: N centers, a home for each job, and a placement policy.

Configured by a small TOML file::

    placement = "earliest-start"   # home | least-loaded | earliest-start | cheapest
    home = "user"                  # user | queue: which SWF field picks the home center
    mapping = "homes.csv"          # optional: "<user or queue>,<center name>" rows
    transfer_delay = 0             # seconds before a moved job reaches its new center

    [[center]]
    name = "north"
    procs = 512
    policy = "easy"                # fcfs | easy | conservative
    price = 1.0                    # per processor-second (used by "cheapest")

Without a mapping, the home is the user (or queue) number hashed over the centers.
Events follow the single-center model; at each time every completion is processed,
then every arrival (a placed job joins its center's queue, after the transfer delay if
it moved), then one pass at each center that had an event.
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from heapq import heappop, heappush
from pathlib import Path
from typing import Any

from lightgrid.core.placement import PlacementPolicy, Site, placement_by_name
from lightgrid.core.scheduling import (
    POLICY_NAMES,
    ClusterState,
    SchedJob,
    SchedulingPolicy,
    policy_by_name,
)
from lightgrid.sim.metrics import Metrics
from lightgrid.sim.swf import SimJob

_CONFIG_KEYS = {"placement", "home", "mapping", "transfer_delay", "center"}
_CENTER_KEYS = {"name", "procs", "policy", "price", "order"}


class ConfigError(ValueError):
    """The network file is invalid; the message says which key."""


@dataclass
class CenterConfig:
    name: str
    procs: int
    policy: str = "easy"
    price: float = 1.0
    order: str | None = None


@dataclass
class NetworkConfig:
    centers: list[CenterConfig]
    placement: str = "home"
    home: str = "user"
    mapping: dict[int, int] = field(default_factory=dict)
    transfer_delay: int = 0

    def home_of(self, job: SimJob) -> int:
        """The home center of a job: by mapping, else a hash of its user or queue."""
        key = job[5] if self.home == "user" else job[6]
        mapped = self.mapping.get(key)
        if mapped is not None:
            return mapped
        # Knuth's multiplicative hash spreads consecutive ids over the centers.
        return ((key * 2654435761) & 0xFFFFFFFF) % len(self.centers)


def load_network(path: str | Path) -> NetworkConfig:
    """Read and check a network TOML file; unknown keys are errors."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    unknown = set(raw) - _CONFIG_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    centers = []
    for i, c in enumerate(raw.get("center", [])):
        bad = set(c) - _CENTER_KEYS
        if bad:
            raise ConfigError(f"{path}: center {i + 1}: unknown keys {sorted(bad)}")
        if "name" not in c or "procs" not in c:
            raise ConfigError(f"{path}: center {i + 1} needs a name and procs")
        if not isinstance(c["procs"], int) or c["procs"] <= 0:
            raise ConfigError(f"{path}: center {c['name']!r}: procs must be a positive integer")
        if c.get("policy", "easy") not in POLICY_NAMES:
            raise ConfigError(f"{path}: center {c['name']!r}: policy must be one of "
                              f"{', '.join(POLICY_NAMES)}")
        centers.append(CenterConfig(str(c["name"]), c["procs"], c.get("policy", "easy"),
                                    float(c.get("price", 1.0)), c.get("order")))
    if not centers:
        raise ConfigError(f"{path}: no [[center]] given")
    names = [c.name for c in centers]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: center names must be unique")
    home = raw.get("home", "user")
    if home not in ("user", "queue"):
        raise ConfigError(f"{path}: home must be 'user' or 'queue'")
    placement = raw.get("placement", "home")
    placement_by_name(placement)
    delay = raw.get("transfer_delay", 0)
    if not isinstance(delay, int) or delay < 0:
        raise ConfigError(f"{path}: transfer_delay must be a non-negative integer")
    mapping: dict[int, int] = {}
    if "mapping" in raw:
        map_path = path.parent / raw["mapping"]
        with open(map_path, newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) != 2 or row[1].strip() not in names:
                    raise ConfigError(f"{map_path}:{n}: expected '<id>,<center name>'")
                try:
                    mapping[int(row[0])] = names.index(row[1].strip())
                except ValueError:
                    raise ConfigError(f"{map_path}:{n}: id must be an integer") from None
    return NetworkConfig(centers, placement, home, mapping, delay)


@dataclass
class NetworkResult:
    """Per-center metrics (`centers`, by name) and the network-wide total."""

    centers: dict[str, Metrics]
    total: Metrics

    def summary(self) -> dict[str, Any]:
        out = self.total.summary() | {"moved": self.total.moved}
        out["centers"] = {name: m.summary() | {"moved": m.moved}
                          for name, m in self.centers.items()}
        return out


# Called per completed job: (id, submit, start, end, procs, center name).
NetJobSink = Callable[[int, int, int, int, int, str], None]


def simulate_network(jobs: Iterable[SimJob], config: NetworkConfig,
                     on_job: NetJobSink | None = None,
                     placement: PlacementPolicy | None = None) -> NetworkResult:
    """Replay `jobs` (sorted by submit) over the centers of `config`."""
    placement = placement or placement_by_name(config.placement)
    states = [ClusterState(c.procs, 0) for c in config.centers]
    policies: list[SchedulingPolicy] = [policy_by_name(c.policy, c.order)
                                        for c in config.centers]
    sites = [Site(c.name, s, c.price, config.transfer_delay)
             for c, s in zip(config.centers, states, strict=True)]
    metrics = [Metrics(procs=c.procs) for c in config.centers]
    names = [c.name for c in config.centers]
    done: list[tuple[Any, int, Any, SchedJob]] = []  # (end, center, key, job)
    later: list[tuple[Any, int, Any, SchedJob]] = []  # (arrival, center, key, job)
    it = iter(jobs)
    nxt = next(it, None)
    skipped = 0
    while True:
        candidates = [h[0][0] for h in (done, later) if h]
        if nxt is not None:
            candidates.append(nxt[1])
        if not candidates:
            break
        t = min(candidates)
        touched: set[int] = set()
        while done and done[0][0] == t:
            _, c, _, job = heappop(done)
            states[c].finish(job, t)
            submit, home = job.data
            metrics[c].add(submit, job.start, t, job.request)  # type: ignore[arg-type]
            if home != c:
                metrics[c].moved += 1
            if on_job is not None:
                on_job(job.key, submit, job.start, t, job.request, names[c])  # type: ignore[arg-type]
            touched.add(c)
        while later and later[0][0] == t:
            _, c, _, job = heappop(later)
            states[c].add(job)
            touched.add(c)
        while nxt is not None and nxt[1] == t:
            job = SchedJob(nxt[0], t, nxt[3], nxt[4], nxt[2])
            home = config.home_of(nxt)
            c = placement.choose(job, home, sites, t)
            nxt = next(it, None)
            if c < 0:
                skipped += 1
                continue
            job.data = (t, home)
            if c != home and config.transfer_delay:
                job.submit = t + config.transfer_delay
                heappush(later, (job.submit, c, job.key, job))
                continue
            states[c].add(job)
            touched.add(c)
        if nxt is not None and nxt[1] < t:
            from lightgrid.sim.engine import UnsortedTrace
            raise UnsortedTrace(f"job {nxt[0]} arrives at {nxt[1]}, before time {t}")
        for c in sorted(touched):
            for job in policies[c].schedule(states[c], t):
                heappush(done, (t + job.runtime, c, job.key, job))
    total = Metrics(procs=sum(c.procs for c in config.centers))
    for m in metrics:
        total.merge(m)
    total.skipped += skipped
    return NetworkResult(dict(zip(names, metrics, strict=True)), total)


def simulate_network_trace(path: str, config: NetworkConfig, limit: int | None = None,
                           on_job: NetJobSink | None = None,
                           on_restart: Callable[[], None] | None = None) -> NetworkResult:
    """Read a SWF trace and replay it over a network (sorting and restarting, after
    calling `on_restart`, if the file is out of order)."""
    from lightgrid.sim.engine import UnsortedTrace
    from lightgrid.sim.swf import iter_jobs

    largest = max(c.procs for c in config.centers)
    skipped = [0]
    try:
        result = simulate_network(iter_jobs(path, largest, limit, skipped), config, on_job)
    except UnsortedTrace:
        if on_restart is not None:
            on_restart()
        skipped = [0]
        jobs = sorted(iter_jobs(path, largest, limit, skipped), key=lambda j: (j[1], j[0]))
        result = simulate_network(jobs, config, on_job)
    result.total.skipped += skipped[0]
    return result
