"""Payment runs: what each professional is paid, or why not yet (DOMAIN.md §8).

A run groups the invoices decided and not yet reported per structure. A structure whose bank
details can receive money gets one transfer of its accepted AMC parts (a structure whose
invoices were all rejected gets its remittance advice alone, with no transfer); one whose bank
details are held gets nothing this run, with the reason, and its invoices wait for the next:

    no_bank_account      no active bank details
    iban_cooling_off     the bank details changed within the cooling-off period
    iban_shared          the same IBAN is registered by another structure (a fraud signal)
    iban_under_review    a transfer to it was returned by the bank (camt): to be checked

An advance paid earlier is netted first: the transfer is what was accepted minus what is left
of the advance, never below zero (what is left waits for the next run).

Identifiers are derived from the run's id, never drawn at export: the file written twice is the
same file (``msg_id``, ``pmt_inf_id``, ``end_to_end_id``, ``remittance_ref`` ≤ 35 characters).

    >>> from uuid import UUID
    >>> run = UUID("1234567890abcdef1234567890abcdef")
    >>> msg_id(run), end_to_end_id(run, 7), remittance_ref(run, 7)
    ('RMP-1234567890abcdef', 'RMP1234567890ab-000007', 'RSP1234567890ab-000007')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class Hold(StrEnum):
    NO_BANK_ACCOUNT = "no_bank_account"
    IBAN_COOLING_OFF = "iban_cooling_off"
    IBAN_SHARED = "iban_shared"
    IBAN_UNDER_REVIEW = "iban_under_review"

    @property
    def label(self) -> str:
        return HOLD_LABELS[self]


HOLD_LABELS = {
    Hold.NO_BANK_ACCOUNT: "Aucune coordonnée bancaire active",
    Hold.IBAN_COOLING_OFF: "Coordonnées bancaires modifiées récemment (délai de sécurité en cours)",
    Hold.IBAN_SHARED: "IBAN déclaré par plusieurs professionnels : vérification nécessaire",
    Hold.IBAN_UNDER_REVIEW: "Virement précédent retourné par la banque : coordonnées à vérifier",
}


def msg_id(run_id: UUID) -> str:
    return f"RMP-{run_id.hex[:16]}"


def pmt_inf_id(run_id: UUID) -> str:
    return f"RMP-{run_id.hex[:16]}-1"


def end_to_end_id(run_id: UUID, n: int) -> str:
    return f"RMP{run_id.hex[:12]}-{n:06d}"


def remittance_ref(run_id: UUID, n: int) -> str:
    return f"RSP{run_id.hex[:12]}-{n:06d}"


@dataclass(frozen=True, slots=True)
class BankFacts:
    account_id: UUID
    pays_from: datetime
    shared: bool  # the same IBAN (blind index) belongs to another structure too
    under_review: bool = False  # a transfer to it came back (camt return): to be checked


@dataclass(frozen=True, slots=True)
class Due:
    structure_id: UUID
    accepted_cents: int
    accepted: int  # invoices
    rejected: int
    bank: BankFacts | None
    advance_cents: int = 0  # advances paid and not yet netted


@dataclass(frozen=True, slots=True)
class Planned:
    structure_id: UUID
    amount_cents: int  # the transfer: accepted AMC parts minus the advance netted
    bank_account_id: UUID | None  # None: only rejected invoices to report (no transfer, ever)
    netted_cents: int = 0


@dataclass(frozen=True, slots=True)
class Held:
    structure_id: UUID
    reason: Hold
    amount_cents: int


def hold_reason(due: Due, now: datetime) -> Hold | None:
    if due.accepted_cents == 0:
        return None  # nothing to send: the remittance advice goes anyway
    if due.bank is None:
        return Hold.NO_BANK_ACCOUNT
    if due.bank.under_review:
        return Hold.IBAN_UNDER_REVIEW
    if due.bank.shared:
        return Hold.IBAN_SHARED
    if due.bank.pays_from > now:
        return Hold.IBAN_COOLING_OFF
    return None


def plan(dues: Sequence[Due], now: datetime) -> tuple[list[Planned], list[Held]]:
    """Transfers (and advices alone) in a stable order, and holds with their reason."""
    planned, held = [], []
    for due in sorted(dues, key=lambda d: str(d.structure_id)):
        reason = hold_reason(due, now)
        if reason is not None:
            held.append(Held(due.structure_id, reason, due.accepted_cents))
        else:
            netted = min(due.accepted_cents, max(due.advance_cents, 0))
            amount = due.accepted_cents - netted
            # the account whenever accepted invoices are paid, even wholly netted: it claims them
            account = due.bank.account_id if due.accepted_cents > 0 and due.bank else None
            planned.append(Planned(due.structure_id, amount, account, netted))
    return planned, held


ADVANCE_WINDOW_DAYS = 90


def advance_amount(paid_cents: int, days: int, rate_pct: int) -> int:
    """An advance sized on what the professional was paid over the last ``ADVANCE_WINDOW_DAYS``
    days: its average per day × the days without payment × a rate, rounded half-up.

    >>> advance_amount(900_000, 10, 80)   # €9,000 over 90 days, 10 days, 80 %
    80000
    """
    if paid_cents < 0 or days <= 0 or not 0 < rate_pct <= 100:
        raise ValueError("montant payé positif, jours > 0, taux entre 1 et 100 %")
    return (2 * paid_cents * days * rate_pct + ADVANCE_WINDOW_DAYS * 100) // (
        2 * ADVANCE_WINDOW_DAYS * 100
    )


def advance_ids(advance_id: UUID) -> tuple[str, str, str, str]:
    """``MsgId``, ``PmtInfId``, ``EndToEndId`` and reference of an advance's own file."""
    h = advance_id.hex
    return f"ACP-{h[:16]}", f"ACP-{h[:16]}-1", f"ACP{h[:12]}-000001", f"ACP{h[:12]}-R"
