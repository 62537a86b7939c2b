"""Rights checks against Rempart on PostgreSQL, driven like the bare-service ceiling.

    uv run python bench/rights_check.py [--rows 1000000] [--levels 1,8,32,64] [--workers 1]
                                        [--duration 15] [--warmup 5] [--repeat 2]
                                        [--clients 1] [--bookkeeping on|off|on,off]

Starts a durable throwaway PostgreSQL (the ceiling's settings), seeds it with
``rempart demo --no-serve --beneficiaries ROWS``, serves it with ``rempart serve --no-worker``,
and drives ``POST /api/v1/rights-checks`` with wrk (1 thread, keep-alive, closed loop): random
cards from ``cards.csv``, about 5 % unknown, through the demo's load-test client (raised
ceilings, so containment does not trip), or ``--clients N`` such clients, each its own
pharmacy (``bench/clients.py``). ``--bookkeeping on,off`` serves the same database twice, the
second without the audit row and quota counting (``bench/unaudited.py``), alternates the runs
and prints what the bookkeeping costs. Prints one table row per run and, last,
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


def serve(
    env: dict[str, str], port: int, workers: int, log: Path, *, bookkeeping: bool = True
) -> subprocess.Popen[bytes]:
    """``rempart serve --no-worker`` on ``port``, returned once ``/healthz`` answers; without
    ``bookkeeping``, the same server with the audit row and quota counting swapped out
    (``bench/unaudited.py``, for measurement only; one worker process)."""
    command = [REMPART] if bookkeeping else [sys.executable, str(HERE / "unaudited.py")]
    if not bookkeeping and workers != 1:
        raise SystemExit("--bookkeeping off needs --workers 1 (the swap is in-process)")
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port), "--workers", str(workers), "--no-worker"],
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


def bench_token(url: str, fixtures: Path, client: dict[str, str] | None = None) -> str:
    """A token of the demo's load-test client (raised ceilings: containment does not trip),
    or of ``client``."""
    if client is None:
        clients = json.loads((fixtures / "clients.json").read_text())
        client = next(c for c in clients if c.get("bench"))
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
    ap.add_argument(
        "--clients",
        type=int,
        default=1,
        help="load-test clients, each its own pharmacy (1: the demo's; more: bench/clients.py)",
    )
    ap.add_argument(
        "--bookkeeping",
        default="on",
        help="on, off or on,off: with 'on,off' two servers on the same database, runs "
        "alternating, and the cost of the audit row and quota counting at the end",
    )
    a = ap.parse_args()
    modes = a.bookkeeping.split(",")
    if not set(modes) <= {"on", "off"}:
        raise SystemExit("--bookkeeping: on, off or on,off")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="rempart-rights-bench-"))
    cluster = Cluster(durable=True, settings=PG_SETTINGS).start()
    servers: dict[str, subprocess.Popen[bytes]] = {}
    try:
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
            f"nproc={os.cpu_count()}, server workers={a.workers}, clients={a.clients}",
            flush=True,
        )
        bodies(tmp / "fx" / "cards.csv", tmp / "bodies.jsonl")
        urls = {}
        for mode in modes:
            port = free_port()
            servers[mode] = serve(
                env, port, a.workers, tmp / f"serve-{mode}.log", bookkeeping=mode == "on"
            )
            urls[mode] = f"http://127.0.0.1:{port}"
        token = bench_token(urls[modes[0]], tmp / "fx")
        if a.clients > 1:  # the demo's client and a.clients - 1 more, a token each
            subprocess.run(
                [sys.executable, str(HERE / "clients.py"), str(a.clients - 1),
                 str(tmp / "more.json")],
                env=env, check=True,
            )  # fmt: skip
            more = json.loads((tmp / "more.json").read_text())
            tokens = [token, *(bench_token(urls[modes[0]], tmp / "fx", c) for c in more)]
            (tmp / "tokens.txt").write_text("\n".join(tokens) + "\n")
            token = f"@{tmp / 'tokens.txt'}"
        print(
            "| bookkeeping | conc | run | req/s | p50 ms | p99 ms | errors |\n"
            "|---|---|---|---|---|---|---|",
            flush=True,
        )
        runs = []
        for level in map(int, a.levels.split(",")):
            for mode in modes:
                wrk(urls[mode], level, a.warmup, tmp / "bodies.jsonl", token)
            for k in range(a.repeat):
                for mode in modes:  # alternating: the machine's drift hits both alike
                    r = wrk(urls[mode], level, a.duration, tmp / "bodies.jsonl", token)
                    r["mode"] = mode
                    runs.append(r)
                    print(
                        f"| {mode} | {level} | {k + 1} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                        f"{r['p99_ms']:.2f} | {r['errors']:.0f} |",
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
        rps = {}
        for mode in modes:
            mine = [r for r in runs if r["conns"] == level and r["mode"] == mode]
            rps[mode] = sum(r["rps"] for r in mine) / len(mine)
            p99 = max(r["p99_ms"] for r in mine)
            if mode == "off":
                print(f"# without audit and quotas: {rps[mode]:.0f} checks/s, p99 {p99:.2f} ms")
        if "off" in rps and "on" in rps:
            cost = (1 - rps["on"] / rps["off"]) * 100
            print(f"# audit row and quota bookkeeping cost {cost:.1f} % of throughput at c={level}")
        if "on" in rps:  # last line: what bench/compare.sh reads
            mine = [r for r in runs if r["conns"] == level and r["mode"] == "on"]
            print(
                f"rempart_rights_checks_per_s={rps['on']:.0f} "
                f"p99_ms={max(r['p99_ms'] for r in mine):.2f}"
            )
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(timeout=30)
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
