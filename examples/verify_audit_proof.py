"""Check a Rempart audit inclusion proof with nothing but the operator's public key.

    rempart audit prove EVENT_ID > proof.json
    python verify_audit_proof.py proof.json [--public-key HEX]

Standalone on purpose: an auditor or a court expert runs it without Rempart, with Python and
the ``cryptography`` package. It recomputes the leaf hash from the row's canonical JSON
(``SHA-256(0x00 ‖ leaf_data)``), folds the audit path as RFC 9162 §2.1.3.2 says (nodes are
``SHA-256(0x01 ‖ left ‖ right)``), compares with the signed root, and checks the Ed25519
signature of the tree head. Pass ``--public-key`` with the key published by the operator: the
key inside the proof file only says which key the operator claims to have used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def check(proof: dict, public_key_hex: str | None = None) -> list[str]:  # type: ignore[type-arg]
    problems = []
    data = proof["leaf_data"].encode()
    row = json.loads(data)
    if row.get("leaf_index") != proof["leaf_index"]:
        problems.append("the leaf data does not carry the leaf index of the proof")
    if row.get("id") != proof["event_id"]:
        problems.append("the leaf data is not the event the proof names")
    leaf = hashlib.sha256(b"\x00" + data).digest()
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    root = root_from_path(leaf, proof["leaf_index"], proof["tree_size"], path)
    if root is None or root.hex() != proof["root_hash"]:
        problems.append("the audit path does not lead to the signed root")
    key_hex = public_key_hex or proof["public_key"]
    signed_at = datetime.fromisoformat(proof["signed_at"]).astimezone(UTC)
    message = (
        f"rempart-audit-tree-head:v1\n{proof['tree_size']}\n{proof['root_hash']}\n"
        f"{signed_at.isoformat(timespec='microseconds')}"
    ).encode()
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)).verify(
            bytes.fromhex(proof["signature"]), message
        )
    except InvalidSignature:
        problems.append("the tree head signature does not verify with this public key")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("proof")
    parser.add_argument("--public-key", help="the operator's published Ed25519 key, hex")
    args = parser.parse_args()
    with open(args.proof, encoding="utf-8") as f:
        proof = json.load(f)
    if not args.public_key:
        print(
            "WARNING: no --public-key given: checking against the key inside the proof file, "
            "which proves consistency only, not that the operator signed it"
        )
    problems = check(proof, args.public_key)
    if problems:
        for p in problems:
            print(f"INVALID: {p}")
        sys.exit(1)
    print(
        f"OK: event {proof['event_id']} is leaf {proof['leaf_index']} of the signed tree of "
        f"{proof['tree_size']} rows (root {proof['root_hash'][:16]}…, signed {proof['signed_at']})"
    )


if __name__ == "__main__":
    main()
