"""DESIGN §3: ``access.py`` is the only code that reads beneficiaries' personal data.

A structural check on the source tree: outside ``access.py`` nothing selects the encrypted
personal-data columns of ``beneficiary`` or decrypts them (the key ring only defines
``decrypt``). Writes (the import) name the columns as dictionary keys, never as columns to read.
"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "rempart"
_PERSONAL = r"(nir|adherent|birth_date|last_name|first_name)_enc"
READS = re.compile(
    rf"beneficiary\.c\.{_PERSONAL}"  # a column of the Core table
    r"|\.decrypt\(\s*\"beneficiary\""  # decrypting one of its values
    r"|select\(\s*beneficiary\s*[,)]"  # the whole table
    rf"|SELECT[^\"']*\b{_PERSONAL}"  # text SQL
    rf"|\[\s*[\"']{_PERSONAL}[\"']\s*\]"  # row["nir_enc"]
)
ALLOWED = {SRC / "access.py"}


def offenders() -> list[str]:
    found = []
    for path in SRC.rglob("*.py"):
        if path in ALLOWED:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if READS.search(line):
                found.append(f"{path.relative_to(SRC)}:{n}")
    return found


def test_only_access_reads_personal_columns() -> None:
    assert offenders() == []


def test_the_pattern_catches_a_read() -> None:
    assert READS.search("select(beneficiary.c.nir_enc).where(...)")
    assert READS.search('keys.decrypt("beneficiary", "nir", row.id, row.nir_enc)')
    assert READS.search("rows = await conn.execute(select(beneficiary))")
    assert READS.search('text("SELECT id, nir_enc FROM beneficiary")')
    assert READS.search('row["last_name_enc"]')
    assert not READS.search('"nir_enc": enc("beneficiary", "nir", row_id, r.nir.value),')
    assert not READS.search("select(beneficiary.c.id, beneficiary.c.card_bi)")
