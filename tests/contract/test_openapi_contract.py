"""The whole HTTP surface against its OpenAPI description: schemathesis with ``--checks all``
against ``rempart serve`` on PostgreSQL with the demo's data, authenticated with a bearer token,
fixed seed. It must generate at least 1,000 cases and find nothing: no server error, no answer
outside its documented schema or status, no invalid body accepted.

Before the run, a covered rights check, an invoice (JSON and FHIR) decided by the worker and an
exported payment run give the read operations real ids, so that their 200 answers are checked
too, not only their 404s. The departures from schemathesis' defaults are in
``schemathesis.toml`` next to this file, each with its reason.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from rempart.testing.postgres import Cluster
from rempart.web.fhir.systems import Systems

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
SEED = 20261202
CASES_PER_OPERATION = 40
DRUG = {
    "domain": "PHAR",
    "code_system": "CIP13",
    "code": "3400930000014",
    "quantity": 1,
    "unit_price": "7.35",
    "brss": "7.35",
    "amo_rate": 65,
    "amo_amount": "4.78",
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [str(BIN / "rempart"), *args], env=env, capture_output=True, text=True, check=True,
        timeout=300, cwd="/",
    ).stdout  # fmt: skip


@pytest.fixture(scope="module")
def live(pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("contract")
    port = _port()
    name = f"rempart_contract_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
    env.update(
        REMPART_DATA_DIR=str(root / "var"),
        REMPART_DATABASE_URL=pg_cluster.create_database(name),
        REMPART_PORT=str(port),
        REMPART_BASE_URL=f"http://localhost:{port}",
        REMPART_LOG_LEVEL="warning",
    )
    _cli(env, "demo", "--no-serve", "--beneficiaries", "200", "--seed", "3", "--port", str(port),
         "--export-fixtures", str(root / "fx"))  # fmt: skip
    log = (root / "serve.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "rempart"), "serve", "--port", str(port)], env=env, stdout=log,
        stderr=subprocess.STDOUT, cwd="/",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield {"base": base, "env": env, "root": root, "db": name, "log": root / "serve.log",
               **_world(base, env, root, pg_cluster, name)}  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        pg_cluster.psql(f'DROP DATABASE "{name}" WITH (FORCE)')


def _world(base: str, env: dict[str, str], root: Path, pg: Cluster, db: str) -> dict[str, Any]:
    """What the read operations need real ids of: an invoice decided, a payment exported."""
    fx = root / "fx"
    client = next(c for c in json.loads((fx / "clients.json").read_text()) if c.get("bench"))
    token = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials",
                       "client_id": client["client_id"],
                       "client_secret": client["client_secret"]}).json()["access_token"]  # fmt: skip
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as http:
        ids = _decided_and_paid(http, env, root)
    sid = str(uuid.UUID(client["structure_id"]))  # a UUID: nothing to inject
    finess = pg.psql(f"SELECT finess FROM structure WHERE id = '{sid}'", db).strip()  # noqa: S608
    return {"token": token, **ids, "finess": finess}


def _decided_and_paid(http: httpx.Client, env: dict[str, str], root: Path) -> dict[str, str]:
    fx = root / "fx"
    today = datetime.now(ZoneInfo("Europe/Paris")).date().isoformat()
    card = next(iter(csv.DictReader((fx / "cards.csv").read_text().splitlines())))
    patient = {k: card[k] for k in ("amc_number", "adherent_number", "birth_date")}
    patient["rank"] = int(card["rank"])  # type: ignore[assignment]
    rights = http.post(
        "/api/v1/rights-checks", json={**patient, "domain": "PHAR", "care_date": today}
    ).json()
    assert rights["status"] == "covered", rights
    invoice = {"invoice_number": "CT-1", "care_date": today, "engagement_number": rights["engagement_number"],
               "beneficiary": patient, "lines": [{**DRUG, "amc_amount_claimed": "2.57"}]}  # fmt: skip
    invoice_id = http.post("/api/v1/invoices", json=invoice).raise_for_status().json()["invoice_id"]
    for _ in range(100):
        if http.get(f"/api/v1/invoices/{invoice_id}").json()["status"] != "received":
            break
        time.sleep(0.2)
    actors = [
        o["username"]
        for o in json.loads((fx / "operators.json").read_text())
        if o["role"] == "payments"
    ]
    run = json.loads(_cli(env, "pay", "run", "--json", "--actor", actors[0]))
    _cli(env, "pay", "approve", run["run_id"], "--actor", actors[1])
    _cli(env, "pay", "export", run["run_id"], "--out", str(root / "run.xml"), "--actor", actors[0])
    paid = http.get("/api/v1/payments").json()
    assert paid, "the payment run paid nothing"
    return {"invoice_id": invoice_id, "payment_id": paid[0]["payment_id"]}


def _config(live: dict[str, Any]) -> Path:
    sid = Systems.under(live["env"]["REMPART_BASE_URL"])
    ids = {
        "/api/v1/invoices/{invoice_id}": ("invoice_id", live["invoice_id"]),
        "/api/v1/payments/{payment_id}/remittance": ("payment_id", live["payment_id"]),
        "/fhir/r4/ClaimResponse/{claim_response_id}": ("claim_response_id", live["invoice_id"]),
    }
    text = (HERE / "schemathesis.toml").read_text()
    for path, (name, value) in ids.items():
        text += f'\n[[operations]]\ninclude-path = "{path}"\nparameters = {{ "path.{name}" = "{value}" }}\n'
    requestor = f"{sid.finess}|{live['finess']}"
    text += f'\n[[operations]]\ninclude-path = "/fhir/r4/PaymentReconciliation"\nparameters = {{ "query.requestor" = "{requestor}" }}\n'
    out = live["root"] / "schemathesis.toml"
    out.write_text(text)
    return out


def test_schemathesis_finds_nothing_in_a_thousand_cases(live: dict[str, Any]) -> None:
    report = live["root"] / "report"
    cmd = [
        str(BIN / "schemathesis"), "--config-file", str(_config(live)), "run",
        f"{live['base']}/openapi.json", "--checks", "all", "--seed", str(SEED),
        "--max-examples", str(CASES_PER_OPERATION), "--workers", "2", "--no-color",
        "--generation-database", "none", "--header", f"Authorization: Bearer {live['token']}",
        "--report", "junit", "--report-dir", str(report),
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - t0
    out = done.stdout + done.stderr
    summary = out[out.rfind("SUMMARY") :] if "SUMMARY" in out else out[-3000:]
    counts = re.search(r"(\d+) generated, (?:(\d+) passed|(\d+) found)", summary)
    print(f"\nschemathesis: {counts.group(0) if counts else '?'} in {seconds:.0f} s (seed {SEED})")
    print(summary[summary.find("Warnings:") :] if "Warnings:" in summary else "no warnings")
    assert done.returncode == 0, out[-8000:]
    assert counts is not None and counts.group(2) is not None, summary
    generated = int(counts.group(1))
    assert generated >= 1000 and int(counts.group(2)) == generated, summary
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", summary)
    assert selected is not None, summary
    assert selected.group(1) == selected.group(2) == selected.group(3), summary  # every operation
    assert int(selected.group(2)) >= 24  # the JSON API, FHIR, ops: all of /openapi.json
    crashes = [line for line in live["log"].read_text().splitlines() if "request.crashed" in line]
    assert crashes == [], crashes[:5]
    shutil.rmtree(report, ignore_errors=True)
