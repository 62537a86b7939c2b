"""Rights checks against Rempart on PostgreSQL, driven like the bare-service ceiling.

    uv run python bench/rights_check.py [--rows 1000000] [--levels 1,8,32,64] [--workers 1]
                                        [--duration 15] [--warmup 5] [--repeat 2]

Starts a durable throwaway PostgreSQL (the ceiling's settings), seeds it with
``rempart demo --no-serve --beneficiaries ROWS``, serves it with ``rempart serve --no-worker``,
and drives ``POST /api/v1/rights-checks`` with wrk (1 thread, keep-alive, closed loop): random
cards from ``cards.csv``, about 5 % unknown, through the demo's load-test client (raised
ceilings, so containment does not trip). Prints one table row per run and, last,
``rempart_rights_checks_per_s=<n> p99_ms=<x>`` at concurrency 64 (mean of runs, worst p99),
then the share of each answer from the audit log (every check audited).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import socket
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
REMPART = str(Path(sys.executable).with_name("rempart"))
PG_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bodies(cards: Path, out: Path, count: int = 100_000, unknown: float = 0.05) -> None:
    rows = list(csv.DictReader(cards.read_text().splitlines()))
    rnd = random.Random(42)
    today = date.today().isoformat()
    with out.open("w") as f:
        for _ in range(count):
            c = rnd.choice(rows)
            body = {
                "amc_number": c["amc_number"],
                "adherent_number": c["adherent_number"],
                "birth_date": c["birth_date"],
                "rank": int(c["rank"]),
                "domain": "PHAR",
                "care_date": today,
            }
            if rnd.random() < unknown:
                body["adherent_number"] = f"X{rnd.randrange(10**9)}"
            f.write(json.dumps(body, separators=(",", ":")) + "\n")


def wrk(url: str, conns: int, seconds: int, path: Path, token: str) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "rights_check.lua"),
            url,
            "--",
            str(path),
            token,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    res = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    return {
        "conns": conns,
        "rps": res["requests"] / res["duration_us"] * 1e6,
        "p50_ms": res["p50_us"] / 1e3,
        "p99_ms": res["p99_us"] / 1e3,
        "errors": res["errors"] + res["non_2xx"],
    }


def serve(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    """``rempart serve --no-worker`` on ``port``, returned once ``/healthz`` answers."""
    server = subprocess.Popen(
        [REMPART, "serve", "--port", str(port), "--workers", str(workers), "--no-worker"],
        env={**env, "REMPART_LOG_LEVEL": "warning"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    return server


def bench_token(url: str, fixtures: Path) -> str:
    """A token of the demo's load-test client (raised ceilings: containment does not trip)."""
    client = next(c for c in json.loads((fixtures / "clients.json").read_text()) if c.get("bench"))
    return str(
        httpx.post(
            f"{url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
            },
        ).json()["access_token"]
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--levels", default="1,8,32,64")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="rempart-rights-bench-"))
    cluster = Cluster(durable=True, settings=PG_SETTINGS).start()
    server = None
    try:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(
            REMPART_DATA_DIR=str(tmp),
            REMPART_DATABASE_URL=cluster.create_database("rempart"),
            REMPART_LOG_LEVEL="warning",
            REMPART_TOKEN_TTL_SECONDS="7200",
            REMPART_DB_POOL_SIZE="8",
        )
        t0 = time.perf_counter()
        subprocess.run(
            [
                REMPART,
                "demo",
                "--no-serve",
                "--beneficiaries",
                str(a.rows),
                "--export-fixtures",
                str(tmp / "fx"),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(
            f"# seeded {a.rows:,} beneficiaries in {time.perf_counter() - t0:.0f} s; "
            f"nproc={os.cpu_count()}, server workers={a.workers}",
            flush=True,
        )
        bodies(tmp / "fx" / "cards.csv", tmp / "bodies.jsonl")
        server = serve(env, port, a.workers, tmp / "serve.log")
        url = f"http://127.0.0.1:{port}"
        token = bench_token(url, tmp / "fx")
        print(
            "| conc | run | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|",
            flush=True,
        )
        runs = []
        for level in map(int, a.levels.split(",")):
            wrk(url, level, a.warmup, tmp / "bodies.jsonl", token)
            for k in range(a.repeat):
                r = wrk(url, level, a.duration, tmp / "bodies.jsonl", token)
                runs.append(r)
                print(
                    f"| {level} | {k + 1} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                    f"{r['errors']:.0f} |",
                    flush=True,
                )
        answers = cluster.psql(
            "SELECT string_agg(result || ' ' || n, ', ') FROM (SELECT result, count(*) n FROM audit_event "
            "WHERE purpose = 'rights_check' GROUP BY 1 ORDER BY 1) x",
            "rempart",
        ).strip()
        print(f"# audited rights checks: {answers}")
        at = {r["conns"] for r in runs}
        level = 64 if 64 in at else max(at)
        mine = [r for r in runs if r["conns"] == level]
        print(
            f"rempart_rights_checks_per_s={sum(r['rps'] for r in mine) / len(mine):.0f} "
            f"p99_ms={max(r['p99_ms'] for r in mine):.2f}"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
