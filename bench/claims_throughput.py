"""Invoice intake and adjudication throughput on PostgreSQL.

    uv run python bench/claims_throughput.py [--rows 20000] [--cards 2000] [--conns 4,8]
                                             [--duration 15] [--serve-workers 1]

Starts a durable throwaway PostgreSQL (the rights-check bench's settings), seeds it with
``rempart demo --no-serve``, serves it with ``rempart serve --no-worker`` and:

1. runs one rights check per card for ``--cards`` cards through the demo's load-test client (a
   pharmacy with raised ceilings), which opens the care relationships and gives the engagement
   numbers the invoices quote;
2. **intake**: wrk posts ``POST /api/v1/invoice-batches`` of 100 invoices each (one to three
   drug lines, every care distinct so that none is a duplicate), each batch body used once, for
   ``--duration`` seconds at each concurrency; prints invoices/s, p50 and p99 per batch and the
   errors; every batch must be answered 202 with 100 accepted;
3. **adjudication**: this process then decides everything received, batch after batch, as one
   worker process does (``services.adjudication.decide_batch``), and prints invoices/s, and the
   accepted / rejected counts read back from the database (every invoice decided once).

Last line: ``rempart_intake_invoices_per_s=<n> rempart_adjudication_invoices_per_s=<m>``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rempart.testing.postgres import Cluster

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from rights_check import PG_SETTINGS, REMPART, bench_token, free_port, serve  # noqa: E402

PER_BATCH = 100


def engage(url: str, token: str, cards: list[dict[str, str]]) -> list[tuple[dict, str]]:
    """A rights check per card; the covered ones with their engagement number."""
    today = date.today().isoformat()
    out = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for c in cards:
            card = {
                "amc_number": c["amc_number"],
                "adherent_number": c["adherent_number"],
                "birth_date": c["birth_date"],
                "rank": int(c["rank"]),
            }
            r = http.post(
                "/api/v1/rights-checks", json={**card, "domain": "PHAR", "care_date": today}
            )
            r.raise_for_status()
            if r.json()["status"] == "covered":
                out.append((card, r.json()["engagement_number"]))
    return out


def half_up(cents: int, rate: int) -> int:
    return (2 * cents * rate + 100) // 200


def batches(engaged: list[tuple[dict, str]], count: int, out: Path) -> int:
    """``count`` batch bodies, one per line; every (card, price) distinct: no duplicate care."""
    rnd = random.Random(7)
    today = date.today().isoformat()
    k = 0
    with out.open("w") as f:
        for b in range(count):
            invoices = []
            for i in range(PER_BATCH):
                card, number = engaged[(b * PER_BATCH + i) % len(engaged)]
                lines = []
                for _ in range(rnd.randint(1, 3)):
                    k += 1
                    price = 100 + k  # cents: unique, so never a duplicate
                    rate = rnd.choice((65, 30))
                    amo = half_up(price, rate)
                    lines.append(
                        {
                            "domain": "PHAR",
                            "code_system": "CIP13",
                            "code": "3400930000014",
                            "quantity": 1,
                            "unit_price": f"{price // 100}.{price % 100:02d}",
                            "brss": f"{price // 100}.{price % 100:02d}",
                            "amo_rate": rate,
                            "amo_amount": f"{amo // 100}.{amo % 100:02d}",
                            "amc_amount_claimed": f"{(price - amo) // 100}.{(price - amo) % 100:02d}",
                        }
                    )
                invoices.append(
                    {
                        "invoice_number": f"B{b:06d}-{i:03d}",
                        "care_date": today,
                        "engagement_number": number,
                        "beneficiary": card,
                        "lines": lines,
                    }
                )
            f.write(json.dumps({"invoices": invoices}, separators=(",", ":")) + "\n")
    return k


def wrk_batches(url: str, conns: int, seconds: int, path: Path, token: str) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "30s",
         "-s", str(HERE / "invoice_batches.lua"), url, "--", str(path), token],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    res = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    if res["requests"] > sum(1 for _ in path.open()):
        raise SystemExit(f"wrk ran out of batch bodies ({res}): raise --rate-guess")
    if res["non_2xx"]:
        raise SystemExit(f"errors from intake ({res}); see the server log")
    return {
        "conns": conns,
        "invoices_per_s": res["requests"] * PER_BATCH / res["duration_us"] * 1e6,
        "p50_ms": res["p50_us"] / 1e3,
        "p99_ms": res["p99_us"] / 1e3,
        "errors": res["errors"] + res["non_2xx"],
        "batches": res["requests"],
    }


async def adjudicate(env: dict[str, str]) -> tuple[int, float]:
    os.environ.update(env)
    from rempart.config import Settings
    from rempart.services import adjudication
    from rempart.services.runtime import build_runtime

    rt = build_runtime(Settings())
    try:
        total, t0 = 0, time.perf_counter()
        while n := await adjudication.decide_batch(rt):
            total += n
        return total, time.perf_counter() - t0
    finally:
        await rt.db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--cards", type=int, default=2_000)
    ap.add_argument("--conns", default="4,8")
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--serve-workers", type=int, default=1)
    ap.add_argument("--rate-guess", type=int, default=9000, help="invoices/s, to size bodies")
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="rempart-claims-bench-"))
    cluster = Cluster(durable=True, settings=PG_SETTINGS).start()
    server = None
    try:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        rempart_env = {
            "REMPART_DATA_DIR": str(tmp),
            "REMPART_DATABASE_URL": cluster.create_database("rempart"),
            "REMPART_LOG_LEVEL": "warning",
            "REMPART_TOKEN_TTL_SECONDS": "7200",
            "REMPART_DB_POOL_SIZE": "8",
        }
        env.update(rempart_env)
        subprocess.run(
            [REMPART, "demo", "--no-serve", "--beneficiaries", str(a.rows),
             "--export-fixtures", str(tmp / "fx")],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        server = serve(env, port, a.serve_workers, tmp / "serve.log")
        url = f"http://127.0.0.1:{port}"
        token = bench_token(url, tmp / "fx")
        cards = list(csv.DictReader((tmp / "fx" / "cards.csv").read_text().splitlines()))
        engaged = engage(url, token, random.Random(3).sample(cards, min(a.cards, len(cards))))
        levels = [int(c) for c in a.conns.split(",")]
        print(
            f"# nproc={os.cpu_count()}, {a.rows:,} beneficiaries, {len(engaged):,} engaged "
            f"cards, serve workers={a.serve_workers}, batches of {PER_BATCH}",
            flush=True,
        )
        print(
            "| conc | invoices/s | p50 ms (batch) | p99 ms (batch) | errors |\n|---|---|---|---|---|"
        )
        runs = []
        for level in levels:
            need = int(a.rate_guess * (a.duration + 2) / PER_BATCH) + 50
            body = tmp / f"batches-{level}.jsonl"
            offset = sum(r["batches"] for r in runs)
            batches(engaged[offset % len(engaged) :] + engaged, need, body)
            # each level gets its own invoice numbers
            text = body.read_text().replace('"invoice_number":"B', f'"invoice_number":"C{level}-')
            body.write_text(text)
            r = wrk_batches(url, level, a.duration, body, token)
            runs.append(r)
            print(
                f"| {level} | {r['invoices_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['errors']:.0f} |",
                flush=True,
            )
        server.terminate()
        server.wait(timeout=30)
        server = None
        received = int(
            cluster.psql("SELECT count(*) FROM invoice WHERE status = 'received'", "rempart")
        )
        print(f"# received and stored: {received:,} invoices")
        decided, seconds = asyncio.run(adjudicate(rempart_env))
        states = cluster.psql(
            "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) n "
            "FROM invoice GROUP BY 1 ORDER BY 1) x",
            "rempart",
        ).strip()
        audited = cluster.psql(
            "SELECT count(*) FROM audit_event WHERE purpose = 'adjudication'", "rempart"
        ).strip()
        print(
            f"# adjudication: {decided:,} invoices in {seconds:.1f} s by one worker process "
            f"({decided / seconds:.0f}/s); now {states}; {audited} adjudication audit rows"
        )
        best = max(r["invoices_per_s"] for r in runs)
        print(
            f"rempart_intake_invoices_per_s={best:.0f} "
            f"rempart_adjudication_invoices_per_s={decided / seconds:.0f}"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
