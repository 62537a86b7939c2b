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
from datetime import datetime
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
