"""Billing through the REST API: the new-user walkthrough on the demo, roles, reports."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fastapi.testclient import TestClient

from lightgrid.center.billing.demo import PRICE_BOOK
from lightgrid.center.billing.service import CENTER_TZ
from lightgrid.center.demo import seed
from lightgrid.center.service import Center
from lightgrid.core.money import round_charge
from tests.conftest import Tenants
from tests.helpers import submit, wait_for

BIG_GPU_JOB = """#!/bin/bash
#SBATCH --job-name=big-train
#SBATCH --partition=gpu
#SBATCH --account=battery-md
#SBATCH --gres=gpu:a100:4
#SBATCH --cpus-per-task=8
#SBATCH --time=10:00:00
sleep 3
"""


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_new_user_walkthrough_on_the_demo(api: TestClient, center: Center) -> None:
    tokens = seed(center)  # alice's three sample jobs are admitted
    alice, finance = _h(tokens.researcher), _h(tokens.finance)
    month = datetime.now(CENTER_TZ).strftime("%Y-%m")
    quote = api.post("/api/v1/quotes", json={"script": BIG_GPU_JOB}, headers=alice).json()
    gpu_card = next(c for c in PRICE_BOOK["cards"] if c["partition"] == "gpu")
    discount = Decimal(PRICE_BOOK["tiers"]["academic"])
    per_hour = 8 * Decimal(gpu_card["cpu"]) + 4 * Decimal(gpu_card["gpu"]["a100"])
    assert Decimal(quote["total"]) == round_charge(per_hour * 10 * (1 - discount))
    assert not quote["sufficient"]
    refused = api.post("/api/v1/jobs", json={"script": BIG_GPU_JOB}, headers=alice)
    assert refused.status_code == 402
    message = refused.json()["error"]["message"]
    assert f"available {quote['available']} CNY" in message
    assert f"needed {quote['total']} CNY" in message
    top = api.post("/api/v1/topups", json={"owner": "battery-md", "amount": "1000.00",
                                           "method": "bank_transfer",
                                           "reference": "BANK-2026-0001"}, headers=finance)
    assert top.status_code == 201
    before = api.get("/api/v1/balances/battery-md", headers=alice).json()
    out = submit(api, alice, BIG_GPU_JOB)
    held = api.get("/api/v1/balances/battery-md", headers=alice).json()
    assert Decimal(held["held"]) >= Decimal(quote["total"])
    assert Decimal(held["available"]) == Decimal(before["available"]) - Decimal(
        quote["total"])
    [job] = wait_for(api, alice, out["job_id"], timeout=60)
    assert job["state"] == "COMPLETED"
    [charge] = [c for c in api.get("/api/v1/charges?project=battery-md",
                                   headers=alice).json() if c["job_id"] == job["id"]]
    hours = Decimal(job["elapsed"]) / 3600
    rated = round_charge(max(per_hour * hours * (1 - discount),
                             Decimal(PRICE_BOOK["minimum_charge"])))
    assert Decimal(charge["amount"]) == rated
    explained = api.get(f"/api/v1/charges/{charge['key']}", headers=alice).json()
    assert explained["reproduced"] is True
    st = api.get(f"/api/v1/statements/project/battery-md?month={month}",
                 headers=_h(tokens.operator)).json()
    assert st["reconciles"]
    assert Decimal(st["charges"]) >= Decimal(charge["amount"])
    assert any(t["reference"] == "BANK-2026-0001" for t in st["top_up_lines"])
    csv_text = api.get(f"/api/v1/statements/project/battery-md?month={month}&format=csv",
                       headers=_h(tokens.operator)).text
    assert "charge,battery-md,gpu,gpu," in csv_text


def _book(api: TestClient, tenants: Tenants) -> None:
    r = api.post("/api/v1/pricebook/versions", headers=tenants.headers("fin"),
                 json={"cards": [{"partition": "cpu", "cpu": "0.10"},
                                 {"partition": "gpu", "cpu": "0.10",
                                  "gpu": {"a100": "5"}}],
                       "minimum_charge": "0.01"})
    assert r.status_code == 201, r.text


def test_roles_and_field_errors(api: TestClient, tenants: Tenants) -> None:
    _book(api, tenants)
    fin, alice = tenants.headers("fin"), tenants.headers("alice")
    body = {"owner": "p1", "amount": "10.00", "reference": "R1"}
    assert api.post("/api/v1/topups", json=body, headers=alice).status_code == 403
    bad = api.post("/api/v1/topups", json={**body, "amount": "1.005"}, headers=fin)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "amount"
    first = api.post("/api/v1/topups", json=body, headers=fin).json()
    again = api.post("/api/v1/topups", json=body, headers=fin).json()
    assert first["transaction_id"] == again["transaction_id"]  # same payment, once
    reuse = api.post("/api/v1/topups", json={**body, "amount": "11.00"}, headers=fin)
    assert reuse.status_code == 409 and reuse.json()["error"]["field"] == "reference"
    bad_book = api.post("/api/v1/pricebook/versions", headers=fin,
                        json={"cards": [{"partition": "cpu", "cpu": 0.1}]})
    assert bad_book.status_code == 400 and bad_book.json()["error"]["field"] == "cards[0].cpu"
    assert api.get("/api/v1/balances/p3", headers=alice).status_code == 404
    month = datetime.now(CENTER_TZ).strftime("%Y-%m")
    member = api.get(f"/api/v1/statements/project/p1?month={month}", headers=alice)
    assert member.status_code == 403
    pdf = api.get(f"/api/v1/statements/project/p1?month={month}&format=pdf",
                  headers=tenants.headers("pi"))
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    org = api.get(f"/api/v1/statements/org/lab?month={month}",
                  headers=tenants.headers("labadmin"))
    assert org.status_code == 200 and org.json()["reconciles"]


def test_invoice_request_and_issue(api: TestClient, tenants: Tenants) -> None:
    admin, fin = tenants.headers("labadmin"), tenants.headers("fin")
    req = api.post("/api/v1/invoices", json={"owner": "org:lab", "amount": "5000.00",
                                             "note": "Q4 prepayment"}, headers=admin)
    assert req.status_code == 201
    inv = req.json()
    denied = api.post("/api/v1/invoices", json={"owner": "org:lab", "amount": "1.00"},
                      headers=tenants.headers("bob"))
    assert denied.status_code in (403, 404)
    assert api.post(f"/api/v1/invoices/{inv['id']}/issue", json={"number": "INV-1"},
                    headers=admin).status_code == 403
    issued = api.post(f"/api/v1/invoices/{inv['id']}/issue", json={"number": "INV-1"},
                      headers=fin).json()
    assert (issued["state"], issued["number"]) == ("issued", "INV-1")
    twice = api.post(f"/api/v1/invoices/{inv['id']}/issue", json={"number": "INV-2"},
                     headers=fin)
    assert twice.status_code == 409
    listed = api.get("/api/v1/invoices", headers=admin).json()
    assert [i["number"] for i in listed] == ["INV-1"]
    assert api.get("/api/v1/invoices", headers=tenants.headers("bob")).json() == []


def test_cancelled_pending_job_releases_hold(api: TestClient, tenants: Tenants) -> None:
    _book(api, tenants)
    alice = tenants.headers("alice")
    api.post("/api/v1/topups", json={"owner": "p1", "amount": "100.00",
                                     "reference": "R2"}, headers=tenants.headers("fin"))
    blocker = submit(api, alice, "#!/bin/bash\n#SBATCH -A p1 -N 2 --exclusive -t 5\n"
                                 "sleep 30\n")
    wait_for(api, alice, blocker["job_id"], {"RUNNING"})
    pending = submit(api, alice, "#!/bin/bash\n#SBATCH -A p1 -n 2 -t 60\ntrue\n")
    assert api.post(f"/api/v1/jobs/{pending['job_id']}/cancel",
                    headers=alice).status_code == 200
    api.post(f"/api/v1/jobs/{blocker['job_id']}/cancel", headers=alice)
    wait_for(api, alice, blocker["job_id"])
    charges = {c["job_id"]: c for c in api.get("/api/v1/charges?project=p1",
                                               headers=alice).json()}
    assert Decimal(charges[pending["jobs"][0]["id"]]["amount"]) == 0
    assert Decimal(charges[pending["jobs"][0]["id"]]["released"]) > 0
    pos = api.get("/api/v1/balances/p1", headers=alice).json()
    assert Decimal(pos["held"]) == 0
