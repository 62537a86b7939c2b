"""The rights check without its audit row and quota counting — for measurement only.

Swaps the fast path's two statements (``access._TOUCH_AND_READ``, ``access._AUDIT_ENGAGE_COUNT``)
for the same read, engagement and care relationship without the audit insert and the quota
upserts, so that a bench prices the bookkeeping. Nothing in ``src/`` can turn this on.

    python bench/unaudited.py serve --port P --no-worker   # ``rempart serve``, swapped

``bench/rights_inprocess.py --modes unaudited`` calls ``without_bookkeeping()`` in process;
``bench/rights_check.py --bookkeeping on,off`` serves through this file for ``off``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def without_bookkeeping() -> None:
    """The fast path's two statements without the audit row and the quota counting, for this
    measurement only: the same read, the same engagement and care relationship."""
    from rempart import access
    from rempart.security import audit

    a, c = access._A, access._C
    types = {
        "id": "uuid", "at": "timestamptz", "actor_kind": "varchar", "actor_id": "uuid",
        "actor_label": "varchar", "structure_id": "uuid", "ocam_id": "uuid",
        "channel": "varchar", "purpose": "varchar", "subject_kind": "varchar",
        "subject_id": "uuid", "categories": "varchar", "result": "varchar", "detail": "text",
        "day": "date", "principal_kind": "varchar", "principal_id": "uuid",
        "new_subject": "bool", "new_for_structure": "bool",
    }  # fmt: skip
    unused = ", ".join(
        [f"{a[f]}::{types[f]}" for f in audit.ROW_FIELDS]
        + [f"{c[f]}::{types[f]}" for f in access._COUNT_FIELDS]
    )
    access._TOUCH_AND_READ = """
SELECT false AS frozen, false AS new_subject, false AS new_for_structure,
       b.id, b.ocam_id, b.nir_bi, b.valid_from, b.valid_to, b.closed_on, b.is_canary,
       c.code, c.label, c.valid_from AS c_from, c.valid_to AS c_to,
       g.domain, g.formula, g.rate_pct, g.flat_amount_cents, g.ceiling_amount_cents, g.period,
       g.valid_from AS g_from, g.valid_to AS g_to
FROM (SELECT $1::uuid, $2::date, $3::varchar, $4::uuid, $5::uuid, $7::int) st
LEFT JOIN beneficiary b ON b.card_bi = $6::bytea
LEFT JOIN contract c ON c.id = b.contract_id
LEFT JOIN guarantee g ON g.contract_id = c.id AND g.domain = $8::varchar
"""
    engage = access._AUDIT_ENGAGE_COUNT.split("), e AS (", 1)[1]
    engage = engage.rsplit("SELECT (SELECT distinct_subjects", 1)[0]
    access._AUDIT_ENGAGE_COUNT = (
        f"WITH x AS (SELECT {unused}), e AS ({engage}"
        "SELECT NULL::int AS new_count, NULL::int AS structure_total"
    )


if __name__ == "__main__":
    without_bookkeeping()
    from rempart.cli import app

    app()  # `serve … --workers 1` runs uvicorn in this process: the swap holds
