"""Double-entry ledger in integer cents (DOMAIN.md §8).

Each posting moves an amount from one account to another: ``debit`` gains it, ``credit``
gives it, the amount is positive and the two accounts differ — so every posting, and every set
of them, sums to zero by construction (the database holds the same rule as a CHECK). Postings
are never edited or deleted; a reversal is a new posting the other way.

Accounts, named by kind and owner:

    ocam:<id>       what the insurer owes us for its members' accepted invoices (an asset)
    ps:<id>         what we owe the professional (a liability: negative when owed)
    bank            the operator's account at the bank: transfers out
    advance:<id>    advances paid to a professional, netted by later runs

    >>> from uuid import UUID
    >>> o, s = UUID(int=1), UUID(int=2)
    >>> p = invoice_accepted(o, s, 350)
    >>> balances([p])[ps(s)], balances([p])[ocam(o)]
    (-350, 350)
    >>> sum(balances([p, *reverse([p])]).values())
    0
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

BANK = "bank"


def ocam(ocam_id: UUID) -> str:
    return f"ocam:{ocam_id}"


def ps(structure_id: UUID) -> str:
    return f"ps:{structure_id}"


def advance(structure_id: UUID) -> str:
    return f"advance:{structure_id}"


@dataclass(frozen=True, slots=True)
class Posting:
    debit: str
    credit: str
    cents: int
    event: str  # invoice_accepted | invoice_cancelled | payment | advance | …

    def __post_init__(self) -> None:
        if self.cents <= 0:
            raise ValueError("a posting moves a positive amount")
        if self.debit == self.credit:
            raise ValueError("a posting moves money between two accounts")


def invoice_accepted(ocam_id: UUID, structure_id: UUID, cents: int) -> Posting:
    """The insurer now owes the AMC part; we owe it to the professional."""
    return Posting(ocam(ocam_id), ps(structure_id), cents, "invoice_accepted")


def payment_sent(structure_id: UUID, cents: int) -> Posting:
    """A transfer to the professional leaves the bank account."""
    return Posting(ps(structure_id), BANK, cents, "payment")


def advance_paid(structure_id: UUID, cents: int) -> Posting:
    """An advance leaves the bank: the professional owes it back until runs net it."""
    return Posting(advance(structure_id), BANK, cents, "advance")


def advance_netted(structure_id: UUID, cents: int) -> Posting:
    """A run keeps part of what the professional is owed to absorb its advance."""
    return Posting(ps(structure_id), advance(structure_id), cents, "advance_netted")


def reverse(postings: Sequence[Posting], event: str = "reversal") -> list[Posting]:
    return [Posting(p.credit, p.debit, p.cents, event) for p in postings]


def balances(postings: Iterable[Posting]) -> dict[str, int]:
    """Debits minus credits per account."""
    out: dict[str, int] = {}
    for p in postings:
        out[p.debit] = out.get(p.debit, 0) + p.cents
        out[p.credit] = out.get(p.credit, 0) - p.cents
    return out


def credit_note(ocam_id: UUID, structure_id: UUID, cents: int) -> Posting:
    """A paid invoice reversed: the insurer no longer owes its AMC part, and the professional
    owes it back — on its ``advance:`` account, which the next runs net like an advance."""
    return Posting(advance(structure_id), ocam(ocam_id), cents, "credit_note")
