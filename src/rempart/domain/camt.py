"""Bank statements: the transfers a camt.053 (statement) or camt.054 (debit/credit notification)
reports, matched later by ``EndToEndId`` (DOMAIN.md §8).

Any version of either message is read (the namespace is ignored, the element names are
ISO 20022's). Each transaction detail gives its end-to-end id, amount, direction and, for a
returned transfer, the return reason (``RtrInf/Rsn/Cd``: AC01 wrong account, AC04 closed …).

    >>> doc = b'''<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
    ... <BkToCstmrDbtCdtNtfctn><Ntfctn><Ntry><Amt Ccy="EUR">21.00</Amt>
    ... <CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><NtryDtls><TxDtls>
    ... <Refs><EndToEndId>RMP1-000001</EndToEndId></Refs><Amt Ccy="EUR">21.00</Amt>
    ... </TxDtls></NtryDtls></Ntry></Ntfctn></BkToCstmrDbtCdtNtfctn></Document>'''
    >>> parse(doc)
    [Movement(end_to_end_id='RMP1-000001', cents=2100, debit=True, return_reason=None)]
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from rempart.domain.money import Money

ROOTS = ("BkToCstmrStmt", "BkToCstmrDbtCdtNtfctn")


class StatementError(ValueError):
    """The file is not a camt.053 / camt.054 document Rempart can read (reason in French)."""


@dataclass(frozen=True, slots=True)
class Movement:
    end_to_end_id: str | None
    cents: int
    debit: bool  # money left the operator's account (a transfer); a return is a credit
    return_reason: str | None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node: ET.Element, *path: str) -> ET.Element | None:
    for name in path:
        found = next((c for c in node if _local(c.tag) == name), None)
        if found is None:
            return None
        node = found
    return node


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == name]


def _text(node: ET.Element, *path: str) -> str | None:
    found = _child(node, *path)
    return found.text.strip() if found is not None and found.text else None


def parse(data: bytes) -> list[Movement]:
    try:
        root = ET.fromstring(data)  # noqa: S314 (a bank's file; no entities are expanded)
    except ET.ParseError as e:
        raise StatementError(f"XML illisible (ligne {e.position[0]})") from None
    body = next((c for c in root if _local(c.tag) in ROOTS), None)
    if _local(root.tag) != "Document" or body is None:
        raise StatementError("ni camt.053 (BkToCstmrStmt) ni camt.054 (BkToCstmrDbtCdtNtfctn)")
    out = []
    for report in (*_children(body, "Stmt"), *_children(body, "Ntfctn")):
        for n, entry in enumerate(_children(report, "Ntry"), 1):
            if _text(entry, "Sts", "Cd") not in (None, "BOOK"):
                continue  # pending or information entries are not movements yet
            debit = _text(entry, "CdtDbtInd") == "DBIT"
            details = [
                tx for d in _children(entry, "NtryDtls") for tx in _children(d, "TxDtls")
            ] or [entry]
            for tx in details:
                amount = _text(tx, "Amt") or _text(entry, "Amt")
                try:
                    cents = Money.parse(amount or "").cents
                except ValueError:
                    raise StatementError(f"entrée {n} : montant illisible") from None
                out.append(
                    Movement(
                        _text(tx, "Refs", "EndToEndId"),
                        cents,
                        (_text(tx, "CdtDbtInd") or ("DBIT" if debit else "CRDT")) == "DBIT",
                        _text(tx, "RtrInf", "Rsn", "Cd"),
                    )
                )
    return out
