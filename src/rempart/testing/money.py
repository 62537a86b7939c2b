"""Accepted invoices at scale, for the payment benches and the kill -9 trials (PostgreSQL only).

Writes directly, set-based, what intake and adjudication would have left behind for a payment
run: PS structures with bank details (IBAN encrypted and blind-indexed with the installation's
``KeyRing``, exactly as ``registry.create_structure`` does; one distinct IBAN per structure, so
the shared-IBAN hold trips only where asked), decided invoices, and the ``invoice_accepted``
ledger posting of each accepted one (``ocam:<id>`` debit, ``ps:<id>`` credit, like the worker).
Invoices reuse the installation's beneficiaries (``rempart demo`` seeds them); their body is a
placeholder (payment runs never read it) and they have no ``invoice_line`` rows.

    with psycopg.connect(url) as conn:
        seed_payable(conn, keys, structures=50_000, invoices=1_000_000, now=now)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rempart.security.keys import KeyRing
from rempart.security.pseudonyms import iban_index


def bench_iban(n: int) -> str:
    """A valid French IBAN, distinct for each ``n`` (bank 99999: no real bank)."""
    bank, branch, account = "99999", f"{n // 10**11:05d}", f"{n % 10**11:011d}"
    key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    bban = f"{bank}{branch}{account}{key:02d}"
    check = 98 - int(bban + "152700") % 97
    return f"FR{check:02d}{bban}"


@dataclass
class Seeded:
    structures: list[uuid.UUID]
    invoices: int
    accepted_cents: int
    held: dict[uuid.UUID, str] = field(default_factory=dict)  # structure → expected hold


def seed_payable(
    conn: Any,
    keys: KeyRing,
    *,
    structures: int,
    invoices: int,
    now: datetime,
    rejected_every: int = 0,
    with_holds: bool = False,
    first_iban: int = 1,
) -> Seeded:
    """``invoices`` decided invoices spread evenly over ``structures`` new pharmacies.

    ``rejected_every`` = k: every k-th invoice is rejected (AMC 0). ``with_holds``: the first
    structures get, in order, bank details in their cooling-off, an IBAN shared by two, no
    bank details, and invoices all rejected (a remittance advice without a transfer)."""
    ids = [uuid.uuid4() for _ in range(structures)]
    past, future = now - timedelta(days=30), now + timedelta(days=3)
    held: dict[uuid.UUID, str] = {}
    with conn.cursor() as cur:
        with cur.copy("COPY structure (id, name, profession, created_at) FROM STDIN") as cp:
            for i, sid in enumerate(ids):
                cp.write_row((sid, f"Pharmacie Banc {first_iban + i}", "pharmacy", past))
        cols = (
            "id, structure_id, iban_enc, iban_bi, iban_last4, bic, holder_enc, status, "
            "pays_from, key_version, created_at"
        )
        with cur.copy(f"COPY bank_account ({cols}) FROM STDIN") as cp:
            for i, sid in enumerate(ids):
                pays_from, n = past, first_iban + i
                if with_holds and i == 0:
                    pays_from, held[sid] = future, "iban_cooling_off"
                if with_holds and i in (1, 2):
                    n, held[sid] = first_iban + 1, "iban_shared"
                if with_holds and i == 3:
                    held[sid] = "no_bank_account"
                    continue
                iban, bid = bench_iban(n), uuid.uuid4()
                cp.write_row(
                    (
                        bid, sid, keys.encrypt("bank_account", "iban", bid, iban),
                        iban_index(keys, iban), iban[-4:], "ZZZZFRPP",
                        keys.encrypt("bank_account", "holder", bid, f"Titulaire {n}"),
                        "active", pays_from, keys.current_version, past,
                    )
                )  # fmt: skip
        all_rejected = ids[4] if with_holds and structures > 4 else None
        cur.execute("CREATE TEMP TABLE seed_structure (n int PRIMARY KEY, id uuid) ON COMMIT DROP")
        with cur.copy("COPY seed_structure (n, id) FROM STDIN") as cp:
            for i, sid in enumerate(ids):
                cp.write_row((i, sid))
        cur.execute(
            "CREATE TEMP TABLE seed_person ON COMMIT DROP AS SELECT row_number() OVER "
            "(ORDER BY id) - 1 AS n, id FROM beneficiary WHERE NOT is_canary LIMIT 5000"
        )
        persons = cur.execute("SELECT count(*) FROM seed_person").fetchone()[0]
        if persons == 0:
            raise RuntimeError("no beneficiary to invoice for: seed with `rempart demo` first")
        cur.execute(_INVOICES, _params(now, invoices, structures, persons, rejected_every))
        cur.execute("UPDATE invoice SET status = 'rejected', amc_cents = 0 WHERE structure_id = %s",
                    (all_rejected,))  # fmt: skip
        cur.execute(_POSTINGS, {"now": now})
        cents = cur.execute(
            "SELECT coalesce(sum(amc_cents), 0) FROM invoice i JOIN seed_structure s "
            "ON s.id = i.structure_id WHERE i.status = 'accepted'"
        ).fetchone()[0]
    conn.commit()
    return Seeded(ids, invoices, int(cents), held)


def _params(now: datetime, count: int, structures: int, persons: int, every: int) -> dict[str, Any]:
    return {
        "now": now,
        "count": count,
        "structures": structures,
        "persons": persons,
        "every": every or count + 1,
        "tag": uuid.uuid4().hex[:8],
    }


# Invoice n goes to structure n mod S and beneficiary n mod P; its AMC part varies with n.
_INVOICES = """
INSERT INTO invoice (id, structure_id, invoice_number, body_hash, body_enc, key_version, card_bi,
                     care_date, channel, status, received_at, decided_at, beneficiary_id,
                     amo_cents, amc_cents, patient_cents)
SELECT gen_random_uuid(), s.id, 'B' || %(tag)s || '-' || g, sha256(g::text::bytea), '\\x00', 1,
       substring(sha256(('card' || p.id)::bytea) for 16), (%(now)s::timestamptz)::date - 1,
       'api', CASE WHEN (g + 1) %% %(every)s = 0 THEN 'rejected' ELSE 'accepted' END,
       %(now)s::timestamptz - interval '2 hours', %(now)s::timestamptz - interval '1 hour', p.id,
       650, CASE WHEN (g + 1) %% %(every)s = 0 THEN 0 ELSE 100 + (g * 37) %% 9000 END, 0
FROM generate_series(0, %(count)s - 1) g
JOIN seed_structure s ON s.n = g %% %(structures)s
JOIN seed_person p ON p.n = g %% %(persons)s
"""

_POSTINGS = """
INSERT INTO ledger_posting (id, at, event, ref, debit, credit, amount_cents)
SELECT gen_random_uuid(), i.decided_at, 'invoice_accepted', i.id, 'ocam:' || b.ocam_id,
       'ps:' || i.structure_id, i.amc_cents
FROM invoice i JOIN seed_structure s ON s.id = i.structure_id
JOIN beneficiary b ON b.id = i.beneficiary_id
WHERE i.status = 'accepted' AND i.amc_cents > 0
"""
