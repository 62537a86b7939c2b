"""What every idempotent intake shares: the canonical body it compares, the 409 it answers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from rempart.domain.errors import Conflict


class KeyReused(Conflict):
    code = "idempotency_conflict"
    title = "Déjà reçu avec un autre contenu"

    def __init__(self) -> None:
        super().__init__(
            "Cette clé d'idempotence ou ce numéro a déjà servi pour un contenu différent. "
            "Envoyez la nouvelle demande sous une autre clé ou un autre numéro."
        )


def canonical(doc: Mapping[str, Any]) -> bytes:
    """The body as compared and stored: sorted keys, no spacing (key order never matters)."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def body_hash(doc: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonical(doc)).digest()
