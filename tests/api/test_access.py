"""Authentication and authorization across tenants and roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from lightgrid.center.service import Center
from lightgrid.store.models import ApiToken
from tests.conftest import Tenants
from tests.helpers import script, submit


@pytest.fixture
def jobs(api: TestClient, tenants: Tenants) -> dict[str, str]:
    """One job per (user, project): alice@p1, amy@p1, alice@p2, bob@p3."""
    out = {}
    for user, project in (("alice", "p1"), ("amy", "p1"), ("alice", "p2"), ("bob", "p3")):
        out[f"{user}@{project}"] = submit(api, tenants.headers(user),
                                          script("true", f"-A {project}"))["job_id"]
    return out


# Who sees which job: member -> own jobs; PI -> all of the project; org admin -> the
# org; operator -> everything; finance and other tenants -> nothing of jobs.
VISIBLE = {
    "alice": {"alice@p1", "alice@p2"},
    "amy": {"amy@p1"},
    "pi": {"alice@p1", "amy@p1"},
    "labadmin": {"alice@p1", "amy@p1", "alice@p2"},
    "op": {"alice@p1", "amy@p1", "alice@p2", "bob@p3"},
    "bob": {"bob@p3"},
    "fin": set(),
}


@pytest.mark.parametrize("viewer", sorted(VISIBLE))
def test_job_visibility_by_role(api: TestClient, tenants: Tenants, jobs: dict[str, str],
                                viewer: str) -> None:
    h = tenants.headers(viewer)
    listed = {j["job_id"] for j in api.get("/api/v1/jobs", headers=h).json()["items"]}
    expected = {jobs[k] for k in VISIBLE[viewer]}
    assert listed == expected
    for key, job_id in jobs.items():
        response = api.get(f"/api/v1/jobs/{job_id}", headers=h)
        if key in VISIBLE[viewer]:
            assert response.status_code == 200
        else:
            # Another tenant's job does not exist, as far as this caller can tell.
            assert response.status_code == 404
            assert api.post(f"/api/v1/jobs/{job_id}/cancel", headers=h).status_code == 404
            assert api.get(f"/api/v1/jobs/{job_id}/output", headers=h).status_code == 404


def test_member_cannot_submit_to_a_project_they_are_not_in(api: TestClient,
                                                           tenants: Tenants) -> None:
    response = api.post("/api/v1/jobs", headers=tenants.headers("bob"),
                        json={"script": script("true", "-A p1")})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "account"


def test_tenancy_admin_needs_roles(api: TestClient, tenants: Tenants) -> None:
    body = {"name": "newlab", "kind": "university"}
    assert api.post("/api/v1/orgs", json=body,
                    headers=tenants.headers("alice")).status_code == 403
    assert api.post("/api/v1/orgs", json=body, headers=tenants.headers("op")).status_code == 201
    dup = api.post("/api/v1/orgs", json=body, headers=tenants.headers("op"))
    assert dup.status_code == 409 and dup.json()["error"]["field"] == "name"
    bad = api.post("/api/v1/orgs", json={"name": "Bad Name", "kind": "university"},
                   headers=tenants.headers("op"))
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "name"
    # The PI manages their project's members; a member does not.
    add = {"user": "bob", "role": "member"}
    assert api.post("/api/v1/projects/p1/members", json=add,
                    headers=tenants.headers("alice")).status_code == 403
    assert api.post("/api/v1/projects/p1/members", json=add,
                    headers=tenants.headers("pi")).status_code == 201
    # Another tenant's project is invisible.
    assert api.get("/api/v1/projects/p1", headers=tenants.headers("fin")).status_code == 200
    assert api.get("/api/v1/projects/p3",
                   headers=tenants.headers("alice")).status_code == 404
    names = {p["name"] for p in api.get("/api/v1/projects",
                                        headers=tenants.headers("labadmin")).json()}
    assert names == {"p1", "p2"}


def test_tokens_login_and_revocation(api: TestClient, tenants: Tenants,
                                     center: Center) -> None:
    assert api.get("/api/v1/jobs").status_code == 401
    bad = api.get("/api/v1/jobs", headers={"Authorization": "Bearer lg_nope"})
    assert bad.status_code == 401 and "invalid" in bad.json()["error"]["message"]
    wrong = api.post("/api/v1/auth/login", json={"username": "alice", "password": "x"})
    assert wrong.status_code == 401
    login = api.post("/api/v1/auth/login",
                     json={"username": "alice", "password": "alice-password"})
    assert login.status_code == 201
    token = login.json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/auth/whoami", headers=h).json()["username"] == "alice"
    with center.factory() as s:
        stored = s.get(ApiToken, login.json()["id"])
        assert stored is not None and token not in stored.token_hash  # only a hash
    assert api.delete(f"/api/v1/auth/tokens/{login.json()['id']}",
                      headers=h).status_code == 204
    assert api.get("/api/v1/auth/whoami", headers=h).status_code == 401


def test_expired_token_is_refused(api: TestClient, tenants: Tenants, center: Center) -> None:
    created = api.post("/api/v1/auth/tokens", json={"name": "short"},
                       headers=tenants.headers("alice")).json()
    with center.factory() as s, s.begin():
        row = s.get(ApiToken, created["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    response = api.get("/api/v1/auth/whoami",
                       headers={"Authorization": f"Bearer {created['token']}"})
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_operator_issues_token_for_user(api: TestClient, tenants: Tenants) -> None:
    response = api.post("/api/v1/auth/tokens", json={"user": "bob"},
                        headers=tenants.headers("op"))
    assert response.status_code == 201
    h = {"Authorization": f"Bearer {response.json()['token']}"}
    assert api.get("/api/v1/auth/whoami", headers=h).json()["username"] == "bob"
    refused = api.post("/api/v1/auth/tokens", json={"user": "bob"},
                       headers=tenants.headers("alice"))
    assert refused.status_code == 403
