"""Who is acting: an API client, a signed-in account, or the system (CLI, worker)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from rempart.domain.care import Profession
from rempart.domain.roles import Permission, Role, may


class ActorKind(StrEnum):
    CLIENT = "client"
    ACCOUNT = "account"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: ActorKind
    id: UUID | None
    label: str  # client_id, username, or "cli:<os user>"; never a person's name
    role: Role | None
    structure_id: UUID | None = None
    profession: Profession | None = None
    ocam_id: UUID | None = None
    # the principal's own distinct-subject ceilings (client, else structure), None: defaults
    quota_soft: int | None = None
    quota_hard: int | None = None

    def may(self, permission: Permission) -> bool:
        # The system actor (a shell on the server) is trusted by construction: it already
        # holds the keys. Everything it does is audited under its label.
        if self.kind is ActorKind.SYSTEM:
            return True
        return self.role is not None and may(self.role, permission)


def system(label: str) -> Principal:
    return Principal(ActorKind.SYSTEM, None, label, None)
