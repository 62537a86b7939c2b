"""FHIR eligibility (``POST /fhir/r4/CoverageEligibilityRequest``) against the JSON rights check
(``POST /api/v1/rights-checks``): same server, same data, same cards, runs interleaved.

    uv run python bench/fhir_eligibility.py [--rows 100000] [--conns 32] [--duration 10]
                                            [--warmup 3] [--rounds 3] [--workers 1]

Seeds ``rempart demo --no-serve`` on a throwaway PostgreSQL, serves it with
``rempart serve --no-worker``, and alternates wrk runs of the two endpoints (JSON, FHIR, JSON,
FHIR, …) so that whatever else loads the machine weighs on both alike. The bodies are the same
random cards (about 5 % unknown), written once as JSON and once as FHIR. Prints one row per
run, then ``json_per_s=… fhir_per_s=… ratio=…`` (means over the rounds) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
import rights_check as rc  # noqa: E402

from rempart.testing.postgres import Cluster  # noqa: E402
from rempart.web.fhir.systems import Systems  # noqa: E402


def fhir_bodies(json_bodies: Path, out: Path, sid: Systems) -> None:
    with out.open("w") as f:
        for line in json_bodies.read_text().splitlines():
            b = json.loads(line)
            body = {
                "resourceType": "CoverageEligibilityRequest",
                "status": "active",
                "purpose": ["benefits"],
                "created": b["care_date"],
                "servicedDate": b["care_date"],
                "contained": [
                    {
                        "resourceType": "Patient",
                        "id": "patient",
                        "extension": [
                            {"url": sid.extension("birth-rank"), "valueInteger": b["rank"]}
                        ],
                        "identifier": [
                            {"system": sid.adherent_number, "value": b["adherent_number"]}
                        ],
                        "birthDate": b["birth_date"],
                    }
                ],
                "patient": {"reference": "#patient"},
                "insurer": {"identifier": {"system": sid.amc_number, "value": b["amc_number"]}},
                "item": [
                    {"category": {"coding": [{"system": sid.care_domain, "code": b["domain"]}]}}
                ],
            }
            f.write(json.dumps(body, separators=(",", ":")) + "\n")


def wrk(
    url: str, conns: int, seconds: int, bodies: Path, token: str, path: str, ctype: str
) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s",
         "-s", str(HERE / "fhir_eligibility.lua"), url, "--", str(bodies), token, path, ctype],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    res = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    return {
        "rps": res["requests"] / res["duration_us"] * 1e6,
        "p50_ms": res["p50_us"] / 1e3,
        "p99_ms": res["p99_us"] / 1e3,
        "errors": res["errors"] + res["non_2xx"],
    }


KINDS = {
    "json": ("/api/v1/rights-checks", "application/json", "bodies.jsonl"),
    "fhir": ("/fhir/r4/CoverageEligibilityRequest", "application/fhir+json", "fhir.jsonl"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    random.seed(42)
    tmp = Path(tempfile.mkdtemp(prefix="rempart-fhir-bench-"))
    cluster = Cluster(durable=True, settings=rc.PG_SETTINGS).start()
    server = None
    try:
        port = rc.free_port()
        base = f"http://localhost:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(
            REMPART_DATA_DIR=str(tmp),
            REMPART_DATABASE_URL=cluster.create_database("rempart"),
            REMPART_BASE_URL=base,
            REMPART_LOG_LEVEL="warning",
            REMPART_TOKEN_TTL_SECONDS="7200",
            REMPART_DB_POOL_SIZE="8",
        )
        subprocess.run(
            [rc.REMPART, "demo", "--no-serve", "--beneficiaries", str(a.rows),
             "--export-fixtures", str(tmp / "fx")],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        rc.bodies(tmp / "fx" / "cards.csv", tmp / "bodies.jsonl")
        fhir_bodies(tmp / "bodies.jsonl", tmp / "fhir.jsonl", Systems.under(base))
        server = rc.serve(env, port, a.workers, tmp / "serve.log")
        url = f"http://127.0.0.1:{port}"
        token = rc.bench_token(url, tmp / "fx")
        print(f"# {a.rows:,} beneficiaries, c={a.conns}, {a.duration} s runs, "
              f"nproc={os.cpu_count()}, server workers={a.workers}")  # fmt: skip
        print("| round | api | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
        for path, ctype, file in KINDS.values():
            wrk(url, a.conns, a.warmup, tmp / file, token, path, ctype)
        got: dict[str, list[float]] = {"json": [], "fhir": []}
        loads = []
        for k in range(a.rounds):
            for kind, (path, ctype, file) in KINDS.items():
                r = wrk(url, a.conns, a.duration, tmp / file, token, path, ctype)
                got[kind].append(r["rps"])
                loads.append(os.getloadavg()[0])
                print(f"| {k + 1} | {kind} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                      f"{r['p99_ms']:.2f} | {r['errors']:.0f} |", flush=True)  # fmt: skip
        j, f = (sum(got[k]) / len(got[k]) for k in ("json", "fhir"))
        print(f"json_per_s={j:.0f} fhir_per_s={f:.0f} ratio={f / j:.2f} "
              f"load_avg_1m={min(loads):.2f}..{max(loads):.2f}")  # fmt: skip
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
