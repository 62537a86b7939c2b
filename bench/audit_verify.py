"""`rempart audit verify` over millions of sealed audit rows on PostgreSQL.

    uv run python bench/audit_verify.py [--rows 10000000] [--database-url URL] [--workers N]

Starts a throwaway PostgreSQL (non-durable: only the load is faster, verify only reads), or
uses ``--database-url`` (migrated here; its audit log must be empty, or pass ``--truncate``).
Generates ROWS rows shaped like the rights checks' (API clients on ``api-rights``, portal
accounts on ``portal-rights``; covered, not covered, unknown cards, refusals; a million
beneficiaries across four OCAMs) and loads them with COPY, already sealed: worker processes
compute each row's leaf with the production functions (``leaf_data``, ``leaf_hash``), this
process folds them into a ``Frontier`` and signs a tree head every ``SEAL_BATCH_ROWS`` rows
(``tree_head_message``, the audit key of the master key given to the CLI) — exactly what
``audit_log.checkpoint`` stores, minus its UPDATE per row. The last batch goes in unsealed
and the real ``rempart audit checkpoint`` seals it, going on from the bulk tree.

Then it times ``rempart audit verify`` (wall, rows/s, CPU, peak RSS), edits one row's result,
checks that verify now fails naming that row, and puts the row back.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rempart.domain.merkle import Frontier, leaf_hash
from rempart.security.audit import leaf_data, tree_head_message
from rempart.security.keys import KeyRing
from rempart.services.audit_log import SEAL_BATCH_ROWS
from rempart.testing.postgres import Cluster

REMPART = str(Path(sys.executable).with_name("rempart"))
PG_SETTINGS = {"shared_buffers": "2GB", "max_wal_size": "16GB", "checkpoint_timeout": "30min"}
MASTER_KEY = bytes(range(100, 132))  # the bench's own; the CLI gets it as REMPART_MASTER_KEY
SEED = 20261202
BASE = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
SPACING_US = 300_000  # one check every 0.3 s on average: 10 M rows span five weeks
COLUMNS = (
    "id",
    "at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "structure_id",
    "ocam_id",
    "channel",
    "purpose",
    "subject_kind",
    "subject_id",
    "categories",
    "result",
    "detail",
    "leaf_index",
    "leaf_hash",
)
DOMAINS = ["PHAR"] * 12 + ["OPTI", "DENT", "AUDI", "LABO", "RADL", "AUXM", "MED", "HOSP"]
REASONS = ["domain_not_allowed", "channel_closed", "contained"]


# -- generating rows (worker processes) ----------------------------------------------------------


def _uuid(rnd: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rnd.getrandbits(128), version=4)


def _principals() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[uuid.UUID]]:
    """The same API clients, portal accounts and OCAMs in every worker (one seed)."""
    rnd = random.Random(SEED)
    ocams = [_uuid(rnd) for _ in range(4)]
    clients = [
        ("client", _uuid(rnd), f"cli_{rnd.getrandbits(96):024x}", _uuid(rnd)) for _ in range(300)
    ]
    accounts = [
        ("account", _uuid(rnd), f"ph-{rnd.randrange(10**6):06d}", _uuid(rnd)) for _ in range(200)
    ]
    return clients, accounts, ocams


PRINCIPALS = _principals()


def _beneficiary(n: int) -> uuid.UUID:
    return uuid.UUID(int=(n * 0x9E3779B97F4A7C15F39CC0605CEDC835 + SEED) % (1 << 128), version=4)


def _row(rnd: random.Random, index: int) -> dict[str, Any]:
    """One rights check as ``access`` audits it (``audit.row``), at a strictly later time."""
    clients, accounts, ocams = PRINCIPALS
    kind, actor_id, label, structure_id = rnd.choice(accounts if rnd.random() < 0.08 else clients)
    roll = rnd.random()
    result = (
        "covered"
        if roll < 0.78
        else "not_covered"
        if roll < 0.88
        else "unknown"
        if roll < 0.95
        else "refused"
    )
    row: dict[str, Any] = {
        "id": _uuid(rnd),
        "at": BASE + timedelta(microseconds=index * SPACING_US + rnd.randrange(SPACING_US)),
        "actor_kind": kind,
        "actor_id": actor_id,
        "actor_label": label,
        "structure_id": structure_id,
        "ocam_id": None,
        "channel": "api-rights" if kind == "client" else "portal-rights",
        "purpose": "rights_check",
        "subject_kind": None,
        "subject_id": None,
        "categories": "",
        "result": result,
        "leaf_index": index,
    }
    if result == "refused":
        row["detail"] = _detail("reason", rnd.choice(REASONS))
        return row
    domain, mismatch = rnd.choice(DOMAINS), False
    if result != "unknown" or rnd.random() < 0.3:  # unknown: mostly no such card
        n = rnd.randrange(1_000_000)
        row.update(subject_kind="beneficiary", subject_id=_beneficiary(n), ocam_id=ocams[n % 4])
        mismatch = result == "unknown"  # a card found, but not that person's
    if result != "unknown":
        row["categories"] = "coverage"
    row["detail"] = _detail("domain", domain, mismatch)
    return row


@functools.cache
def _detail(key: str, value: str, nir_mismatch: bool = False) -> str:
    """As ``audit.row`` writes it (sorted keys, default separators)."""
    detail: dict[str, Any] = {key: value, **({"nir_mismatch": True} if nir_mismatch else {})}
    return json.dumps(detail, sort_keys=True)


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    return str(value)  # our values hold no tab, newline or backslash


def generate(batch: int, first: int, count: int) -> tuple[bytes, bytes, float, float]:
    """COPY text for leaves [first, first + count), their leaf hashes, and the seconds spent
    making rows and hashing leaves."""
    t0 = time.process_time()
    rnd = random.Random(SEED * 1_000_003 + batch)
    rows = [_row(rnd, i) for i in range(first, first + count)]
    t1 = time.process_time()
    hashes = [leaf_hash(leaf_data(row)) for row in rows]  # what checkpoint computes
    t2 = time.process_time()
    lines = []
    for row, h in zip(rows, hashes, strict=True):
        row["leaf_hash"] = h
        lines.append("\t".join(_copy_text(row[c]) for c in COLUMNS))
    text = ("\n".join(lines) + "\n").encode()
    return text, b"".join(hashes), t1 - t0 + time.process_time() - t2, t2 - t1


# -- loading and sealing (this process) --------------------------------------------------------


def signed_head(keys: KeyRing, frontier: Frontier, signed_at: datetime) -> dict[str, Any]:
    root = frontier.root()
    signer = keys.audit_signing_key()
    return {
        "tree_size": frontier.size,
        "root_hash": root,
        "frontier": frontier.to_bytes(),
        "signed_at": signed_at,
        "public_key": signer.public_key().public_bytes_raw(),
        "signature": signer.sign(tree_head_message(frontier.size, root, signed_at)),
    }


def load(url: str, sealed: int, unsealed: int, workers: int) -> dict[str, float]:
    """Generate and COPY ``sealed`` bulk-sealed rows and their signed heads, then
    ``unsealed`` rows for the real checkpoint. Returns the figures."""
    keys, frontier, heads = KeyRing(MASTER_KEY), Frontier(), []
    make_s = hash_s = tree_s = 0.0
    batches = [(f, min(SEAL_BATCH_ROWS, sealed - f)) for f in range(0, sealed, SEAL_BATCH_ROWS)]
    batches += [(sealed, unsealed)] if unsealed else []
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")  # no copy of this process's connection
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool, psycopg.connect(url) as conn:
        window: deque[tuple[int, Future[tuple[bytes, bytes, float, float]]]] = deque()
        with conn.cursor().copy(f"COPY audit_event ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for n, (first, count) in enumerate(batches):
                window.append((first, pool.submit(generate, n, first, count)))
                while window and (len(window) > 2 * workers or n == len(batches) - 1):
                    start, future = window.popleft()  # in order, a few batches ahead at most
                    text, hashes, made, hashed = future.result()
                    make_s, hash_s = make_s + made, hash_s + hashed
                    if start == sealed:  # the last batch: leaf index and hash left to checkpoint
                        text = b"".join(
                            line.rsplit(b"\t", 2)[0] + b"\t\\N\t\\N\n" for line in text.splitlines()
                        )
                    copy.write(text)
                    if start == sealed:
                        continue
                    t = time.perf_counter()
                    for i in range(0, len(hashes), 32):
                        frontier.append(hashes[i : i + 32])
                    # the worker seals a couple of seconds after the batch's last row
                    signed_at = BASE + timedelta(
                        microseconds=frontier.size * SPACING_US + 2_000_000
                    )
                    heads.append(signed_head(keys, frontier, signed_at))
                    tree_s += time.perf_counter() - t
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO audit_checkpoint (tree_size, root_hash, frontier, signed_at, public_key, signature) "
                "VALUES (%(tree_size)s, %(root_hash)s, %(frontier)s, %(signed_at)s, %(public_key)s, %(signature)s)",
                heads,
            )
        conn.commit()
    loaded = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) audit_event")  # what autovacuum does to a table at rest
        conn.execute("CHECKPOINT")
        vacuum = time.perf_counter() - t
    return {
        "load_s": loaded,
        "make_cpu_s": make_s,
        "hash_cpu_s": hash_s,
        "tree_s": tree_s,
        "heads": len(heads),
        "vacuum_s": vacuum,
    }


# -- timing the CLI ----------------------------------------------------------------------------


def tree_rss_mib(root: int) -> float:
    """The resident memory of ``root`` and all its descendants, from /proc."""
    parents, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            statm = Path(f"/proc/{entry}/statm").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    tree, changed = {root}, True
    while changed:  # to a fixpoint: a child may be listed before its parent
        changed = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


def timed(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Wall, CPU, peak RSS of the largest process (wait4) and of the whole tree (sampled)."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], tree_rss_mib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        out.seek(0)
        return {
            "seconds": elapsed,
            "code": os.waitstatus_to_exitcode(status),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "rss_mib": usage.ru_maxrss / 1024,
            "tree_rss_mib": peak[0],
            "output": out.read(),
        }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument(
        "--database-url", help="an existing PostgreSQL database (else a throwaway cluster)"
    )
    ap.add_argument(
        "--truncate", action="store_true", help="empty the audit log of --database-url first"
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="generating processes")
    a = ap.parse_args()
    cluster = None if a.database_url else Cluster(durable=False, settings=PG_SETTINGS).start()
    tmp = Path(tempfile.mkdtemp(prefix="rempart-audit-bench-"))
    try:
        url = a.database_url or cluster.create_database("rempart")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(
            REMPART_DATA_DIR=str(tmp),
            REMPART_DATABASE_URL=url,
            REMPART_MASTER_KEY=base64.urlsafe_b64encode(MASTER_KEY).decode(),
            REMPART_LOG_LEVEL="warning",
        )
        subprocess.run([REMPART, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
        with psycopg.connect(url, autocommit=True) as conn:
            if a.truncate:
                conn.execute("TRUNCATE audit_event, audit_checkpoint")
            if conn.execute("SELECT EXISTS (SELECT 1 FROM audit_event)").fetchone()[0]:
                raise SystemExit("audit_event is not empty: pass --truncate to empty it")
        unsealed = min(SEAL_BATCH_ROWS, max(a.rows // 10, 1))
        print(
            f"# {a.rows:,} rows, nproc={os.cpu_count()}, PostgreSQL "
            f"{'throwaway, non-durable' if cluster else 'at --database-url'}",
            flush=True,
        )
        fig = load(url, a.rows - unsealed, unsealed, a.workers)
        print(
            f"generation + COPY of {a.rows:,} rows: {fig['load_s']:.1f} s wall "
            f"({a.rows / fig['load_s']:,.0f} rows/s; rows made in {fig['make_cpu_s']:.1f} s CPU "
            f"across {a.workers} workers); VACUUM ANALYZE + CHECKPOINT {fig['vacuum_s']:.1f} s",
            flush=True,
        )
        print(
            f"bulk sealing of {a.rows - unsealed:,} rows: leaf_data + leaf_hash {fig['hash_cpu_s']:.1f} s CPU "
            f"across workers, Frontier + {fig['heads']} signed heads {fig['tree_s']:.1f} s",
            flush=True,
        )
        seal = timed([REMPART, "audit", "checkpoint"], env)
        if seal["code"]:
            raise SystemExit(seal["output"])
        print(
            f"sealing by `rempart audit checkpoint` of the last {unsealed:,} rows: {seal['seconds']:.1f} s "
            f"({unsealed / seal['seconds']:,.0f} rows/s)",
            flush=True,
        )

        run = timed([REMPART, "audit", "verify"], env)
        print(run["output"].strip())
        if run["code"]:
            raise SystemExit("verify failed on an untouched log")
        print(
            f"verify: {run['seconds']:.1f} s wall, {a.rows / run['seconds']:,.0f} rows/s, "
            f"{run['cpu_s']:.1f} s CPU (verify and its workers), peak RSS {run['rss_mib']:.0f} MiB "
            f"(largest process), {run['tree_rss_mib']:.0f} MiB (whole process tree, sampled)",
            flush=True,
        )

        target = a.rows // 2
        with psycopg.connect(url, autocommit=True) as conn:
            event_id, result = conn.execute(
                "SELECT id, result FROM audit_event WHERE leaf_index = %s", (target,)
            ).fetchone()
            edited = "unknown" if result != "unknown" else "covered"
            conn.execute("UPDATE audit_event SET result = %s WHERE id = %s", (edited, event_id))
            try:
                bad = timed([REMPART, "audit", "verify"], env)
            finally:
                conn.execute("UPDATE audit_event SET result = %s WHERE id = %s", (result, event_id))
        named = f"événement {event_id} (feuille {target}) modifié" in bad["output"]
        print(
            f"tamper: result of leaf {target} {result} → {edited}: verify exit {bad['code']} "
            f"in {bad['seconds']:.1f} s, names the row: {'yes' if named else 'NO'}"
        )
        print("  " + "\n  ".join(bad["output"].strip().splitlines()))
        if bad["code"] != 1 or not named:
            raise SystemExit("verify did not report the edited row")
        print(
            f"rempart_audit_verify_rows={a.rows} seconds={run['seconds']:.1f} "
            f"rows_per_s={a.rows / run['seconds']:.0f} peak_rss_mib={run['rss_mib']:.0f} tamper_detected=1"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
