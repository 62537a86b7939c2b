"""Channels that can be switched off one by one in a crisis, without stopping the others.

A closed channel answers 503 with ``Retry-After`` and the French reason set by whoever closed
it; the status page lists every channel's state (DESIGN §5, §6).

    >>> Channel("api-rights").label
    'Vérification des droits par les logiciels (API)'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    PORTAL_SIGNIN = "portal-signin"
    PORTAL_RIGHTS = "portal-rights"
    API_RIGHTS = "api-rights"
    INTAKE = "intake"
    ADJUDICATION = "adjudication"
    PAYMENTS = "payments"

    @property
    def label(self) -> str:
        return CHANNEL_LABELS[self]


CHANNEL_LABELS = {
    Channel.PORTAL_SIGNIN: "Connexion au portail",
    Channel.PORTAL_RIGHTS: "Vérification des droits sur le portail",
    Channel.API_RIGHTS: "Vérification des droits par les logiciels (API)",
    Channel.INTAKE: "Réception des factures",
    Channel.ADJUDICATION: "Traitement des factures",
    Channel.PAYMENTS: "Paiements",
}


@dataclass(frozen=True, slots=True)
class ChannelState:
    channel: Channel
    open: bool
    reason: str | None = None
    changed_at: datetime | None = None
    expected_back_at: datetime | None = None

    def retry_after_seconds(self, now: datetime) -> int:
        """What to put in ``Retry-After``: until the expected return, else five minutes."""
        if self.expected_back_at is not None and self.expected_back_at > now:
            return max(1, int((self.expected_back_at - now).total_seconds()))
        return 300
