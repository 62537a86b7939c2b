from datetime import date

import pytest

from rempart.domain.beneficiary_file import (
    COLUMNS,
    FileFormatError,
    Reject,
    Row,
    check_row,
    parse_header,
)

TODAY = date(2026, 12, 2)
GOOD = {
    "adherent_number": "a12345",
    "rank": "1",
    "nir": "1 85 03 75 999 001 18",
    "birth_date": "1985-03-01",
    "last_name": "Durand",
    "first_name": "Anne",
    "contract_code": "ESS",
    "valid_from": "2026-01-01",
    "valid_to": "",
}


def test_header_detects_separator_and_any_order() -> None:
    assert parse_header(";".join(COLUMNS)).delimiter == ";"
    h = parse_header("\ufeff" + ",".join(reversed(COLUMNS)) + "\r\n")
    assert h.delimiter == ","
    assert h.columns == tuple(reversed(COLUMNS))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (";".join(COLUMNS[:-1]), "colonnes manquantes : valid_to"),
        (";".join((*COLUMNS, "email")), "colonnes inconnues : email"),
        (";".join((*COLUMNS, "nir")), "colonnes en double : nir"),
    ],
)
def test_header_problems_name_the_columns(header: str, message: str) -> None:
    with pytest.raises(FileFormatError, match=message) as e:
        parse_header(header)
    assert e.value.line == 1


def test_good_row_is_normalised() -> None:
    row = check_row(2, GOOD, contract_codes={"ESS"}, today=TODAY)
    assert isinstance(row, Row)
    assert row.adherent_number == "A12345"
    assert row.nir.value == "185037599900118"
    assert row.valid_to is None
    assert row.card_key == ("A12345", date(1985, 3, 1), 1)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("adherent_number", "", "1 à 20"),
        ("adherent_number", "A-1", "1 à 20"),
        ("adherent_number", "1" * 21, "1 à 20"),
        ("rank", "0", "rang"),
        ("rank", "10", "rang"),
        ("rank", "x", "rang"),
        ("rank", "²", "rang"),
        ("nir", "185037599900119", "clé"),
        ("birth_date", "01/03/1985", "AAAA-MM-JJ"),
        ("birth_date", "1985-02-30", "inexistante"),
        ("birth_date", "2027-01-01", "hors bornes"),
        ("birth_date", "1899-12-31", "hors bornes"),
        ("last_name", "", "obligatoire"),
        ("last_name", "x" * 101, "100 caractères"),
        ("first_name", "An\x07ne", "contrôle"),
        ("contract_code", "GOLD", "contrat inconnu"),
        ("valid_from", "", "AAAA-MM-JJ"),
        ("valid_to", "2025-12-31", "antérieure"),
    ],
)
def test_each_bad_field_is_named(field: str, value: str, reason: str) -> None:
    result = check_row(7, {**GOOD, field: value}, contract_codes={"ESS"}, today=TODAY)
    assert isinstance(result, list)
    assert len(result) == 1
    assert result[0].line == 7
    assert result[0].field == field
    assert reason in result[0].reason


def test_every_problem_of_a_row_is_reported() -> None:
    bad = {**GOOD, "rank": "0", "nir": "123", "contract_code": "X"}
    result = check_row(3, bad, contract_codes={"ESS"}, today=TODAY)
    assert [r.field for r in result] == ["rank", "nir", "contract_code"]  # type: ignore[union-attr]
    assert all(isinstance(r, Reject) for r in result)  # type: ignore[union-attr]


def test_reasons_never_echo_the_value() -> None:
    result = check_row(3, {**GOOD, "nir": "185037599900119"}, contract_codes={"ESS"}, today=TODAY)
    assert "185037599900119" not in str(result)
