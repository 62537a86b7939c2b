"""Server time of a portal rights check (issue 7: ≤ 200 ms), with the step-up rule in place:
a session whose passkey assertion is fresh (no extra work), and a stale one under its soft
ceiling (one more read: today's distinct count), each on new cards and on cards already seen.

    uv run python bench/portal_rights.py [--rows 5000] [--requests 400]

Seeds a throwaway PostgreSQL with ``rempart demo --no-serve``, opens a portal session for the
demo pharmacy's titulaire directly in the database (its cookie and CSRF token computed with the
key ring, as the sign-in does), raises that structure's ceilings so that nothing is contained,
and posts ``/portail/droits`` in process (httpx's ASGI transport, sequential requests). The
time per request is the whole ASGI call: the view, the rights check, the HTML rendering.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rempart.testing.postgres import Cluster

REMPART = str(Path(sys.executable).with_name("rempart"))
WARMUP = 50


async def measure(fx: Path, requests: int) -> None:
    import httpx
    from sqlalchemy import select, update

    from rempart.config import Settings
    from rempart.db.tables import account, structure, web_session
    from rempart.security import sessions
    from rempart.services.runtime import build_runtime
    from rempart.web.app import create_app

    settings = Settings()
    rt = build_runtime(settings)
    async with rt.db.transaction() as conn:
        row = (
            await conn.execute(
                select(account.c.id, account.c.structure_id)
                .join(structure, structure.c.id == account.c.structure_id)
                .where(account.c.role == "titulaire", structure.c.profession == "pharmacy")
                .where(structure.c.is_canary.is_(False))
                .limit(1)
            )
        ).one()
        await conn.execute(
            update(structure)
            .where(structure.c.id == row.structure_id)
            .values(quota_soft=100_000, quota_hard=200_000)
        )
        cookie = await sessions.open_session(
            conn, rt.keys, account_id=row.id, passkey_id=None, user_agent="bench", now=rt.now()
        )
    csrf = sessions.csrf_token(rt.keys, cookie)
    cards = [c for c in csv.DictReader((fx / "cards.csv").read_text().splitlines())
             if "PHAR" in c["domains"].split("|")]  # fmt: skip
    app = create_app(settings, runtime=rt)
    headers = {"cookie": f"{sessions.COOKIE}={cookie}"}

    def form(c: dict[str, str]) -> dict[str, str]:
        return {"csrf": csrf, "amc_number": c["amc_number"],
                "adherent_number": c["adherent_number"], "birth_date": c["birth_date"],
                "rank": c["rank"], "domain": "PHAR", "care_date": date.today().isoformat()}  # fmt: skip

    async def stepped_up(fresh: bool) -> None:
        async with rt.db.transaction() as conn:
            await conn.execute(
                update(web_session)
                .where(web_session.c.id_hash == sessions.id_hash(rt.keys, cookie))
                .values(stepped_up_at=rt.now() if fresh else rt.now() - timedelta(hours=1))
            )

    transport = httpx.ASGITransport(app=app)
    print("| session | cards | median ms | p95 ms | max ms |\n|---|---|---|---|---|")
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        for c in cards[:WARMUP]:
            await http.post("/portail/droits", data=form(c), headers=headers)
        start = WARMUP
        for fresh in (True, False):
            await stepped_up(fresh)
            for label, batch in (
                ("new", cards[start : start + requests]),
                ("seen today", cards[start : start + requests]),
            ):
                times = []
                for c in batch:
                    t = time.perf_counter()
                    r = await http.post("/portail/droits", data=form(c), headers=headers)
                    times.append((time.perf_counter() - t) * 1000)
                    if r.status_code != 200:
                        raise SystemExit(f"{r.status_code} {r.headers.get('location')}")
                times.sort()
                p95 = times[int(len(times) * 0.95) - 1]
                name = "fresh assertion" if fresh else "stale, under soft"
                print(f"| {name} | {label} | {statistics.median(times):.1f} | {p95:.1f} | "
                      f"{times[-1]:.1f} |", flush=True)  # fmt: skip
            start += requests
    await rt.db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--requests", type=int, default=400)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rempart-portal-"))
    with Cluster() as pg:
        env = {
            "REMPART_DATA_DIR": str(tmp),
            "REMPART_DATABASE_URL": pg.create_database("rempart"),
            "REMPART_LOG_LEVEL": "warning",
        }
        subprocess.run(
            [REMPART, "demo", "--no-serve", "--beneficiaries", str(a.rows),
             "--export-fixtures", str(tmp / "fx")],
            env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        os.environ.update(env)
        asyncio.run(measure(tmp / "fx", a.requests))


if __name__ == "__main__":
    main()
