"""Distinct-beneficiary ceilings per principal and per day (DESIGN §4.4, ``docs/security.md``).

Each principal (an API client, a portal account) may touch a limited number of *distinct*
people a day — every rights check counts, ``unknown`` answers included. Past the soft ceiling
an alert opens and answers slow down (API) or need a fresh passkey (portal); past the hard
ceiling, or on any canary, the principal is contained.

    >>> verdict(new_count=301, ceiling=Ceiling(300, 600))
    <Verdict.SOFT_CROSSED: 'soft_crossed'>
    >>> verdict(new_count=601, ceiling=Ceiling(300, 600))
    <Verdict.CONTAIN: 'contain'>
    >>> ceiling_for(Profession.PHARMACY, hard=50)  # a lower hard ceiling is never raised
    Ceiling(soft=50, hard=50)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rempart.domain.care import Profession


@dataclass(frozen=True, slots=True)
class Ceiling:
    soft: int
    hard: int

    def __post_init__(self) -> None:
        if not 0 < self.soft <= self.hard:
            raise ValueError("plafonds invalides : 0 < souple ≤ dur attendu")


# Defaults, per profession and per principal: what one counter or one practice software sees
# in a busy day, with room (DESIGN §5 fixes pharmacy at 300 / 600).
DEFAULT_CEILINGS: dict[Profession, Ceiling] = {
    Profession.PHARMACY: Ceiling(300, 600),
    Profession.OPTICIAN: Ceiling(60, 120),
    Profession.DENTIST: Ceiling(60, 120),
    Profession.AUDIOLOGIST: Ceiling(40, 80),
    Profession.LABORATORY: Ceiling(400, 800),
    Profession.HOSPITAL: Ceiling(1500, 3000),
    Profession.PHYSICIAN: Ceiling(80, 160),
}
STRUCTURE_FACTOR = 3  # a structure's total alerts past 3× its profession's hard ceiling


class Verdict(StrEnum):
    WITHIN = "within"
    SOFT_CROSSED = "soft_crossed"  # this request crossed the soft ceiling: alert once
    SLOW = "slow"  # past the soft ceiling
    CONTAIN = "contain"  # past the hard ceiling


def verdict(*, new_count: int | None, ceiling: Ceiling, already_past_soft: bool = False) -> Verdict:
    """``new_count``: the distinct count after this request, None if this person was already
    touched today (no new subject)."""
    if new_count is None:
        return Verdict.SLOW if already_past_soft else Verdict.WITHIN
    if new_count > ceiling.hard:
        return Verdict.CONTAIN
    if new_count == ceiling.soft + 1:
        return Verdict.SOFT_CROSSED
    if new_count > ceiling.soft:
        return Verdict.SLOW
    return Verdict.WITHIN


def ceiling_for(
    profession: Profession,
    *,
    overrides: dict[str, tuple[int, int]] | None = None,
    soft: int | None = None,
    hard: int | None = None,
) -> Ceiling:
    """The profession's default (or the installation's override), then the principal's own."""
    base = DEFAULT_CEILINGS[profession]
    if overrides and profession.value in overrides:
        base = Ceiling(*overrides[profession.value])
    hard_ = hard or base.hard
    return Ceiling(min(soft or base.soft, hard_), hard_)  # a lower hard ceiling always wins
