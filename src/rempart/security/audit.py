"""The audit log: one row per read of personal data, per refusal, per security-relevant change.

Rows are written in the same transaction as what they record (DESIGN §4.3): if the audit insert
fails, the transaction fails and nothing is returned. Rows hold ids, never identifying values:
``subject_id`` is a random UUID of the beneficiary (or structure, or account), ``categories``
says which kinds of data the answer exposed (``identity``, ``coverage``, ``bank`` …).
Checkpointing into a signed Merkle tree comes with the exfiltration issue (``leaf_index``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import audit_event
from rempart.security.principal import Principal


def row(
    *,
    at: datetime,
    actor: Principal,
    channel: str,
    purpose: str,
    result: str,
    subject_kind: str | None = None,
    subject_id: UUID | None = None,
    ocam_id: UUID | None = None,
    categories: Iterable[str] = (),
    detail: dict[str, Any] | None = None,
    event_id: UUID | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id or uuid.uuid4(),
        "at": at,
        "actor_kind": actor.kind.value,
        "actor_id": actor.id,
        "actor_label": actor.label,
        "structure_id": actor.structure_id,
        "ocam_id": ocam_id if ocam_id is not None else actor.ocam_id,
        "channel": channel,
        "purpose": purpose,
        "subject_kind": subject_kind,
        "subject_id": subject_id,
        "categories": ",".join(sorted(set(categories))),
        "result": result,
        "detail": json.dumps(detail, sort_keys=True) if detail else None,
    }


async def record(conn: AsyncConnection, **fields: Any) -> UUID:
    values = row(**fields)
    await conn.execute(audit_event.insert().values(**values))
    return values["id"]  # type: ignore[no-any-return]


# -- sealing: the bytes a leaf commits to ------------------------------------------------------

# The columns ``row`` fills, in the order the hot path's INSERT binds them.
ROW_FIELDS = (
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
)
LEAF_FIELDS = (*ROW_FIELDS, "leaf_index")


def leaf_data(row: Any) -> bytes:
    """Canonical JSON of an audit row, its leaf index included (so that moving a row to
    another position changes its leaf). Anyone can recompute it from the row's values."""
    values = {}
    for name in LEAF_FIELDS:
        v = getattr(row, name) if not isinstance(row, dict) else row[name]
        if isinstance(v, datetime):
            v = v.astimezone(UTC).isoformat(timespec="microseconds")
        elif isinstance(v, UUID):
            v = str(v)
        values[name] = v
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def tree_head_message(tree_size: int, root_hash: bytes, signed_at: datetime) -> bytes:
    """What the Ed25519 signature of a checkpoint covers."""
    at = signed_at.astimezone(UTC).isoformat(timespec="microseconds")
    return f"rempart-audit-tree-head:v1\n{tree_size}\n{root_hash.hex()}\n{at}".encode()
