"""`rempart incident scope` over tens of millions of audit rows on PostgreSQL.

    uv run --frozen python bench/incident_scope.py [--rows 50000000] [--chunk 5000000]

Starts a throwaway PostgreSQL (non-durable: only the load is faster; the scope only reads
the log and writes its few result rows), migrates it with `rempart db upgrade`, then:

1. generates ROWS audit rows shaped like the rights checks' (500 principals — API clients on
   ``api-rights`` and portal accounts on ``portal-rights`` — over 5,000,000 beneficiaries of
   four OCAMs; covered, not covered, unknown cards, refusals; one every 30 ms: 50 M rows span
   17 days) entirely server-side (``INSERT … SELECT … generate_series``), with the production
   indexes dropped during the load and rebuilt after (their build times are printed);
2. adds a thief: an API client that read 600 distinct people in 20 minutes, inside the log;
3. gives every row a leaf index and a leaf hash and writes one tree head of that size, so that
   the scope's inclusion-proof pass streams every leaf exactly as in production. The leaf
   hashes are SHA-256 of the index, not of the row (the bulk tree of ``bench/audit_verify.py``
   takes the row hashing; here only the proof pass is timed), so these proofs do not verify
   against the head: ``tests/security/test_incident_drill.py`` checks real ones;
4. times `rempart incident scope` (wall, CPU, peak RSS) for the thief, with and without
   proofs, for a busy legitimate client (~100,000 reads over the 17 days), and for a one-hour
   window over every principal (``--since/--until``), and checks the thief's scope is exact.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from audit_verify import timed

from rempart.testing.postgres import Cluster

REMPART = str(Path(sys.executable).with_name("rempart"))
PG_SETTINGS = {
    "shared_buffers": "2GB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "30min",
    "maintenance_work_mem": "1GB",
    "work_mem": "256MB",
}
MASTER_KEY = bytes(range(140, 172))
BASE = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
STEP_MS = 30
THIEF_READS = 600
INDEXES = {  # dropped for the load, rebuilt after: what migrations 0001 and 0003 create
    "ix_audit_event_at": "CREATE INDEX ix_audit_event_at ON audit_event (at)",
    "ix_audit_event_subject": "CREATE INDEX ix_audit_event_subject ON audit_event (subject_id)",
    "ix_audit_event_actor_at": (
        "CREATE INDEX ix_audit_event_actor_at ON audit_event (actor_id, at)"
    ),
}
CONSTRAINTS = {
    "pk_audit_event": "ALTER TABLE audit_event ADD CONSTRAINT pk_audit_event PRIMARY KEY (id)",
    "uq_audit_event_leaf_index": (
        "ALTER TABLE audit_event ADD CONSTRAINT uq_audit_event_leaf_index UNIQUE (leaf_index)"
    ),
}

GENERATE = f"""
INSERT INTO audit_event (id, at, actor_kind, actor_id, actor_label, structure_id, ocam_id,
                         channel, purpose, subject_kind, subject_id, categories, result, detail,
                         leaf_index, leaf_hash)
SELECT gen_random_uuid(),
       %(base)s::timestamptz + i * interval '{STEP_MS} milliseconds',
       CASE WHEN p < 460 THEN 'client' ELSE 'account' END,
       md5('p' || p)::uuid,
       'bench-' || p,
       md5('s' || (p %% 400))::uuid,
       CASE WHEN r < 0.95 THEN md5('o' || (b %% 4))::uuid END,
       CASE WHEN p < 460 THEN 'api-rights' ELSE 'portal-rights' END,
       'rights_check',
       CASE WHEN r < 0.95 THEN 'beneficiary' END,
       CASE WHEN r < 0.95 THEN md5('b' || b)::uuid END,
       CASE WHEN r < 0.88 THEN 'coverage' ELSE '' END,
       CASE WHEN r < 0.78 THEN 'covered' WHEN r < 0.88 THEN 'not_covered'
            WHEN r < 0.95 THEN 'unknown' ELSE 'refused' END,
       CASE WHEN r < 0.95 THEN '{{"domain": "PHAR"}}' ELSE '{{"reason": "contained"}}' END,
       i - 1,
       sha256(int8send(i))
FROM (SELECT i, floor(random() * 500)::int AS p, floor(random() * 5000000)::int AS b,
             random() AS r
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i) g
"""  # noqa: S608 (constants only)

THIEF = f"""
INSERT INTO audit_event (id, at, actor_kind, actor_id, actor_label, structure_id, ocam_id,
                         channel, purpose, subject_kind, subject_id, categories, result, detail,
                         leaf_index, leaf_hash)
SELECT gen_random_uuid(), %(start)s::timestamptz + j * interval '2 seconds', 'client',
       %(thief)s, 'cli_thief', %(structure)s, md5('o' || (b %% 4))::uuid, 'api-rights',
       'rights_check', 'beneficiary', md5('b' || b)::uuid, 'coverage', 'covered',
       '{{"domain": "PHAR"}}', %(first)s + j, sha256(int8send(-1 - j))
FROM (SELECT j, (j * 7919 + 13) %% 5000000 AS b FROM generate_series(0, {THIEF_READS - 1}) j) t
"""  # noqa: S608 (constants only)


def _psql(url: str, sql: str, params: dict[str, object] | None = None) -> float:
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params or {})  # type: ignore[arg-type]
    return time.perf_counter() - t0


def load(url: str, rows: int, chunk: int) -> tuple[uuid.UUID, uuid.UUID, datetime]:
    """The log, the thief (an API client of its own structure) and one tree head."""
    for name in INDEXES:
        _psql(url, f"DROP INDEX {name}")
    for name in CONSTRAINTS:
        _psql(url, f"ALTER TABLE audit_event DROP CONSTRAINT {name}")
    started = time.perf_counter()
    for lo in range(1, rows + 1, chunk):
        hi = min(rows, lo + chunk - 1)
        took = _psql(url, GENERATE, {"base": BASE, "lo": lo, "hi": hi})
        print(
            f"  rows {lo:>11,}–{hi:>11,}: {took:6.1f} s ({(hi - lo + 1) / took:,.0f} rows/s)",
            flush=True,
        )
    print(f"generation of {rows:,} rows: {time.perf_counter() - started:.1f} s", flush=True)
    thief, structure = uuid.uuid4(), uuid.uuid4()
    start = BASE + timedelta(milliseconds=STEP_MS * rows * 0.9)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO structure (id, name, profession, created_at) VALUES (%s, %s, %s, now())",
            (structure, "Pharmacie Volée (bench)", "pharmacy"),
        )
        conn.execute(
            "INSERT INTO api_client (id, client_id, secret_hash, structure_id, name, created_at)"
            " VALUES (%s, 'cli_thief', %s, %s, 'LGO volé', now())",
            (thief, os.urandom(32), structure),
        )
        conn.execute(
            "INSERT INTO api_client (id, client_id, secret_hash, structure_id, name, created_at)"
            " VALUES (md5('p7')::uuid, 'bench-7', %s, %s, 'LGO occupé', now())",
            (os.urandom(32), structure),
        )
        conn.execute(THIEF, {"start": start, "thief": thief, "structure": structure, "first": rows})
    total = rows + THIEF_READS
    for name, sql in {**CONSTRAINTS, **INDEXES}.items():
        print(f"build {name}: {_psql(url, sql):.1f} s", flush=True)
    print(
        f"VACUUM ANALYZE audit_event: {_psql(url, 'VACUUM ANALYZE audit_event'):.1f} s", flush=True
    )
    frontier_len = 32 * bin(total).count("1")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_checkpoint (tree_size, root_hash, frontier, signed_at, public_key,"
            " signature) VALUES (%s, %s, %s, now(), %s, %s)",
            (total, os.urandom(32), os.urandom(frontier_len), os.urandom(32), os.urandom(64)),
        )
        size = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('audit_event'))"
        ).fetchone()
    print(f"audit_event with its indexes: {size[0] if size else '?'}", flush=True)
    return thief, structure, start


def _officer(env: dict[str, str]) -> None:
    code = (
        "import asyncio\n"
        "from rempart.config import Settings\n"
        "from rempart.domain.roles import Role\n"
        "from rempart.security.principal import system\n"
        "from rempart.services.registry import create_account\n"
        "from rempart.services.runtime import build_runtime\n"
        "async def main():\n"
        "    rt = build_runtime(Settings())\n"
        "    await create_account(rt, username='sec.bench', display_name='Bench',\n"
        "        email='sec@bench.example', role=Role.SECURITY, actor=system('bench'))\n"
        "    await rt.db.dispose()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _scope(env: dict[str, str], label: str, *args: str) -> dict[str, object]:
    run = timed([REMPART, "incident", "scope", *args, "--json", "--actor", "sec.bench"], env)
    if run["code"]:
        raise SystemExit(f"{label}: {run['output'][-2000:]}")
    found = json.loads(str(run["output"])[str(run["output"]).index("{") :])
    people = sum(len(v) for v in found["beneficiaries"].values())
    proofs = sum(1 for s in found["subjects"] if s["proof"])
    print(
        f"{label}: {run['seconds']:.1f} s wall, {run['cpu_s']:.1f} s CPU, peak RSS "
        f"{run['rss_mib']:.0f} MiB — {found['reads']:,} reads, {people:,} people, "
        f"{proofs:,} proofs",
        flush=True,
    )
    return {**found, "seconds": run["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--chunk", type=int, default=5_000_000)
    a = ap.parse_args()
    cluster = Cluster(durable=False, settings=PG_SETTINGS).start()
    tmp = Path(tempfile.mkdtemp(prefix="rempart-scope-bench-"))
    try:
        url = cluster.create_database("rempart")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(
            REMPART_DATA_DIR=str(tmp),
            REMPART_DATABASE_URL=url,
            REMPART_MASTER_KEY=base64.urlsafe_b64encode(MASTER_KEY).decode(),
            REMPART_LOG_LEVEL="warning",
        )
        subprocess.run([REMPART, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"# {a.rows:,} rows, nproc={os.cpu_count()}, load {os.getloadavg()}", flush=True)
        thief, _, start = load(url, a.rows, a.chunk)
        _officer(env)
        print(f"# load average before the scopes: {os.getloadavg()}", flush=True)
        quick = _scope(
            env, "scope --client thief --no-proofs", "--client", str(thief), "--no-proofs"
        )
        full = _scope(env, "scope --client thief (with proofs)", "--client", "cli_thief")
        for got in (quick, full):
            people = sum(len(v) for v in got["beneficiaries"].values())  # type: ignore[attr-defined]
            if people != THIEF_READS or got["reads"] != THIEF_READS:
                raise SystemExit(f"the thief's scope is not exact: {people} people")
        _scope(
            env,
            "scope --client bench-7 (busy, legitimate) --no-proofs",
            "--client",
            "bench-7",
            "--no-proofs",
        )
        since = (start - timedelta(minutes=30)).isoformat()
        until = (start + timedelta(minutes=30)).isoformat()
        _scope(
            env,
            "scope --since/--until one hour, every principal --no-proofs",
            "--since",
            since,
            "--until",
            until,
            "--no-proofs",
        )
        print(
            f"rempart_incident_scope_rows={a.rows + THIEF_READS} thief_seconds={quick['seconds']:.1f} "
            f"thief_with_proofs_seconds={full['seconds']:.1f} exact=1 load={os.getloadavg()[0]:.2f}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        cluster.stop()


if __name__ == "__main__":
    main()
