"""Pure incident rules: batched inclusion proofs equal the one-at-a-time RFC 9162 paths for any
tree and any set of targets, fed in any partition; categories merge; a structure the incident
did not touch gets no notice, and each notice says only what happened to that structure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rempart.domain.incidents import (
    ProofPlan,
    PsExposure,
    StreamFold,
    merge_categories,
    ps_notice,
)
from rempart.domain.merkle import inclusion_path, leaf_hash, root, verify_inclusion


@st.composite
def trees(draw: st.DrawFn) -> tuple[int, list[int], int]:
    size = draw(st.integers(1, 300))
    targets = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=12, unique=True))
    part = draw(st.integers(1, 50))
    return size, targets, part


@given(trees())
def test_batched_proofs_equal_single_proofs(case: tuple[int, list[int], int]) -> None:
    size, targets, part = case
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    plan = ProofPlan.of(targets, size)
    fold = StreamFold(plan)
    indexed = list(enumerate(leaves))
    for at in range(0, size, part):
        fold.feed(indexed[at : at + part])
    paths = plan.proofs(*fold.finish())
    top = root(leaves)
    for t in targets:
        assert paths[t] == inclusion_path(t, leaves)
        assert verify_inclusion(leaves[t], t, size, paths[t], top)
    starts = [a for a, _ in plan.pure]
    ends = [b for _, b in plan.pure]
    assert all(e <= s for e, s in zip(ends, starts[1:], strict=False))  # disjoint


def test_categories_merge_and_sort() -> None:
    assert merge_categories(["coverage", "claims,coverage", "", None]) == ("claims", "coverage")
    assert merge_categories([]) == ()


def test_no_notice_for_an_untouched_structure() -> None:
    with pytest.raises(ValueError, match="did not touch"):
        ps_notice(PsExposure(False, (), 0), contact="x")


@pytest.mark.parametrize(
    ("exposure", "says", "never"),
    [
        (PsExposure(False, (), 1), ["un de vos patients"], ["accès de votre structure"]),
        (PsExposure(False, (), 4), ["4 de vos patients", "n'ont pas été consultées"], ["IBAN"]),
        (PsExposure(True, (), 0), ["accès de votre structure", "bloqué"], ["patients ont"]),
        (PsExposure(False, ("bank",), 0), ["coordonnées bancaires (IBAN)"], ["n'ont pas été"]),
    ],
)
def test_each_notice_says_what_happened_and_only_that(
    exposure: PsExposure, says: list[str], never: list[str]
) -> None:
    title, body = ps_notice(exposure, contact="securite@rempart.example")
    assert title.startswith("Incident de sécurité")
    assert all(s in body for s in says), body
    assert not any(n in body for n in never), body
    assert body.endswith("Pour toute question : securite@rempart.example.")
