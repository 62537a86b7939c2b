"""A newcomer's path, with real processes: ``rempart demo`` seeds and exports fixtures,
``rempart serve`` answers, ``rempart channel off`` switches a channel while it serves, and
nothing personal reaches a log line or the database file in clear."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rempart.services.demo import STRUCTURES

RempartBin = str(Path(sys.executable).with_name("rempart"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
    env.update(
        REMPART_DATA_DIR=str(data),
        REMPART_PORT=str(port),
        REMPART_LOG_LEVEL="debug",
        REMPART_CHANNEL_CACHE_SECONDS="0.5",
        COLUMNS="200",
    )
    return env


def _cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RempartBin, *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
        cwd="/",
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    root = tmp_path_factory.mktemp("demo")
    data, fx, port = root / "var", root / "fx", _port()
    env = _env(data, port)
    args = (
        "demo",
        "--no-serve",
        "--beneficiaries",
        "600",
        "--seed",
        "3",
        "--port",
        str(port),
        "--export-fixtures",
        str(fx),
        "--export-canaries",
        str(root / "canaries.csv"),
    )
    first = _cli(env, *args)
    cards_first, clients_first = (fx / "cards.csv").read_bytes(), (fx / "clients.json").read_bytes()
    second = _cli(env, *args)  # the demo database is recreated; same seed, same fixtures
    log = root / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [RempartBin, "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield {
                "root": root,
                "data": data,
                "fx": fx,
                "env": env,
                "base": base,
                "log": log,
                "outputs": [first.stdout + first.stderr, second.stdout + second.stderr],
                "deterministic": (cards_first, clients_first)
                == ((fx / "cards.csv").read_bytes(), (fx / "clients.json").read_bytes()),
            }
        finally:
            server.terminate()
            server.wait(timeout=20)


def test_fixture_files_follow_the_contract(demo: dict) -> None:  # type: ignore[type-arg]
    fx: Path = demo["fx"]  # type: ignore[assignment]
    assert demo["deterministic"]
    assert (fx / "cards.csv").read_text().splitlines()[
        0
    ] == "amc_number,adherent_number,rank,birth_date,domains"
    cards = list(csv.DictReader((fx / "cards.csv").read_text().splitlines()))
    assert len(cards) > 500
    assert all(c["rank"].isdigit() and "PHAR" in c["domains"].split("|") for c in cards)
    clients = json.loads((fx / "clients.json").read_text())
    assert {c["profession"] for c in clients} == {
        "pharmacy",
        "optician",
        "dentist",
        "audiologist",
        "laboratory",
        "hospital",
        "physician",
    }
    assert all(
        {"client_id", "client_secret", "structure_id", "profession"} <= set(c) for c in clients
    )
    operators = json.loads((fx / "operators.json").read_text())
    assert sum(o["role"] == "payments" for o in operators) >= 2
    assert {o["role"] for o in operators} == {"agent", "payments", "security", "admin", "insurer"}
    contracts = list(csv.DictReader((fx / "contracts.csv").read_text().splitlines()))
    assert {"amc_number", "contract_code"} == set(contracts[0])
    canaries = list(csv.DictReader((demo["root"] / "canaries.csv").read_text().splitlines()))  # type: ignore[operator]
    keys = {(c["amc_number"], c["adherent_number"], c["birth_date"], c["rank"]) for c in cards}
    assert canaries
    assert not any(
        (c["amc_number"], c["adherent_number"], c["birth_date"], c["rank"]) in keys
        for c in canaries
    )
    assert "/inscription/" in demo["outputs"][1]  # type: ignore[index]


def _token(base: str, client: dict[str, str]) -> str:
    r = httpx.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def test_every_card_is_covered_then_api_rights_switched_off(demo: dict) -> None:  # type: ignore[type-arg]
    base, fx = demo["base"], demo["fx"]
    assert "Vérifier des droits" in httpx.get(f"{base}/").text
    clients = json.loads((fx / "clients.json").read_text())
    by_profession = {c["profession"]: c for c in clients if not c.get("bench")}
    tokens = {p: _token(base, c) for p, c in by_profession.items()}
    # every card through the load-test client (raised ceilings); a sample through the others,
    # which stay under their profession's daily ceiling of distinct people
    tokens["bench"] = _token(base, next(c for c in clients if c.get("bench")))
    checks = {"pharmacy": "PHAR", "optician": "OPTI", "dentist": "DENT", "laboratory": "LABO"}
    cards = list(csv.DictReader((fx / "cards.csv").read_text().splitlines()))
    with httpx.Client(base_url=base) as http:
        for i, card in enumerate(cards):
            profession = list(checks)[i % len(checks)] if i < 160 else "bench"
            domain = checks.get(profession, "PHAR")
            if domain not in card["domains"].split("|"):
                profession, domain = "bench", "PHAR"
            body = {
                "amc_number": card["amc_number"],
                "adherent_number": card["adherent_number"],
                "birth_date": card["birth_date"],
                "rank": int(card["rank"]),
                "domain": domain,
                "care_date": time.strftime("%Y-%m-%d"),
            }
            r = http.post(
                "/api/v1/rights-checks",
                json=body,
                headers={"Authorization": f"Bearer {tokens[profession]}"},
            )
            assert r.status_code == 200, (profession, domain, r.text)
            assert r.json()["status"] == "covered", (card, domain)

        body = {**body, "domain": "PHAR"}
        env = demo["env"]
        out = _cli(env, "channel", "off", "api-rights", "--reason", "Maintenance programmée")  # type: ignore[arg-type]
        assert "fermé" in out.stdout
        time.sleep(1.0)  # the servers' channel cache (0.5 s here)
        r = http.post(
            "/api/v1/rights-checks",
            json=body,
            headers={"Authorization": f"Bearer {tokens['pharmacy']}"},
        )
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"] == "Maintenance programmée"
        assert int(r.headers["retry-after"]) > 0
        assert http.get("/healthz").status_code == 200
        assert "Maintenance programmée" in http.get("/status").text
        assert _token(base, by_profession["pharmacy"])
        _cli(env, "channel", "on", "api-rights")  # type: ignore[arg-type]
        time.sleep(1.0)
        r = http.post(
            "/api/v1/rights-checks",
            json=body,
            headers={"Authorization": f"Bearer {tokens['pharmacy']}"},
        )
        assert r.status_code == 200


def test_no_personal_data_in_logs_or_database_file(demo: dict) -> None:  # type: ignore[type-arg]
    data: Path = demo["data"]  # type: ignore[assignment]
    rows = [
        row
        for path in (data / "demo").glob("beneficiaires-*.csv")
        for row in csv.DictReader(path.read_text(encoding="utf-8").splitlines(), delimiter=";")
    ]
    nirs = {r["nir"] for r in rows}
    spaced = {f"{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:10]} {n[10:13]} {n[13:]}" for n in nirs}
    names = {r["last_name"] + " " + r["first_name"] for r in rows} | {
        r["first_name"] + " " + r["last_name"] for r in rows
    }
    # Requests that carry a NIR through every path: a valid one, a wrong key, an unknown card.
    client = json.loads((demo["fx"] / "clients.json").read_text())[0]  # type: ignore[operator]
    token = _token(demo["base"], client)  # type: ignore[arg-type]
    person = rows[0]
    for nir in (person["nir"], person["nir"][:-2] + "00", next(iter(spaced))):
        httpx.post(
            f"{demo['base']}/api/v1/rights-checks",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "amc_number": "900000001",
                "adherent_number": person["adherent_number"],
                "birth_date": person["birth_date"],
                "rank": int(person["rank"]),
                "nir": nir,
                "domain": "PHAR",
                "care_date": time.strftime("%Y-%m-%d"),
            },
        )
    logs = demo["log"].read_text() + "".join(demo["outputs"])  # type: ignore[union-attr,arg-type]
    assert "route=/api/v1/rights-checks status=422" in logs  # the wrong key was logged, as a code
    assert [n for n in nirs | spaced if n in logs] == []
    assert [n for n in names if n in logs] == []
    assert person["nir"][:-2] + "00" not in logs
    raw = b"".join(p.read_bytes() for p in data.glob("rempart.db*"))
    assert [n for n in nirs if n.encode() in raw] == []
    public = " ".join(name for _, name, _ in STRUCTURES)  # trade names, in clear by design
    last_names = {r["last_name"] for r in rows if r["last_name"] not in public}
    assert [n for n in last_names if len(n) > 5 and n.encode() in raw] == []


def test_audit_commands_seal_verify_and_prove(demo: dict) -> None:  # type: ignore[type-arg]
    env = demo["env"]
    sealed = _cli(env, "audit", "checkpoint")  # type: ignore[arg-type]
    assert (
        "Scellé" in sealed.stdout or "Rien à sceller" in sealed.stdout
    )  # the server's worker may have sealed
    verified = _cli(env, "audit", "verify")  # type: ignore[arg-type]
    assert "intègre" in verified.stdout
    import sqlite3

    with sqlite3.connect(demo["data"] / "rempart.db") as db:  # type: ignore[operator]
        (event_hex,) = db.execute(
            "SELECT id FROM audit_event WHERE leaf_index IS NOT NULL LIMIT 1"
        ).fetchone()
    proof = _cli(env, "audit", "prove", str(uuid.UUID(hex=event_hex)))  # type: ignore[arg-type]
    path = demo["root"] / "proof.json"  # type: ignore[operator]
    path.write_text(proof.stdout)
    example = Path(__file__).resolve().parents[2] / "examples" / "verify_audit_proof.py"
    ok = subprocess.run(
        [sys.executable, str(example), str(path)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout
