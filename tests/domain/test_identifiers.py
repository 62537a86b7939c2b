"""DOMAIN.md §9 test vectors, then Hypothesis properties of the identifier parsers."""

from __future__ import annotations

import string
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.domain.identifiers import (
    Iban,
    IdentifierError,
    Nir,
    parse_adeli,
    parse_amc_number,
    parse_bic,
    parse_cip13,
    parse_finess,
    parse_iban,
    parse_nir,
    parse_rpps,
    parse_siren,
    parse_siret,
)

# No example database: the tests must not write into the source tree.
quick = settings(database=None, max_examples=200)

Parser = Callable[[str], object]


def _compact(parsed: object) -> str:
    return parsed.value if isinstance(parsed, Nir | Iban) else str(parsed)


# --- DOMAIN.md §9 vectors -------------------------------------------------------------------

VALID: list[tuple[Parser, str, str]] = [
    (parse_nir, "1 85 03 75 999 001 18", "185037599900118"),
    (parse_nir, "2 53 07 2A 999 004 05", "253072A99900405"),
    (parse_nir, "2 53 07 2B 999 004 32", "253072B99900432"),
    (parse_nir, "1 90 12 971 99 001 43", "190129719900143"),
    (parse_nir, "2 00 01 99 999 999 30", "200019999999930"),
    (parse_nir, "7 85 03 75 999 001 09", "785037599900109"),
    (parse_siren, "111 111 118", "111111118"),
    (parse_siret, "111 111 118 00019", "11111111800019"),
    (parse_siret, "356 000 000 00048", "35600000000048"),
    (parse_siret, "356 000 000 00010", "35600000000010"),
    (parse_finess, "759999998", "759999998"),
    (parse_rpps, "10999999997", "10999999997"),
    (parse_adeli, "751999996", "751999996"),
    (parse_iban, "FR76 9999 9000 0100 0000 0000 115", "FR7699999000010000000000115"),
    (parse_iban, "FR40 9999 9000 0100 0000 0A00 122", "FR4099999000010000000A00122"),
    (parse_bic, "ZZZZFRPP", "ZZZZFRPP"),
    (parse_bic, "BDFEFRPPXXX", "BDFEFRPPXXX"),
    (parse_cip13, "3400900000013", "3400900000013"),
    (parse_cip13, "3400999999991", "3400999999991"),
    (parse_amc_number, "999999999", "999999999"),
]

INVALID: list[tuple[Parser, str, str]] = [
    (parse_nir, "1 85 03 75 999 001 19", "clé de contrôle invalide"),
    (parse_nir, "2 53 07 2A 999 004 75", "2A et 2B se comptent 19 et 18"),
    (parse_nir, "2 53 07 2C 999 004 05", "département inconnu"),
    (parse_nir, "1 85 03 75 999 001 00", "clé hors de l'intervalle"),
    (parse_siren, "111 111 119", "clé de contrôle invalide"),
    (parse_siret, "111 111 118 00010", "clé de contrôle invalide"),
    (parse_siret, "356 000 000 00011", "La Poste"),
    (parse_finess, "759999999", "clé de contrôle invalide"),
    (parse_finess, "75999999", "doit comporter 9 caractères"),
    (parse_rpps, "10999999998", "clé de contrôle invalide"),
    (parse_rpps, "1099999999", "doit comporter 11 chiffres"),
    (parse_adeli, "751999997", "clé de contrôle invalide"),
    (parse_iban, "FR77 9999 9000 0100 0000 0000 115", "clé IBAN invalide"),
    (parse_iban, "FR49 9999 9000 0100 0000 0000 116", "clé RIB invalide"),
    (parse_bic, "BDFEFRP", "doit comporter 8 ou 11 caractères"),
    (parse_bic, "BDFE12PP", "code pays invalide"),
    (parse_cip13, "3400900000014", "clé de contrôle invalide"),
    (parse_cip13, "3401900000010", "doit commencer par 34009"),
    (parse_amc_number, "99999999A", "ne doit contenir que des chiffres"),
    (parse_amc_number, "99999999999", "doit comporter 9 chiffres"),
]

# Beyond DOMAIN.md: the edges of each rule, so every reason is reached once.
MORE_INVALID: list[tuple[Parser, str, str]] = [
    (parse_nir, "", "valeur vide"),
    (parse_nir, "18503759990011", "doit comporter 15 caractères"),
    (parse_nir, "385037599900118", "premier chiffre invalide"),
    (parse_nir, "9 85 03 75 999 001 18", "premier chiffre invalide"),
    (parse_nir, "18503759990A118", "seuls des chiffres"),
    (parse_nir, "185037599900199", "clé hors de l'intervalle"),
    (parse_siret, "111 111 119 00015", "SIREN (9 premiers chiffres) invalide"),
    (parse_finess, "7C9999998", "département inconnu"),
    (parse_finess, "75999999X", "seuls des chiffres"),
    (parse_finess, " ", "valeur vide"),
    (parse_iban, "", "valeur vide"),
    (parse_iban, "XX76 9999 9000 0100 0000 0000 115", "pays inconnu"),
    (parse_iban, "FR76 9999 9000 0100 0000 0000 11", "longueur invalide"),
    (parse_iban, "FR76 9999 9000 0100 0000 0#00 115", "structure invalide"),
    (parse_bic, "", "valeur vide"),
    (parse_bic, "BDFEXXPP", "code pays invalide"),
    (parse_bic, "BDFEFRP#", "structure invalide"),
    (parse_cip13, "340090000001", "doit comporter 13 chiffres"),
    (parse_amc_number, "9999999999", "doit comporter 9 chiffres"),
    (parse_amc_number, "99999999²", "ne doit contenir que des chiffres"),
]


@pytest.mark.parametrize(("parse", "raw", "compact"), VALID)
def test_valid_vector_parses_to_its_compact_form(parse: Parser, raw: str, compact: str) -> None:
    assert _compact(parse(raw)) == compact


@pytest.mark.parametrize(("parse", "raw", "fragment"), INVALID + MORE_INVALID)
def test_invalid_vector_is_refused_with_its_reason(parse: Parser, raw: str, fragment: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        parse(raw)
    assert fragment in caught.value.reason
    assert str(caught.value) == caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_nir_fields() -> None:
    permanent = parse_nir("2 53 07 2A 999 004 05")
    temporary = parse_nir("7 85 03 75 999 001 09")
    assert (permanent.sex, permanent.is_temporary) == (2, False)
    assert (temporary.sex, temporary.is_temporary) == (7, True)
    assert parse_nir("2 53 07 2a 999 004 05") == permanent
    assert parse_nir("2.53.07.2A.999.004-05") == permanent


def test_repr_hides_nir_and_iban() -> None:
    nir = parse_nir("1 85 03 75 999 001 18")
    iban = parse_iban("FR76 9999 9000 0100 0000 0000 115")
    assert "185037599900118" not in repr(nir)
    assert repr(iban) == "Iban(FR76 •••• 0115)"
    assert (iban.last4, iban.masked) == ("0115", "FR76 •••• 0115")


def test_iban_error_carries_no_schwifty_exception() -> None:
    # schwifty's messages quote the IBAN; its exception must not be chained to ours.
    with pytest.raises(IdentifierError) as caught:
        parse_iban("FR49 9999 9000 0100 0000 0000 116")
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None


def test_iban_lowercase_and_monaco() -> None:
    assert parse_iban("fr76 9999 9000 0100 0000 0000 115").value == "FR7699999000010000000000115"
    assert parse_iban("MC58 1122 2000 0101 2345 6789 030").value == "MC5811222000010123456789030"


# --- Properties: NIR ------------------------------------------------------------------------


def _nir_key(body: str) -> int:
    department = body[5:7]
    digits = body[:5] + {"2A": "19", "2B": "18"}.get(department, department) + body[7:]
    return 97 - int(digits) % 97


@st.composite
def nir_bodies(draw: st.DrawFn) -> str:
    sex = draw(st.sampled_from("12"))
    year = draw(st.integers(0, 99))
    month = draw(st.integers(1, 12))
    department = draw(st.sampled_from([f"{d:02d}" for d in range(1, 96)] + ["2A", "2B"]))
    commune = draw(st.integers(1, 990))
    order = draw(st.integers(1, 999))
    return f"{sex}{year:02d}{month:02d}{department}{commune:03d}{order:03d}"


@quick
@given(body=nir_bodies(), other=st.integers(0, 99))
def test_nir_with_computed_key_parses_and_any_other_key_fails(body: str, other: int) -> None:
    key = _nir_key(body)
    nir = parse_nir(f"{body}{key:02d}")
    assert nir.value == f"{body}{key:02d}"
    assert parse_nir(nir.value) == nir  # idempotent
    if other != key:
        with pytest.raises(IdentifierError):
            parse_nir(f"{body}{other:02d}")


@quick
@given(
    body=nir_bodies(),
    first=st.sampled_from("125678"),
    key=st.integers(1, 97),
)
def test_nir_key_agrees_with_stdnum(body: str, first: str, key: int) -> None:
    """parse_nir computes the key itself (a hot path of the import): same verdict as
    stdnum.fr.nir on every shape it lets through, temporary numbers included."""
    from stdnum.fr import nir as stdnum_nir

    number = f"{first}{body[1:]}{key:02d}"
    try:
        parse_nir(number)
        accepted = True
    except IdentifierError:
        accepted = False
    assert accepted == stdnum_nir.is_valid(number)


# --- Properties: IBAN -----------------------------------------------------------------------

_RIB_VALUE = {
    **{d: d for d in string.digits},
    **dict(zip("ABCDEFGHI", "123456789", strict=True)),
    **dict(zip("JKLMNOPQR", "123456789", strict=True)),
    **dict(zip("STUVWXYZ", "23456789", strict=True)),
}


def _rib_key(bank: str, branch: str, account: str) -> str:
    numeric = int("".join(_RIB_VALUE[c] for c in account))
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * numeric) % 97:02d}"


def _iban(bban: str) -> str:
    rearranged = bban + "FR00"
    numeric = int("".join(str(int(c, 36)) for c in rearranged))
    return f"FR{98 - numeric % 97:02d}{bban}"


@st.composite
def french_accounts(draw: st.DrawFn) -> tuple[str, str, str]:
    bank = draw(st.text(string.digits, min_size=5, max_size=5))
    branch = draw(st.text(string.digits, min_size=5, max_size=5))
    account = draw(
        st.text(string.digits, min_size=11, max_size=11)
        | st.text(string.digits + string.ascii_uppercase, min_size=11, max_size=11)
    )
    return bank, branch, account


@quick
@given(parts=french_accounts(), data=st.data())
def test_built_french_iban_parses_and_one_changed_account_digit_fails(
    parts: tuple[str, str, str], data: st.DataObject
) -> None:
    bank, branch, account = parts
    iban = parse_iban(_iban(bank + branch + account + _rib_key(bank, branch, account)))
    assert parse_iban(iban.value) == iban  # idempotent
    assert iban.masked == f"{iban.value[:4]} •••• {iban.value[-4:]}"

    at = data.draw(st.integers(0, 10))
    new = data.draw(st.sampled_from([d for d in string.digits if d != _RIB_VALUE[account[at]]]))
    changed = account[:at] + new + account[at + 1 :]
    stale_rib = bank + branch + changed + _rib_key(bank, branch, account)
    # Old IBAN key too: a letter turned digit shortens the mod-97 number, so the IBAN key
    # may still hold by chance (1 in 97); the RIB key then catches it.
    with pytest.raises(IdentifierError, match=r"clé (IBAN|RIB) invalide"):
        parse_iban(iban.value[:4] + stale_rib)
    with pytest.raises(IdentifierError, match="clé RIB invalide"):
        parse_iban(_iban(stale_rib))  # IBAN key recomputed: only the RIB key is wrong


# --- Properties: all parsers ----------------------------------------------------------------

# (parser, usual length) for random inputs of about the right shape.
SHAPES: list[tuple[Parser, int]] = [
    (parse_nir, 15),
    (parse_siren, 9),
    (parse_siret, 14),
    (parse_finess, 9),
    (parse_rpps, 11),
    (parse_adeli, 9),
    (parse_cip13, 13),
    (parse_amc_number, 9),
    (parse_iban, 27),
    (parse_bic, 11),
]


@st.composite
def shaped_inputs(draw: st.DrawFn) -> tuple[Parser, str]:
    parse, length = draw(st.sampled_from(SHAPES))
    prefix = "FR" if parse is parse_iban else ""
    size = draw(st.integers(length - 2, length + 1)) - len(prefix)
    return parse, prefix + draw(st.text(string.digits, min_size=size, max_size=size))


def _outcome(parse: Parser, raw: str) -> object:
    """The parsed value, or the IdentifierError raised instead."""
    try:
        return parse(raw)
    except IdentifierError as err:
        return err


@quick
@given(shaped=shaped_inputs(), spaces=st.lists(st.integers(0, 30), max_size=4))
def test_parse_is_idempotent_and_reasons_never_quote_the_input(
    shaped: tuple[Parser, str], spaces: list[int]
) -> None:
    parse, raw = shaped
    spaced = raw
    for at in sorted(spaces, reverse=True):
        spaced = spaced[:at] + " " + spaced[at:]
    parsed = _outcome(parse, spaced)
    if isinstance(parsed, IdentifierError):
        # No 6-character run of the input may appear: reasons reach logs and reports.
        runs = {raw[i : i + 6] for i in range(len(raw) - 5)}
        assert not any(run in parsed.reason for run in runs)
    else:
        assert _compact(parse(_compact(parsed))) == _compact(parsed)
        assert _compact(parsed) == raw.upper()


@quick
@given(parse=st.sampled_from([p for p, _ in SHAPES]), raw=st.text(max_size=40))
def test_any_text_is_parsed_or_refused_with_identifier_error(parse: Parser, raw: str) -> None:
    outcome = _outcome(parse, raw)  # anything but IdentifierError propagates and fails
    if isinstance(outcome, IdentifierError):
        assert outcome.reason
