"""The files API: homes and project workspaces, streaming, limits, containment."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Tenants
from tests.helpers import script, submit, wait_for


def test_upload_list_download_delete(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    data = bytes(range(256)) * 2000  # 512000 bytes, several chunks
    put = api.put("/api/v1/files/home/inputs/data.bin", content=data, headers=h)
    assert put.status_code == 201 and put.json()["size"] == len(data)
    listing = api.get("/api/v1/files/home/inputs", headers=h).json()
    assert [(e["name"], e["size"]) for e in listing] == [("data.bin", len(data))]
    assert api.get("/api/v1/files/home/inputs/data.bin", headers=h).content == data
    assert api.delete("/api/v1/files/home/inputs/data.bin", headers=h).status_code == 204
    assert api.get("/api/v1/files/home/inputs/data.bin", headers=h).status_code == 404


def test_upload_over_the_limit_is_refused_and_keeps_the_old_file(
        api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    api.put("/api/v1/files/home/f.txt", content=b"old", headers=h)
    big = b"x" * ((1 << 20) + 1)  # the test center's limit is 1 MiB
    response = api.put("/api/v1/files/home/f.txt", content=big, headers=h)
    assert response.status_code == 413
    assert api.get("/api/v1/files/home/f.txt", headers=h).content == b"old"


def test_paths_cannot_leave_the_workspace(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    for path in ("..%2F..%2Fetc%2Fpasswd", "a/..%2F..%2Fx", "%2Fetc%2Fpasswd"):
        response = api.get(f"/api/v1/files/home/{path}", headers=h)
        assert response.status_code in (400, 404), path
    response = api.put("/api/v1/files/home/..%2Fbob%2Fx", content=b"x", headers=h)
    assert response.status_code == 400


def test_project_workspace_membership(api: TestClient, tenants: Tenants) -> None:
    ok = api.put("/api/v1/files/project:p1/shared.txt", content=b"hi",
                 headers=tenants.headers("alice"))
    assert ok.status_code == 201
    assert api.get("/api/v1/files/project:p1/shared.txt",
                   headers=tenants.headers("amy")).content == b"hi"
    assert api.get("/api/v1/files/project:p1/shared.txt",
                   headers=tenants.headers("bob")).status_code == 404
    assert api.put("/api/v1/files/project:p1/x", content=b"x",
                   headers=tenants.headers("bob")).status_code == 404


def test_job_output_lands_in_home(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    api.put("/api/v1/files/home/in.txt", content=b"42\n", headers=h)
    out = submit(api, h, script("cat in.txt > result.txt", "-A p1"))
    wait_for(api, h, out["job_id"])
    assert api.get("/api/v1/files/home/result.txt", headers=h).content == b"42\n"
