"""What the account's existing channel is told, in French (DESIGN §4.1, §4.7): a new passkey,
a sign-in from a new device, a bank-details change, an approved recovery.

Each function queues one mail per recipient in the caller's transaction (``outbox.queue``), so
the notice exists exactly when the change was committed. Bodies name the event, the time
(Paris), the browser and what to do if it was not you; never a secret, a full IBAN, a link
that signs in, or anything about a beneficiary.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import account
from rempart.domain.roles import Role
from rempart.services import outbox
from rempart.services.runtime import PARIS

_FOOTER = (
    "\n\nSi vous n'êtes pas à l'origine de cette opération, contactez sans attendre le support "
    "de votre opérateur de tiers payant : il peut suspendre l'accès et bloquer les paiements."
    "\n\nCe message est envoyé automatiquement ; n'y répondez pas et ne communiquez jamais "
    "vos codes ou clés d'accès, à personne."
)


def _when(now: datetime) -> str:
    return now.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


async def new_passkey(
    conn: AsyncConnection, *, account_id: UUID, name: str, device: str, now: datetime
) -> None:
    await outbox.queue(
        conn,
        account_id=account_id,
        kind="passkey.new",
        subject="Nouvelle clé d'accès ajoutée à votre compte",
        body=(
            f"Une nouvelle clé d'accès « {name} » a été ajoutée à votre compte le {_when(now)}"
            f" depuis le navigateur {device}.\n\nVous pouvez la retirer à tout moment depuis la "
            "page Sécurité de votre espace professionnel." + _FOOTER
        ),
        now=now,
    )


async def new_device(
    conn: AsyncConnection, *, account_id: UUID, device: str, method: str, now: datetime
) -> None:
    await outbox.queue(
        conn,
        account_id=account_id,
        kind="device.new",
        subject="Connexion depuis un nouvel appareil",
        body=(
            f"Une connexion à votre compte a eu lieu le {_when(now)} depuis un appareil ou un "
            f"navigateur que nous ne connaissions pas ({device}), {method}.\n\nC'était vous ? "
            "Vous n'avez rien à faire. Sinon, déconnectez les autres sessions depuis la page "
            "Sécurité de votre espace professionnel." + _FOOTER
        ),
        now=now,
    )


async def structure_titulaires(conn: AsyncConnection, structure_id: UUID) -> list[UUID]:
    """The accounts that hold a structure's bank details: its enabled titulaires."""
    rows = await conn.execute(
        select(account.c.id).where(
            account.c.structure_id == structure_id,
            account.c.role == Role.TITULAIRE.value,
            account.c.disabled_at.is_(None),
        )
    )
    return list(rows.scalars())


async def bank_details_changed(
    conn: AsyncConnection,
    *,
    recipients: Iterable[UUID],
    structure_name: str,
    by: str,
    last4: str,
    pays_from: datetime,
    now: datetime,
) -> None:
    for account_id in recipients:
        await outbox.queue(
            conn,
            account_id=account_id,
            kind="bank_details.changed",
            subject="Modification des coordonnées bancaires de votre structure",
            body=(
                f"Les coordonnées bancaires de {structure_name} ont été modifiées le "
                f"{_when(now)} par le compte {by}.\n\nNouveau compte : IBAN se terminant par "
                f"{last4}. Par sécurité, aucun virement ne lui sera adressé avant le "
                f"{pays_from.astimezone(PARIS).strftime('%d/%m/%Y')} : ce délai vous laisse le "
                "temps de réagir si vous ne reconnaissez pas ce changement." + _FOOTER
            ),
            now=now,
        )


async def recovery_approved(conn: AsyncConnection, *, account_id: UUID, now: datetime) -> None:
    await outbox.queue(
        conn,
        account_id=account_id,
        kind="recovery.approved",
        subject="Récupération de votre compte",
        body=(
            f"À votre demande, votre opérateur a lancé le {_when(now)} la récupération de votre "
            "compte, validée par une seconde personne. Vos clés d'accès ont été retirées et "
            "toutes vos sessions fermées. Un nouveau lien d'inscription vous est remis par "
            "l'opérateur, par un autre moyen que ce message." + _FOOTER
        ),
        now=now,
    )
