"""Rate and post N usage records (default 1,000,000) through the streaming ingestor.

    .venv/bin/python benchmarks/billing_rate_post.py --db postgresql+psycopg://... -n 1000000

`--baseline FILE` runs the `Ingestor` defined in FILE instead (e.g. an earlier
bulk.py taken with ``git show REV:src/lightgrid/center/billing/bulk.py``), to compare
the two on the same machine and data.

Creates a fresh schema in the given (empty) database, a price book (cpu, gpu, bigmem;
tiers; a minimum charge), 200 projects in 20 organizations with funds, then streams
synthetic records (a generator: nothing is held in memory) and reports records/s,
peak RSS and a reconciliation of the ledger (postings sum to zero; revenue equals the
sum of charges).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from lightgrid.center import tenancy
from lightgrid.center.billing import prices
from lightgrid.center.billing.bulk import Ingestor
from lightgrid.center.billing.funds import Funds
from lightgrid.center.billing.service import CENTER_TZ
from lightgrid.core.funds import ChargeKey, UsageRecord
from lightgrid.core.jobs import JobState
from lightgrid.core.resources import Tres
from lightgrid.store.db import make_engine, make_sessionmaker, migrate
from lightgrid.store.models.billing import ChargeRow, LedgerPosting

BOOK = {"currency": "CNY", "minimum_charge": "0.01",
        "tiers": {"academic": "0.20", "government": "0.10"},
        "cards": [{"partition": "cpu", "cpu": "0.05", "mem": "0.0125", "strategy": "max"},
                  {"partition": "gpu", "cpu": "0.05", "gpu": {"a100": "8.00"}},
                  {"partition": "bigmem", "cpu": "0.08", "mem": "0.004"}]}
KINDS = ["key_laboratory", "university", "government_agency", "enterprise"]
STATES = [JobState.COMPLETED] * 8 + [JobState.FAILED, JobState.TIMEOUT,
                                     JobState.CANCELLED, JobState.NODE_FAIL]


def setup(factory: sessionmaker[Session], projects: int, start: datetime) -> list[str]:
    funds = Funds("CNY", CENTER_TZ)
    names = []
    with factory() as s, s.begin():
        prices.add_version(s, "bench", dict(BOOK, effective_from=start.isoformat()),
                           now=start, actor="bench", currency="CNY")
        for o in range(projects // 10):
            org = tenancy.create_org(s, f"org{o:03d}", KINDS[o % len(KINDS)])
            for p in range(10):
                name = f"proj{o:03d}{p}"
                tenancy.create_project(s, org, name)
                names.append(name)
                funds.top_up(s, f"project:{name}", "100000.00", method="bank_transfer",
                             reference=f"bench-{name}", at=start)
    return names


def records(n: int, projects: list[str], start: datetime, seed: int) -> Iterator[UsageRecord]:
    """Synthetic finished jobs, as a parser of ``sacct`` output would yield them: one
    `UsageRecord` each, with the TRES of a repeated allocation interned (a parser keeps
    one per distinct TRES string) and user names from a fixed set."""
    rand = random.Random(seed).random
    parts, gpu_counts = ("cpu", "cpu", "cpu", "gpu", "bigmem"), (1, 2, 4, 8)
    cpu_counts, mem_per_cpu = (1, 2, 4, 8, 16, 32, 64), (1024, 2048, 4096, 8192)
    users = [f"user{u}" for u in range(1000)]
    tres_of: dict[tuple[int, int, int], Tres] = {}
    for i in range(n):
        part = parts[int(rand() * 5)]
        gpus = gpu_counts[int(rand() * 4)] if part == "gpu" else 0
        cpus = cpu_counts[int(rand() * 7)]
        mem = cpus * mem_per_cpu[int(rand() * 4)]
        tres = tres_of.get((cpus, mem, gpus))
        if tres is None:
            tres = tres_of[cpus, mem, gpus] = Tres(cpus, mem, gpus, 0)
        seconds = int(rand() * 86401)
        begin = start + timedelta(seconds=1 + int(rand() * 30 * 86400))
        yield UsageRecord(
            key=ChargeKey("bench", str(i), 0), job_id="",
            project=projects[int(rand() * len(projects))], partition=part, tres=tres,
            state=STATES[int(rand() * len(STATES))], elapsed=seconds, started_at=begin,
            ended_at=begin + timedelta(seconds=seconds), user=users[int(rand() * 1000)],
            gpu_type="a100" if gpus else None, time_limit=86400)


def server_cpu(factory: sessionmaker[Session]) -> dict[int, float]:
    """CPU seconds used so far by this database's server processes (a local server,
    readable /proc), else nothing: the database's share of the work, load aside."""
    with factory() as s:
        pids = list(s.scalars(select(text("pid")).select_from(text("pg_stat_activity"))
                              .where(text("datname = current_database()"))))
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return {}
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, help="an empty database URL")
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--depth", type=int, default=1,
                    help="rated batches that may wait for the writer")
    ap.add_argument("--projects", type=int, default=200)
    ap.add_argument("--baseline", help="a file defining another Ingestor to run instead")
    args = ap.parse_args()
    ingestor_class = Ingestor
    if args.baseline:
        spec = importlib.util.spec_from_file_location("baseline_bulk", args.baseline)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        ingestor_class = module.Ingestor
    engine = make_engine(args.db)
    migrate(engine)
    factory = make_sessionmaker(engine)
    start = datetime.now(UTC)
    projects = setup(factory, args.projects, start)
    options = {} if args.baseline else {"depth": args.depth}
    ingestor = ingestor_class(factory, "bench", Funds("CNY", CENTER_TZ),
                              batch_size=args.batch, **options)
    postgres = engine.dialect.name == "postgresql"
    before = server_cpu(factory) if postgres else {}
    t0, c0 = time.perf_counter(), time.process_time()
    stats = ingestor.run(records(args.n, projects, start, 1), datetime.now(UTC))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = server_cpu(factory) if postgres else {}
    server = sum(v - before.get(pid, 0.0) for pid, v in after.items())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t1 = time.perf_counter()
    replay = ingestor.run(records(min(args.n, 20_000), projects, start, 1), datetime.now(UTC))
    with factory() as s:
        trial = s.scalar(select(func.sum(LedgerPosting.amount)))
        revenue = -(s.scalar(select(func.sum(LedgerPosting.amount)).where(
            LedgerPosting.account.like("revenue:%"))) or Decimal(0))
        charged = s.scalar(select(func.sum(ChargeRow.amount))) or Decimal(0)
    print(f"records={stats.records} charged={stats.charged} reviewed={stats.reviewed} "
          f"batches={stats.batches} seconds={elapsed:.1f} "
          f"records_per_s={stats.records / elapsed:,.0f} peak_rss_mib={rss:.0f} "
          f"client_cpu_us_per_record={cpu / max(stats.records, 1) * 1e6:.1f}"
          + (f" server_cpu_us_per_record={server / max(stats.records, 1) * 1e6:.1f}"
             if after else ""))
    print(f"replay of {replay.records}: skipped={replay.skipped} charged={replay.charged} "
          f"({time.perf_counter() - t1:.1f}s)")
    print(f"{'baseline ' + args.baseline if args.baseline else 'current'}: "
          f"trial balance={trial} revenue={revenue} charges={charged} "
          f"reconciles={Decimal(str(revenue)) == Decimal(str(charged))}")


if __name__ == "__main__":
    main()
