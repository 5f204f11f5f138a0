"""Small helpers shared by tests."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def script(body: str, *directives: str) -> str:
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives), body, ""]
    return "\n".join(lines)


def submit(api: TestClient, headers: dict[str, str], text: str,
           args: list[str] | None = None, expect: int = 201) -> Any:
    response = api.post("/api/v1/jobs", json={"script": text, "args": args or []},
                        headers=headers)
    assert response.status_code == expect, response.text
    return response.json()


def wait_for(api: TestClient, headers: dict[str, str], ref: str, states: set[str] = TERMINAL,
             timeout: float = 30.0) -> list[dict[str, Any]]:
    """Poll until every job `ref` names is in `states`."""
    deadline = time.monotonic() + timeout
    while True:
        rows = api.get(f"/api/v1/jobs/{ref}", headers=headers).json()
        if all(r["state"] in states for r in rows):
            return list(rows)
        if time.monotonic() > deadline:
            raise AssertionError(f"job {ref} still {[r['state'] for r in rows]}")
        time.sleep(0.1)
