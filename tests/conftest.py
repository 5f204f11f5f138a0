"""Shared fixtures: a center on SQLite and on PostgreSQL, tenants, API clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lightgrid.api.app import create_app
from lightgrid.center import tenancy
from lightgrid.center.auth import issue_token
from lightgrid.center.service import Center
from lightgrid.settings import NodeTypeSettings, PartitionSettings, Settings

PG_URL = os.environ.get("LIGHTGRID_TEST_PG_URL")
PG_SKIP = os.environ.get("LIGHTGRID_TEST_PG_SKIP_REASON",
                         "PostgreSQL not running: run scripts/postgres-local up and set "
                         "LIGHTGRID_TEST_PG_URL")


def _fresh_pg_database() -> tuple[str, str]:
    import psycopg
    from sqlalchemy.engine import make_url

    assert PG_URL is not None
    name = "lgt_" + uuid.uuid4().hex[:12]
    admin = make_url(PG_URL)
    conninfo = (f"host={admin.host} port={admin.port} user={admin.username} "
                f"dbname={admin.database}")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name).render_as_string(hide_password=False), name


def _drop_pg_database(name: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_URL or "")
    conninfo = (f"host={admin.host} port={admin.port} user={admin.username} "
                f"dbname={admin.database}")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite file, and a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not PG_URL:
        pytest.skip(PG_SKIP)
    url, name = _fresh_pg_database()
    yield url
    _drop_pg_database(name)


def small_cluster() -> list[PartitionSettings]:
    return [
        PartitionSettings(name="cpu", default=True, max_time=86400,
                          node_types=[NodeTypeSettings(name="c8", count=2, cores=8,
                                                       mem=16384)]),
        PartitionSettings(name="gpu", max_time=86400,
                          node_types=[NodeTypeSettings(name="g4", count=1, cores=16,
                                                       mem=65536, gpus=4, gpu_type="a100")]),
    ]


def make_settings(data_dir: Path, db_url: str, **kw: object) -> Settings:
    base: dict[str, object] = dict(data_dir=data_dir, database_url=db_url,
                                   kill_grace_seconds=1.0, poll_interval=0.1,
                                   partitions=small_cluster(), max_upload_bytes=1 << 20)
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path / "data", db_url)


@pytest.fixture
def center(settings: Settings) -> Iterator[Center]:
    c = Center.from_settings(settings)
    c.start()
    yield c
    c.close()


@dataclass
class Tenants:
    """Two organizations, with every role; `tokens[username]`."""

    tokens: dict[str, str]

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}


def seed_tenants(center: Center) -> Tenants:
    tokens: dict[str, str] = {}
    with center.factory() as s, s.begin():
        lab = tenancy.create_org(s, "lab", "key_laboratory")
        corp = tenancy.create_org(s, "corp", "enterprise")
        p1 = tenancy.create_project(s, lab, "p1")
        p2 = tenancy.create_project(s, lab, "p2")
        p3 = tenancy.create_project(s, corp, "p3")
        users = {}
        for name, role in (("op", "operator"), ("fin", "finance"), ("alice", None),
                           ("amy", None), ("pi", None), ("labadmin", None),
                           ("bob", None)):
            users[name] = tenancy.create_user(s, name, password=f"{name}-password",
                                              center_role=role)
        tenancy.add_member(s, p1, users["alice"], "member")
        tenancy.add_member(s, p1, users["amy"], "member")
        tenancy.add_member(s, p2, users["alice"], "member")
        tenancy.add_member(s, p1, users["pi"], "pi")
        tenancy.add_member(s, p3, users["bob"], "member")
        tenancy.add_org_admin(s, lab, users["labadmin"])
        del p3
        for name, user in users.items():
            _, tokens[name] = issue_token(s, user, name="test")
    return Tenants(tokens)


@pytest.fixture
def tenants(center: Center) -> Tenants:
    return seed_tenants(center)


@pytest.fixture
def api(center: Center) -> Iterator[TestClient]:
    with TestClient(create_app(center, manage_lifecycle=False)) as client:
        yield client
