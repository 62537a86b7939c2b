import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rempart.domain.merkle import (
    EMPTY_ROOT,
    Frontier,
    inclusion_path,
    leaf_hash,
    node_hash,
    root,
    verify_inclusion,
)


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert root([]) == EMPTY_ROOT


def test_small_trees_by_hand() -> None:
    a, b, c = leaves(3)
    assert root([a]) == a
    assert root([a, b]) == node_hash(a, b)
    assert root([a, b, c]) == node_hash(node_hash(a, b), c)  # k = 2 for n = 3


@pytest.mark.parametrize("n", range(0, 70))
def test_frontier_root_equals_definition_for_every_prefix(n: int) -> None:
    f = Frontier()
    for leaf in leaves(n):
        f.append(leaf)
    assert f.root() == root(leaves(n))
    assert Frontier.from_bytes(f.size, f.to_bytes()).root() == f.root()


@given(st.integers(1, 300), st.data())
def test_every_leaf_proves_and_nothing_else_does(n: int, data: st.DataObject) -> None:
    ls = leaves(n)
    top = root(ls)
    m = data.draw(st.integers(0, n - 1))
    path = inclusion_path(m, ls)
    assert verify_inclusion(ls[m], m, n, path, top)
    assert not verify_inclusion(leaf_hash(b"forged"), m, n, path, top)
    if n > 1:
        other = (m + 1) % n
        assert not verify_inclusion(ls[m], other, n, path, top) or ls[other] == ls[m]
    assert not verify_inclusion(ls[m], m, n, path, hashlib.sha256(b"other root").digest())


def test_frontier_rejects_a_mismatched_size() -> None:
    with pytest.raises(ValueError, match="frontier"):
        Frontier.from_bytes(3, b"x" * 32)


@given(st.integers(1, 300), st.data())
def test_path_ranges_give_the_same_path(n: int, data: st.DataObject) -> None:
    from rempart.domain.merkle import path_ranges

    ls = leaves(n)
    m = data.draw(st.integers(0, n - 1))
    assert [root(ls[a:b]) for a, b in path_ranges(m, n)] == inclusion_path(m, ls)
