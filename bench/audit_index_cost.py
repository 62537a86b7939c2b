"""What the scope index ``ix_audit_event_actor_at (actor_id, at)`` costs on the audit write.

    uv run --frozen python bench/audit_index_cost.py [--rows 100000] [--rounds 3] [--preload 2000000]

The index has been in the schema since migration 0001 (breach scoping reads by principal and
time); every rights check writes one audit row. This bench prices that index alone: on a
throwaway PostgreSQL (non-durable, so fsync does not hide the difference), it preloads the
log with PRELOAD rows (an index on a big table costs more than on an empty one), then inserts
ROWS audit rows shaped like the rights checks' one per transaction, as the hot path does,
alternating rounds with the index and without it (dropped and rebuilt between rounds), and
prints microseconds per insert for each. Run it on a quiet machine: the difference is small
and the wall clock is shared with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rempart.testing.postgres import Cluster

REMPART = str(Path(sys.executable).with_name("rempart"))
BASE = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
INSERT = (
    "INSERT INTO audit_event (id, at, actor_kind, actor_id, actor_label, structure_id, ocam_id,"
    " channel, purpose, subject_kind, subject_id, categories, result, detail)"
    " VALUES (%s, %s, 'client', %s, %s, %s, %s, 'api-rights', 'rights_check', 'beneficiary',"
    " %s, 'coverage', 'covered', %s)"
)
PRELOAD = """
INSERT INTO audit_event (id, at, actor_kind, actor_id, actor_label, structure_id, ocam_id,
  channel, purpose, subject_kind, subject_id, categories, result, detail)
SELECT gen_random_uuid(), %(base)s::timestamptz - i * interval '30 milliseconds', 'client',
  md5('p' || (i %% 500))::uuid, 'bench', md5('s' || (i %% 400))::uuid, md5('o' || (i %% 4))::uuid,
  'api-rights', 'rights_check', 'beneficiary', gen_random_uuid(), 'coverage', 'covered',
  '{"domain": "PHAR"}'
FROM generate_series(1, %(n)s::bigint) i
"""
DETAIL = json.dumps({"domain": "PHAR"}, sort_keys=True)


def round_(url: str, rows: int, seed: int) -> float:
    rnd = random.Random(seed)
    actors = [uuid.UUID(int=rnd.getrandbits(128), version=4) for _ in range(500)]
    values = [
        (
            uuid.uuid4(),
            BASE + timedelta(milliseconds=30 * i),
            rnd.choice(actors),
            "cli_bench",
            actors[0],
            actors[1],
            uuid.uuid4(),
            DETAIL,
        )
        for i in range(rows)
    ]
    with psycopg.connect(url) as conn:
        cur = conn.cursor()
        cur.execute(INSERT, values[0])  # prepare
        conn.commit()
        started = time.perf_counter()
        for v in values[1:]:
            cur.execute(INSERT, v, prepare=True)
            conn.commit()
        return (time.perf_counter() - started) / (rows - 1) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--preload", type=int, default=2_000_000)
    a = ap.parse_args()
    cluster = Cluster(durable=False, settings={"shared_buffers": "1GB"}).start()
    tmp = tempfile.mkdtemp(prefix="rempart-index-bench-")
    try:
        url = cluster.create_database("rempart")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(REMPART_DATA_DIR=tmp, REMPART_DATABASE_URL=url, REMPART_LOG_LEVEL="warning")
        env["REMPART_MASTER_KEY"] = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
        subprocess.run([REMPART, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(PRELOAD, {"base": BASE, "n": a.preload})
            conn.execute("VACUUM ANALYZE audit_event")
        print(f"# preloaded {a.preload:,} rows; load {os.getloadavg()}", flush=True)
        figures: dict[str, list[float]] = {"with": [], "without": []}
        for r in range(a.rounds):
            for mode in ("with", "without"):
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("DROP INDEX IF EXISTS ix_audit_event_actor_at")
                    if mode == "with":
                        conn.execute(
                            "CREATE INDEX ix_audit_event_actor_at ON audit_event (actor_id, at)"
                        )
                    conn.execute("CHECKPOINT")
                us = round_(url, a.rows, seed=r)
                figures[mode].append(us)
                print(
                    f"round {r + 1} {mode:>7} ix_audit_event_actor_at: {us:6.1f} µs/insert",
                    flush=True,
                )
        best = {m: min(v) for m, v in figures.items()}
        print(
            f"best of {a.rounds}: with {best['with']:.1f} µs, without {best['without']:.1f} µs, "
            f"index cost {best['with'] - best['without']:+.1f} µs/insert "
            f"({(best['with'] / best['without'] - 1) * 100:+.1f} %); load {os.getloadavg()}"
        )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
