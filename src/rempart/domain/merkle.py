"""An RFC 9162 (Certificate Transparency v2) Merkle tree over the audit log.

Hashes are domain-separated: a leaf is ``SHA-256(0x00 ‖ data)``, an interior node
``SHA-256(0x01 ‖ left ‖ right)``. The tree of ``n`` leaves splits at ``k``, the largest power
of two smaller than ``n`` (RFC 9162 §2.1.1). ``Frontier`` keeps the roots of the perfect
subtrees along the right edge, so that a checkpointer appends leaves in O(log n) memory and
gets the root of every prefix without rehashing the past.

    >>> f = Frontier()
    >>> for data in (b"a", b"b", b"c"):
    ...     f.append(leaf_hash(data))
    >>> f.root() == root([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
    True
    >>> path = inclusion_path(1, [leaf_hash(d) for d in (b"a", b"b", b"c")])
    >>> verify_inclusion(leaf_hash(b"b"), 1, 3, path, f.root())
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) from leaf hashes, by the definition (used by proofs and tests)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root(leaves[:k]), root(leaves[k:]))


@dataclass
class Frontier:
    """Right-edge perfect subtree roots, largest first, and the number of leaves."""

    size: int = 0
    nodes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        node, size = leaf, self.size
        while size & 1:  # merge equal-sized subtrees, like carrying in binary addition
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def extend(self, right: Frontier) -> None:
        """Append the leaves that ``right`` sums up, as if appended one by one.

        Each of ``right``'s subtrees must start at a multiple of its own size: true when this
        size is a multiple of a power of two at least ``right.size``, as when a long run of
        leaves is cut into aligned chunks, each folded apart (``services.audit_log.verify``).

        >>> leaves = [leaf_hash(bytes([i])) for i in range(11)]
        >>> left, right = Frontier(), Frontier()
        >>> for h in leaves[:8]:
        ...     left.append(h)
        >>> for h in leaves[8:]:
        ...     right.append(h)
        >>> left.extend(right)
        >>> left.root() == root(leaves)
        True
        """
        sizes = [1 << b for b in range(right.size.bit_length() - 1, -1, -1) if right.size >> b & 1]
        if sizes and self.size % sizes[0]:  # the smaller ones then follow on their own
            raise ValueError("the subtree does not start at a multiple of its size")
        for node, size in zip(right.nodes, sizes, strict=True):
            units = self.size // size
            while units & 1:  # the same carries as append, counted in subtrees of this size
                node = node_hash(self.nodes.pop(), node)
                units >>= 1
            self.nodes.append(node)
            self.size += size

    def to_bytes(self) -> bytes:
        return b"".join(self.nodes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> Frontier:
        nodes = [blob[i : i + 32] for i in range(0, len(blob), 32)]
        if len(nodes) != bin(size).count("1"):
            raise ValueError("frontier does not match its tree size")
        return cls(size, nodes)


def inclusion_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1: the siblings from the leaf up to the root."""
    n = len(leaves)
    if not 0 <= index < n:
        raise IndexError("leaf index outside the tree")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_path(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), root(leaves[:k])]


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], expected: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: recompute the root from a leaf hash and its inclusion path."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected


def path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[start, end)`` whose roots form PATH(index, D[size]), bottom-up.

    They are disjoint and, with the leaf itself, cover the tree: a prover streams the leaves
    once, feeding each range's ``Frontier``, in O(log n) memory (``inclusion_path`` needs every
    leaf in memory).
    """
    if not 0 <= index < size:
        raise IndexError("leaf index outside the tree")
    out: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    return out[::-1]
