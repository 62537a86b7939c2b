"""``rempart audit verify``: every signed tree head and every sealed audit row (DESIGN §4.6).

It checks each checkpoint's Ed25519 signature; recomputes each row's leaf from its values and
compares it with the stored leaf hash; checks the leaf indexes run 0, 1, 2… with no gap, no
duplicate and nothing outside the signed tree; and recomputes the root of every signed size
from the stored leaf hashes. Whatever does not hold is named (``docs/audit.md``).

It reads 10 million rows in under a minute on two cores (``bench/audit_verify.py``,
``docs/benchmarks.md``): the leaves are cut into aligned chunks — perfect subtrees, scanned
apart and in parallel, then joined with ``Frontier.extend`` — and each row's leaf is built from
its COPY text line with one format string, that line going to ``leaf_data`` itself whenever
the two could differ. E.g. with chunks of 4 leaves and a head at 6, the root of 6 is chunk 0's
root joined with the frontier that chunk 1 had after its first 2 leaves.
"""

from __future__ import annotations

import asyncio
import os
import re
from binascii import unhexlify
from bisect import bisect_right
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass, field
from hashlib import sha256
from multiprocessing import get_context
from typing import Any
from uuid import UUID

import asyncpg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import audit_checkpoint, audit_event
from rempart.domain.merkle import Frontier, leaf_hash
from rempart.security.audit import LEAF_FIELDS, leaf_data, tree_head_message
from rempart.services.runtime import Runtime

CHUNK_LEAVES = 1 << 18  # what verify scans per task: 262,144 leaves, about 100 MB of COPY text
_WORKERS_MAX = 8
_STREAM_ROWS = 20_000


@dataclass
class VerifyReport:
    rows: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    rechecked: int = 0  # rows the first pass could not vouch for, then checked by leaf_data

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(
    rt: Runtime, *, processes: int | None = None, chunk_leaves: int = CHUNK_LEAVES
) -> VerifyReport:
    """Check every signed head and every sealed row, and name what does not hold.

    The leaves are cut into aligned chunks of ``chunk_leaves`` (a power of two), so that each
    chunk is a perfect subtree: it is scanned apart — each row's leaf recomputed and compared
    with the stored hash, the stored hashes folded into the chunk's own ``Frontier`` — and the
    chunks are joined in leaf order (``Frontier.extend``) to give each signed head's root.
    On PostgreSQL the rows come by COPY; in a transaction of our own, ``processes`` workers
    (one per core by default) scan the chunks on the same snapshot. Memory stays flat: one
    chunk per worker, whatever the size of the log.
    """
    if chunk_leaves < 1 or chunk_leaves & (chunk_leaves - 1):
        raise ValueError("chunk_leaves must be a power of two")
    key = rt.keys.audit_signing_key().public_key()
    async with rt.db.read() as conn:
        # Workers see committed rows only, never those of an enclosing transaction (tests).
        own = rt.db.dialect == "postgresql" and not conn.in_nested_transaction()
        if own:  # one snapshot for the heads, the rows and the workers
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        heads = (
            await conn.execute(select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size))
        ).all()
        index = audit_event.c.leaf_index
        low, high = (await conn.execute(select(func.min(index), func.max(index)))).one()
        plan = _Plan.of([h.tree_size for h in heads], low, high, chunk_leaves)
        workers = processes or min(os.cpu_count() or 1, _WORKERS_MAX)
        tally = _Tally()
        scans = _scans(rt, conn, plan.ranges, workers if own and len(plan.ranges) > 2 else 1)
        async with aclosing(scans):
            async for scan in scans:
                tally.add(scan, await _recheck(conn, scan.suspects))
    return tally.report(heads, plan, key)


# -- verify: scanning chunks of leaves -----------------------------------------------------------

_RECHECK_ROWS = 500  # ids per query (SQLite's oldest builds bind at most 999 values)
_ZERO_LEAF = b"\0" * 32  # stands for a missing leaf, so that the next ones keep their place
_NULL = b"\\N"

# The fast path builds leaf_data from a COPY text line with one format string: the columns
# come in the sorted order of leaf_data's keys, timestamps as isoformat gives them, UUIDs as
# str gives them. COPY text escapes \ \b \f \n \r \t as JSON does, so a value needs only its
# quotes escaped — unless it holds \v or another control character (JSON writes \u00XX):
# those lines, and any line whose leaf differs, go to leaf_data itself (``_recheck``).
# to_char's YYYY drops the era: a time moved to 2026 BC would print as 2026 AD, so times a
# Python datetime cannot hold (BC, infinity) come as NULL, which no stored leaf matches.
_KEYS = sorted(LEAF_FIELDS)
_PYTHON_TIME = "at BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00'"
_COLUMNS = {
    "at": f"""CASE WHEN {_PYTHON_TIME} THEN
        to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') END"""
}
_SELECT = ", ".join([*(_COLUMNS.get(k, k) for k in _KEYS), "encode(leaf_hash, 'hex')"])
_TEMPLATE = (
    "\0{"  # the leaf hash prefix, then the canonical JSON
    + ",".join(f'"{k}":%s' if k == "leaf_index" else f'"{k}":"%s"' for k in _KEYS)
    + "}%.0s"  # the stored hash, last on the line, is not part of the leaf
).encode()
_INDEX, _ID, _HASH = _KEYS.index("leaf_index"), _KEYS.index("id"), len(_KEYS)
_SAFE_BYTES = bytes([9, 10, *range(0x20, 0x100)])  # tab and newline separate fields and lines


def _unsafe(text: bytes) -> bool:
    """Whether COPY text holds a character it and JSON write differently (\\v, raw controls)."""
    return b"\\v" in text or bool(text.translate(None, _SAFE_BYTES))


@dataclass(frozen=True, slots=True)
class _Range:
    """Leaves ``[start, end)``, one aligned chunk of the tree; or, ``end`` None, the rows
    outside every signed head: from ``start`` (the largest signed size) on, and below 0."""

    start: int
    end: int | None
    heads: tuple[int, ...] = ()  # the signed tree sizes in (start, end]

    def where(self) -> str:
        if self.end is None:
            return f"leaf_index < 0 OR leaf_index >= {self.start:d}"
        return f"leaf_index >= {self.start:d} AND leaf_index < {self.end:d}"

    def clause(self) -> ColumnElement[bool]:
        index = audit_event.c.leaf_index
        if self.end is None:
            return or_(index < 0, index >= self.start)
        return and_(index >= self.start, index < self.end)


@dataclass(frozen=True, slots=True)
class _Plan:
    signed: int  # the largest signed tree size
    present: int  # one past the largest leaf index present
    lowest: int  # the smallest leaf index present, if below 0
    ranges: list[_Range]

    @classmethod
    def of(cls, sizes: list[int], low: int | None, high: int | None, chunk: int) -> _Plan:
        signed = sizes[-1] if sizes else 0
        present = max(high + 1, 0) if high is not None else 0
        lowest = min(low, 0) if low is not None else 0
        tree = min(present, signed)  # no head covers the leaves after: no need to fold them
        ranges = []
        for start in range(0, tree, chunk):
            end = min(start + chunk, tree)
            heads = sizes[bisect_right(sizes, start) : bisect_right(sizes, end)]
            ranges.append(_Range(start, end, tuple(heads)))
        if present > signed or lowest < 0:
            ranges.append(_Range(signed, None))
        return cls(signed, present, lowest, ranges)


@dataclass
class _Scan:
    """One range's rows in leaf order: gaps filled with zero leaves, the stored hashes folded
    into ``frontier``, a copy of it at each signed size, and the rows to look at again."""

    range: _Range
    next: int  # the leaf index expected next
    rows: int = 0
    frontier: Frontier = field(default_factory=Frontier)
    at_heads: list[tuple[int, Frontier]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    suspects: list[bytes] = field(default_factory=list)  # ids: the leaf may not match
    duplicates: list[tuple[int, bytes]] = field(default_factory=list)  # a taken index
    carry: bytes = b""  # the start of a COPY line cut at the end of a block
    due: int = 0  # which of range.heads comes next

    @classmethod
    def of(cls, rng: _Range) -> _Scan:
        return cls(rng, rng.start)

    def add(self, index: int, event_id: bytes, stored: bytes | None, ok: bool) -> None:
        self.rows += 1
        if 0 <= index < self.next:  # rows come in leaf order: only without the unique index
            self.duplicates.append((index, event_id))
            return
        if not ok:
            self.suspects.append(event_id)
        if index < 0:  # the plan reports them; never in a chunk of the tree
            return
        if index > self.next:
            self.gaps.append((self.next, index - 1))
            self._fill(index)
        self._push(stored if stored is not None else b"")

    def feed(self, data: bytes) -> None:
        """Scan one block of COPY text (lines of ``_SELECT``, the last one maybe cut)."""
        data = self.carry + data
        cut = data.rfind(b"\n") + 1
        self.carry, block = data[cut:], data[:cut]
        rows = [line.split(b"\t") for line in block.replace(b'"', b'\\"').split(b"\n")[:-1]]
        stored = [None if f[_HASH] == _NULL else unhexlify(f[_HASH]) for f in rows]
        ok = [
            sha256((_TEMPLATE % tuple(f)).replace(b'"\\N"', b"null")).digest() == h
            for f, h in zip(rows, stored, strict=True)
        ]
        if _unsafe(block):  # per line: which ones JSON would escape otherwise
            lines = block.split(b"\n")[:-1]
            ok = [good and not _unsafe(line) for good, line in zip(ok, lines, strict=True)]
        indexes = [int(f[_INDEX]) for f in rows]
        heads, n = self.range.heads, len(rows)
        if (
            self.range.end is not None  # a chunk of the tree, ...
            and indexes == list(range(self.next, self.next + n))  # ... no gap, ...
            and not (self.due < len(heads) and heads[self.due] <= self.next + n)  # ... no head
            and None not in stored
        ):  # the usual block, at one Python call per row
            self.rows += n
            self.next += n
            self.suspects += [f[_ID] for f, good in zip(rows, ok, strict=True) if not good]
            append = self.frontier.append
            for h in stored:
                append(h)  # type: ignore[arg-type]  # None is not in stored
            return
        for f, index, h, good in zip(rows, indexes, stored, ok, strict=True):
            self.add(index, f[_ID], h, good)

    def finish(self) -> _Scan:
        if self.range.end is not None and self.next < self.range.end:
            self.gaps.append((self.next, self.range.end - 1))
            self._fill(self.range.end)
        return self

    def _fill(self, index: int) -> None:
        if self.range.end is None:
            self.next = index
        while self.next < index:
            self._push(_ZERO_LEAF)

    def _push(self, leaf: bytes) -> None:
        if self.range.end is not None:
            self.frontier.append(leaf)
        self.next += 1
        heads = self.range.heads
        if self.due < len(heads) and heads[self.due] == self.next:
            self.at_heads.append((self.next, Frontier(self.frontier.size, [*self.frontier.nodes])))
            self.due += 1


async def _scans(
    rt: Runtime, conn: AsyncConnection, ranges: list[_Range], workers: int
) -> AsyncGenerator[_Scan, None]:
    """The scans of ``ranges``, in order: by COPY on PostgreSQL — in ``workers`` processes
    importing this transaction's snapshot when more than one — else row by row."""
    if rt.db.dialect != "postgresql":
        for rng in ranges:
            yield await _row_scan(conn, rng)
    elif workers <= 1:
        raw = await conn.get_raw_connection()
        for rng in ranges:
            yield await _copy_scan(raw.driver_connection, rng)
    else:
        snapshot = (await conn.execute(text("SELECT pg_export_snapshot()"))).scalar_one()
        if not re.fullmatch(r"[0-9A-F-]+", snapshot):
            raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
        dsn = rt.db.engine.url.set(drivername="postgresql")  # asyncpg's own, not SQLAlchemy's
        pool = ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),  # nothing of this process's loop or sockets
            initializer=_worker_start,
            initargs=(dsn.render_as_string(hide_password=False), snapshot),
        )
        loop = asyncio.get_running_loop()
        try:
            futures = [loop.run_in_executor(pool, _worker_scan, rng) for rng in ranges]
            for future in futures:
                yield await future
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


async def _row_scan(conn: AsyncConnection, rng: _Range) -> _Scan:
    scan = _Scan.of(rng)
    result = await conn.stream(
        select(audit_event)
        .where(rng.clause())
        .order_by(audit_event.c.leaf_index)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    async for row in result:
        ok = leaf_hash(leaf_data(row)) == row.leaf_hash
        scan.add(row.leaf_index, str(row.id).encode(), row.leaf_hash, ok)
    return scan.finish()


async def _copy_scan(apg: Any, rng: _Range) -> _Scan:
    scan = _Scan.of(rng)

    async def sink(data: bytes) -> None:
        scan.feed(data)

    query = f"SELECT {_SELECT} FROM audit_event WHERE {rng.where()} ORDER BY leaf_index"  # noqa: S608 — constant columns, integer bounds
    await apg.copy_from_query(query, output=sink)
    return scan.finish()


_worker: tuple[asyncio.AbstractEventLoop, Any] | None = None  # a worker's loop and connection


def _worker_start(dsn: str, snapshot: str) -> None:
    global _worker
    loop = asyncio.new_event_loop()
    settings = {"application_name": "rempart-audit-verify"}
    apg = loop.run_until_complete(asyncpg.connect(dsn, server_settings=settings))
    loop.run_until_complete(apg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    loop.run_until_complete(apg.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
    _worker = (loop, apg)


def _worker_scan(rng: _Range) -> _Scan:
    assert _worker is not None, "_worker_start runs first in each worker"
    loop, apg = _worker
    return loop.run_until_complete(_copy_scan(apg, rng))


async def _recheck(conn: AsyncConnection, suspects: list[bytes]) -> list[_Event]:
    """The suspects whose values, through leaf_data itself, do not give their stored hash;
    on PostgreSQL, also those whose time no Python datetime holds (none of ours: edited)."""
    found = []
    postgresql = conn.dialect.name == "postgresql"
    for i in range(0, len(suspects), _RECHECK_ROWS):
        ids = [UUID(e.decode()) for e in suspects[i : i + _RECHECK_ROWS]]
        query = select(audit_event).where(audit_event.c.id.in_(ids))
        if postgresql:
            odd = select(audit_event.c.id, audit_event.c.leaf_index).where(
                audit_event.c.id.in_(ids), text(f"NOT ({_PYTHON_TIME})")
            )
            found += [(r.leaf_index, 1, _modified(r)) for r in await conn.execute(odd)]
            query = query.where(text(_PYTHON_TIME))
        found += [
            (row.leaf_index, 1, _modified(row))
            for row in await conn.execute(query)
            if leaf_hash(leaf_data(row)) != row.leaf_hash
        ]
    return found


def _modified(row: Any) -> str:
    return f"événement {row.id} (feuille {row.leaf_index}) modifié"


# (leaf position, rank there, message): sorted, the order a scan in leaf order finds them
_Event = tuple[int, int, str]


class _Tally:
    """The scans joined in leaf order: each signed head's root, and the problems found."""

    def __init__(self) -> None:
        self.tree = Frontier()  # the leaves of the chunks joined so far
        self.roots: dict[int, bytes] = {}
        self.events: list[_Event] = []
        self.gap: tuple[int, int] | None = None  # the last gap, maybe going on in the next
        self.rows = 0
        self.rechecked = 0

    def add(self, scan: _Scan, modified: list[_Event]) -> None:
        self.rows += scan.rows
        self.rechecked += len(scan.suspects)
        self.events += modified
        self.events += [
            (i, 1, f"événement {e.decode()} (feuille {i}) modifié") for i, e in scan.duplicates
        ]
        for start, end in scan.gaps:
            if self.gap is not None and self.gap[1] + 1 == start:
                self.gap = (self.gap[0], end)
            else:
                self._close_gap()
                self.gap = (start, end)
        for size, inner in scan.at_heads:
            probe = Frontier(self.tree.size, [*self.tree.nodes])
            probe.extend(inner)
            self.roots[size] = probe.root()
        if scan.range.end is not None:
            self.tree.extend(scan.frontier)

    def _close_gap(self) -> None:
        if self.gap is not None:
            a, b = self.gap
            self.events.append((a, 0, f"feuilles {a} à {b} manquantes (lignes supprimées)"))
            self.gap = None

    def report(self, heads: Sequence[Any], plan: _Plan, key: Ed25519PublicKey) -> VerifyReport:
        report = VerifyReport(rows=self.rows, checkpoints=len(heads), rechecked=self.rechecked)
        for head in heads:
            try:
                key.verify(
                    head.signature,
                    tree_head_message(head.tree_size, head.root_hash, head.signed_at),
                )
            except InvalidSignature:
                report.problems.append(f"point de contrôle {head.tree_size} : signature invalide")
        self._close_gap()
        for head in heads:
            if head.tree_size <= plan.present and self.roots[head.tree_size] != head.root_hash:
                self.events.append(
                    (
                        head.tree_size - 1,
                        2,
                        f"point de contrôle {head.tree_size} : racine différente "
                        "(une ligne scellée a été modifiée, retirée ou déplacée)",
                    )
                )
        report.problems += [message for _, _, message in sorted(self.events)]
        outside = (
            "hors de tout point de contrôle signé (lignes ajoutées ou point de contrôle supprimé)"
        )
        if plan.present > plan.signed:  # sealed rows no signed head covers: forged, or a lost head
            report.problems.append(f"feuilles {plan.signed} à {plan.present - 1} {outside}")
        if plan.lowest < 0:
            report.problems.append(f"feuilles {plan.lowest} à -1 {outside}")
        report.problems += [
            f"point de contrôle {head.tree_size} : seules {plan.present} feuilles subsistent "
            "(des lignes scellées ont été supprimées)"
            for head in heads
            if head.tree_size > plan.present
        ]
        return report
