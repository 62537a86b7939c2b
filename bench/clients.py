"""More load-test API clients, each in its own pharmacy, with the demo's raised ceilings.

    python bench/clients.py N OUT.json    # with the bench's REMPART_* environment

A national operator's traffic comes from thousands of structures, each with its own client;
one client alone measures how fast one principal may go (its distinct-subject count is one
row that every new card increments, so its checks commit one after the other). Writes the
clients as ``clients.json`` does (``{client_id, client_secret, structure_id, profession}``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rempart.config import Settings
from rempart.domain.care import Profession
from rempart.security.principal import system
from rempart.services.demo import BENCH_QUOTA
from rempart.services.registry import create_api_client, create_structure
from rempart.services.runtime import build_runtime


async def create(n: int) -> list[dict[str, str]]:
    rt = build_runtime(Settings())
    actor = system("bench")
    out = []
    try:
        for i in range(n):
            sid = await create_structure(
                rt, name=f"Pharmacie de charge {i + 1}", profession=Profession.PHARMACY,
                actor=actor,
            )  # fmt: skip
            c = await create_api_client(
                rt, structure_id=sid, name=f"Client de charge {i + 1}", actor=actor,
                quota_soft=BENCH_QUOTA, quota_hard=BENCH_QUOTA,
            )  # fmt: skip
            out.append(
                {"client_id": c.client_id, "client_secret": c.client_secret,
                 "structure_id": str(sid), "profession": "pharmacy"}
            )  # fmt: skip
    finally:
        await rt.db.dispose()
    return out


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(json.dumps(asyncio.run(create(int(sys.argv[1]))), indent=1))
