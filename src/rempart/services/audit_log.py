"""Use cases on the tamper-evident audit log (DESIGN §4.6): seal, verify, prove.

``checkpoint`` gives the unsealed rows consecutive leaf indexes (in ``at, id`` order), stores
each row's leaf hash, appends them to the RFC 9162 tree (``domain.merkle.Frontier``) and signs
the new tree head with the Ed25519 audit key. ``verify`` (``services.audit_verify``) recomputes
every leaf from the row's values, checks indexes are consecutive (a deleted row leaves a gap),
every checkpoint's root and signature, and names what does not hold. ``prove`` gives the
inclusion proof of one row that anyone can check with the public key alone (``docs/audit.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import bindparam, select, text, update

from rempart.db.tables import audit_checkpoint, audit_event
from rempart.domain.errors import NotFound
from rempart.domain.merkle import Frontier, leaf_hash, path_ranges
from rempart.security.audit import leaf_data, tree_head_message
from rempart.services.audit_verify import VerifyReport, verify
from rempart.services.runtime import Runtime

__all__ = [
    "SEAL_BATCH_ROWS",
    "Checkpoint",
    "Proof",
    "VerifyReport",
    "checkpoint",
    "checkpoint_all",
    "prove",
    "public_key",
    "verify",
]

SEAL_BATCH_ROWS = 50_000
_STREAM_ROWS = 20_000


def public_key(rt: Runtime) -> bytes:
    return rt.keys.audit_signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    root_hash: bytes
    sealed_rows: int


async def checkpoint(rt: Runtime, *, rows_max: int = SEAL_BATCH_ROWS) -> Checkpoint | None:
    """Seal up to ``rows_max`` pending rows under one signed tree head; None if none pending."""
    signer = rt.keys.audit_signing_key()
    async with rt.db.transaction() as conn:
        if rt.db.dialect == "postgresql":  # one checkpointer at a time, on every worker
            await conn.execute(text("SELECT pg_advisory_xact_lock(727011)"))
        last = (
            await conn.execute(
                select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size.desc()).limit(1)
            )
        ).first()
        frontier = Frontier.from_bytes(last.tree_size, last.frontier) if last else Frontier()
        pending = (
            await conn.execute(
                select(audit_event)
                .where(audit_event.c.leaf_index.is_(None))
                .order_by(audit_event.c.at, audit_event.c.id)
                .limit(rows_max)
            )
        ).all()
        if not pending:
            return None
        updates = []
        for row in pending:
            values = {**row._asdict(), "leaf_index": frontier.size}
            h = leaf_hash(leaf_data(values))
            updates.append({"e_id": row.id, "leaf_index": frontier.size, "leaf_hash": h})
            frontier.append(h)
        await conn.execute(
            update(audit_event).where(audit_event.c.id == bindparam("e_id")), updates
        )
        root, now = frontier.root(), rt.now()
        await conn.execute(
            audit_checkpoint.insert().values(
                tree_size=frontier.size,
                root_hash=root,
                frontier=frontier.to_bytes(),
                signed_at=now,
                public_key=public_key(rt),
                signature=signer.sign(tree_head_message(frontier.size, root, now)),
            )
        )
    return Checkpoint(frontier.size, root, len(pending))


async def checkpoint_all(rt: Runtime) -> list[Checkpoint]:
    done = []
    while (cp := await checkpoint(rt)) is not None:
        done.append(cp)
    return done


@dataclass(frozen=True, slots=True)
class Proof:
    event_id: UUID
    leaf_index: int
    leaf_data: str
    tree_size: int
    root_hash: str
    signed_at: str
    signature: str
    public_key: str
    audit_path: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "leaf_index": self.leaf_index,
            "leaf_data": self.leaf_data,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "signed_at": self.signed_at,
            "signature": self.signature,
            "public_key": self.public_key,
            "audit_path": self.audit_path,
        }


async def prove(rt: Runtime, event_id: UUID) -> Proof:
    """The inclusion proof of one sealed row in the latest signed tree (one pass over the
    stored leaf hashes, O(log n) memory). Sealed rows never change: a replica may answer."""
    async with rt.db.read(replica_ok=True) as conn:
        row = (await conn.execute(select(audit_event).where(audit_event.c.id == event_id))).first()
        if row is None or row.leaf_index is None:
            raise NotFound("Événement inconnu ou pas encore scellé (rempart audit checkpoint).")
        head = (
            await conn.execute(
                select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size.desc()).limit(1)
            )
        ).one()
        ranges = path_ranges(row.leaf_index, head.tree_size)
        frontiers = [Frontier() for _ in ranges]
        order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
        pos = 0
        result = await conn.stream(
            select(audit_event.c.leaf_index, audit_event.c.leaf_hash)
            .where(audit_event.c.leaf_index < head.tree_size)
            .order_by(audit_event.c.leaf_index)
            .execution_options(yield_per=_STREAM_ROWS)
        )
        async for index, h in result:
            while pos < len(order) and ranges[order[pos]][1] <= index:
                pos += 1
            if pos < len(order) and ranges[order[pos]][0] <= index:
                frontiers[order[pos]].append(h)
    return Proof(
        event_id=row.id,
        leaf_index=row.leaf_index,
        leaf_data=leaf_data(row).decode(),
        tree_size=head.tree_size,
        root_hash=head.root_hash.hex(),
        signed_at=head.signed_at.isoformat(timespec="microseconds"),
        signature=head.signature.hex(),
        public_key=head.public_key.hex(),
        audit_path=[f.root().hex() for f in frontiers],
    )
