"""CPU and wall time per rights check inside the server process, alternating, each in a fresh
process, on the same data: the fast path (``web.fast``); the FastAPI view; and the fast path
without its audit row and quota counting (``--modes unaudited``: the statements are swapped
for this measurement only), which prices the bookkeeping — its PostgreSQL side shows in the
wall time of sequential requests, not in this process's CPU.

    uv run python bench/rights_inprocess.py [--rows 5000] [--requests 3000] [--rounds 2]

Seeds a throwaway PostgreSQL with ``rempart demo --no-serve`` and drives the ASGI app in
process (httpx's ASGI transport, sequential requests through the demo's load-test client).
``process_time`` counts this process only — the app and the client, not PostgreSQL — so the
figure is robust to other load on the machine, which wall-clock benches on two shared cores
are not. The client's own cost is in both figures alike.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rempart.testing.postgres import Cluster

REMPART = str(Path(sys.executable).with_name("rempart"))
WARMUP = 300


async def measure(env: dict[str, str], mode: str, requests: int) -> None:
    framework = mode == "framework"
    import httpx

    os.environ.update(env)
    from rempart.config import Settings
    from rempart.web import app as app_module
    from rempart.web import fast

    if framework:  # every request handed to FastAPI, as before web.fast

        async def through(
            self: fast.RightsFastPath, scope: object, receive: object, send: object
        ) -> None:
            await self.app(scope, receive, send)  # type: ignore[arg-type]

        fast.RightsFastPath.__call__ = through  # type: ignore[method-assign]
    if mode == "unaudited":
        from unaudited import without_bookkeeping

        without_bookkeeping()
    app = app_module.create_app(Settings())
    fx = Path(env["REMPART_DATA_DIR"]) / "fx"
    client = next(c for c in json.loads((fx / "clients.json").read_text()) if c.get("bench"))
    cards = list(csv.DictReader((fx / "cards.csv").read_text().splitlines()))
    rnd = random.Random(1)
    bodies = [
        {
            "amc_number": c["amc_number"],
            "adherent_number": c["adherent_number"],
            "birth_date": c["birth_date"],
            "rank": int(c["rank"]),
            "domain": "PHAR",
            "care_date": date.today().isoformat(),
        }
        for c in (rnd.choice(cards) for _ in range(requests + WARMUP))
    ]
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as http,
    ):
        token = (
            await http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client["client_id"],
                    "client_secret": client["client_secret"],
                },
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for b in bodies[:WARMUP]:
            await http.post("/api/v1/rights-checks", json=b, headers=headers)
        cpu, wall = time.process_time(), time.perf_counter()
        for b in bodies[WARMUP:]:
            r = await http.post("/api/v1/rights-checks", json=b, headers=headers)
            if r.status_code != 200:
                raise SystemExit(r.text)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    label = {
        "fast": "fast path",
        "framework": "FastAPI view",
        "unaudited": "fast path, no audit or quota",
    }[mode]
    print(f"| {label} | {cpu / requests * 1e6:.0f} | {wall / requests * 1e3:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default="fast,framework,unaudited")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rempart-inprocess-"))
    with Cluster() as pg:
        env = {
            "REMPART_DATA_DIR": str(tmp),
            "REMPART_DATABASE_URL": pg.create_database("rempart"),
            "REMPART_LOG_LEVEL": "warning",
            "REMPART_TOKEN_TTL_SECONDS": "7200",
        }
        subprocess.run(
            [REMPART, "demo", "--no-serve", "--beneficiaries", str(a.rows),
             "--export-fixtures", str(tmp / "fx")],
            env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        print("| path | µs CPU per check (this process) | ms wall per check |\n|---|---|---|")
        for _ in range(a.rounds):
            for mode in a.modes.split(","):
                subprocess.run(
                    [sys.executable, __file__, "--child", json.dumps(env), mode,
                     str(a.requests)],
                    check=True,
                )  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(measure(json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
    else:
        main()
