"""Beneficiary import on PostgreSQL: all or nothing, reject report, re-import no-op, closing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rempart.db.tables import audit_event, beneficiary, beneficiary_import
from rempart.domain.beneficiary_file import FileFormatError
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.runtime import Runtime
from tests import factories as f


async def _count(rt: Runtime, *where: object) -> int:
    async with rt.db.transaction() as conn:
        return (
            await conn.execute(select(func.count()).select_from(beneficiary).where(*where))
        ).scalar_one()  # type: ignore[arg-type]


async def _snapshot(rt: Runtime) -> list[tuple[object, ...]]:
    async with rt.db.transaction() as conn:
        rows = await conn.execute(select(beneficiary).order_by(beneficiary.c.id))
        return [tuple(r) for r in rows]


async def _import(rt: Runtime, path: Path, amc: str, **kw: object):  # type: ignore[no-untyped-def]
    return await import_beneficiaries(rt, path, amc_number=amc, actor=f.ACTOR, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def insurer(rt: Runtime) -> f.Insurer:
    return await f.insurer(rt)


async def test_import_then_reimport_is_a_no_op(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    persons = f.people(2500)  # more than one batch
    path = f.write_file(tmp_path / "b.csv", persons)
    s = await _import(rt, path, insurer.amc_number)
    assert (s.status, s.rows_total, s.rows_new, s.rows_rejected) == ("committed", 2500, 2500, 0)
    assert await _count(rt) == 2500
    before = await _snapshot(rt)

    again = await _import(rt, path, insurer.amc_number)
    assert (again.rows_new, again.rows_changed, again.rows_unchanged, again.rows_closed) == (
        0,
        0,
        2500,
        0,
    )
    assert await _snapshot(rt) == before  # not one byte changed, timestamps included


async def test_comma_separated_file_is_read_too(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    path = f.write_file(tmp_path / "b.csv", f.people(3), delimiter=",")
    assert (await _import(rt, path, insurer.amc_number)).rows_new == 3


async def test_newer_file_applies_changes_and_closes_rights_that_disappeared(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    persons = f.people(10)
    await _import(rt, f.write_file(tmp_path / "v1.csv", persons), insurer.amc_number)
    persons[0].last_name = f.sensitive("last_name", "Nouveau-Nom-00001")
    persons[1].valid_to = date(2027, 6, 30)
    gone = persons.pop()
    newcomer = f.people(1, seed=99, prefix="N")[0]
    s = await _import(
        rt, f.write_file(tmp_path / "v2.csv", [*persons, newcomer]), insurer.amc_number
    )
    assert (s.rows_new, s.rows_changed, s.rows_unchanged, s.rows_closed) == (1, 2, 7, 1)
    assert await _count(rt, beneficiary.c.closed_on == date(2026, 12, 1)) == 1

    # The person who disappeared comes back in a later file: rights reopen.
    s = await _import(
        rt, f.write_file(tmp_path / "v3.csv", [*persons, newcomer, gone]), insurer.amc_number
    )
    assert (s.rows_changed, s.rows_closed) == (1, 0)
    assert await _count(rt, beneficiary.c.closed_on.is_not(None)) == 0


async def test_any_reject_writes_nothing_and_reports_every_problem(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    persons = f.people(3000)
    persons[10].nir = "185037599900119"
    persons[2999].contract_code = "GOLD"
    persons[1500].birth_date = persons[1499].birth_date
    persons[1500].adherent_number = persons[1499].adherent_number  # same card as line 1501
    path = f.write_file(tmp_path / "bad.csv", persons)
    s = await _import(rt, path, insurer.amc_number)
    assert s.status == "rejected"
    assert s.rows_rejected == 3
    assert await _count(rt) == 0
    report = s.report_path.read_text().splitlines()  # type: ignore[union-attr]
    assert report[0] == "line;field;reason"
    assert report[1].startswith("12;nir;clé de contrôle invalide")
    assert any(
        r.startswith("1502;adherent_number;même bénéficiaire") and r.endswith("ligne 1501")
        for r in report
    )
    assert "3001;contract_code;contrat inconnu pour cet organisme" in report
    assert len(report) == 4
    async with rt.db.transaction() as conn:
        recorded = (
            await conn.execute(
                select(beneficiary_import.c.status, beneficiary_import.c.rows_rejected)
            )
        ).all()
    assert [tuple(r) for r in recorded] == [("rejected", 3)]


async def test_dry_run_writes_nothing(rt: Runtime, insurer: f.Insurer, tmp_path: Path) -> None:
    s = await _import(
        rt, f.write_file(tmp_path / "b.csv", f.people(5)), insurer.amc_number, dry_run=True
    )
    assert (s.status, s.rows_new) == ("dry_run", 5)
    assert await _count(rt) == 0


def _header_line() -> bytes:
    return (";".join(f.HEADER) + "\n").encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "fichier vide"),
        (b"adherent_number;rank\n", "colonnes manquantes"),
        (b"\xff\xfe" + _header_line(), "encodage invalide"),
        (
            _header_line() + b"A1;1;185037599900118;1985-03-01;Caf\xe9;Anne;ESS;2026-01-01;\n",
            "ligne 2 : encodage",
        ),
        (
            _header_line()
            + b"A1;1;185037599900118;1985-03-01;Durand;Anne;ESS;2026-01-01;\nA2;1;1850",
            "fichier tronqué",
        ),
        (
            _header_line() + b"A1;1;185037599900118;" + b"x" * 10_000_000 + b";\n",
            "ligne trop longue",
        ),
    ],
)
async def test_malformed_files_leave_the_database_as_it_was(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path, content: bytes, message: str
) -> None:
    await _import(rt, f.write_file(tmp_path / "ok.csv", f.people(4)), insurer.amc_number)
    before = await _snapshot(rt)
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=message):
        await _import(rt, path, insurer.amc_number)
    assert await _snapshot(rt) == before


async def test_a_last_line_without_newline_is_refused_as_truncated(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    """Cut right after a separator, a line still has its nine fields (an empty valid_to would
    read as open-ended rights): so every line must end with a newline."""
    path = f.write_file(tmp_path / "b.csv", f.people(2))
    path.write_bytes(path.read_bytes().rstrip(b"\r\n").rsplit(b";", 1)[0] + b";")
    with pytest.raises(FileFormatError, match="ligne 3 : fichier tronqué"):
        await _import(rt, path, insurer.amc_number)
    assert await _count(rt) == 0


async def test_header_only_file_is_refused_and_closes_nothing(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    await _import(rt, f.write_file(tmp_path / "ok.csv", f.people(4)), insurer.amc_number)
    with pytest.raises(FileFormatError, match="aucun bénéficiaire"):
        await _import(rt, f.write_file(tmp_path / "empty.csv", []), insurer.amc_number)
    assert await _count(rt, beneficiary.c.closed_on.is_not(None)) == 0


async def test_a_file_closing_too_many_rights_needs_accept_closures(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    from rempart.services.beneficiaries import MassClosure

    persons = f.people(20)
    await _import(rt, f.write_file(tmp_path / "v1.csv", persons), insurer.amc_number)
    partial = f.write_file(tmp_path / "v2.csv", persons[:10])  # half of the people missing
    with pytest.raises(MassClosure, match="10 bénéficiaires sur 20"):
        await _import(rt, partial, insurer.amc_number)
    assert await _count(rt, beneficiary.c.closed_on.is_not(None)) == 0
    s = await _import(rt, partial, insurer.amc_number, accept_closures=True)
    assert (s.status, s.rows_closed) == ("committed", 10)


async def test_duplicate_across_batches_is_found(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    persons = f.people(2600)
    persons[2500].adherent_number = persons[10].adherent_number
    persons[2500].birth_date = persons[10].birth_date
    s = await _import(rt, f.write_file(tmp_path / "b.csv", persons), insurer.amc_number)
    assert (s.status, s.rows_rejected) == ("rejected", 1)
    assert s.first_rejects[0].line == 2502
    assert await _count(rt) == 0


async def test_a_crash_mid_import_is_recorded_as_failed(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    from sqlalchemy import text

    async with rt.db.transaction() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER boom BEFORE INSERT ON beneficiary FOR EACH ROW EXECUTE FUNCTION boom()"
            )
        )
    with pytest.raises(Exception, match="disk full"):
        await _import(rt, f.write_file(tmp_path / "b.csv", f.people(3)), insurer.amc_number)
    async with rt.db.transaction() as conn:
        recorded = (
            await conn.execute(select(beneficiary_import.c.status, beneficiary_import.c.rows_new))
        ).all()
        results = (
            (
                await conn.execute(
                    select(audit_event.c.result).where(
                        audit_event.c.purpose == "beneficiary_import"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [tuple(r) for r in recorded] == [("failed", 0)]
    assert results == ["failed"]


async def test_committed_import_and_its_audit_row_are_one_transaction(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    s = await _import(rt, f.write_file(tmp_path / "b.csv", f.people(3)), insurer.amc_number)
    async with rt.db.transaction() as conn:
        event = (
            await conn.execute(select(audit_event).where(audit_event.c.subject_id == s.import_id))
        ).one()
    assert (event.result, event.purpose, event.ocam_id) == (
        "committed",
        "beneficiary_import",
        insurer.id,
    )


async def test_an_insurer_cannot_import_for_another_ocam(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    from rempart.domain.errors import InvalidFields
    from rempart.domain.roles import Role
    from rempart.security.principal import ActorKind, Principal

    other = await f.insurer(rt, "900000303", "Autre")
    someone = Principal(ActorKind.ACCOUNT, None, "organisme.autre", Role.INSURER, ocam_id=other.id)
    with pytest.raises(InvalidFields):
        await import_beneficiaries(
            rt,
            f.write_file(tmp_path / "b.csv", f.people(2)),
            amc_number=insurer.amc_number,
            actor=someone,
        )
    async with rt.db.transaction() as conn:
        refused = (
            (
                await conn.execute(
                    select(audit_event.c.actor_label).where(
                        audit_event.c.purpose == "beneficiary_import",
                        audit_event.c.result == "refused",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert refused == ["organisme.autre"]
    assert await _count(rt) == 0


async def test_a_file_without_header_does_not_echo_its_first_person(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    persons = f.people(2)
    path = tmp_path / "nohead.csv"
    path.write_text("".join(";".join(p.row()) + "\n" for p in persons))
    with pytest.raises(FileFormatError) as e:
        await _import(rt, path, insurer.amc_number)
    assert "première ligne doit être l'en-tête" in e.value.message
    for value in (persons[0].nir, persons[0].last_name, persons[0].first_name):
        assert value.lower() not in e.value.message.lower()


async def test_unknown_ocam_is_a_field_error(rt: Runtime, tmp_path: Path) -> None:
    from rempart.domain.errors import InvalidFields

    with pytest.raises(InvalidFields) as e:
        await _import(rt, f.write_file(tmp_path / "b.csv", f.people(1)), "999999999")
    assert e.value.errors[0].field == "amc"


async def test_fields_are_stored_encrypted_and_decrypt_to_the_file(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    persons = f.people(3)
    await _import(rt, f.write_file(tmp_path / "b.csv", persons), insurer.amc_number)
    async with rt.db.transaction() as conn:
        rows = (await conn.execute(select(beneficiary))).all()
    stored = {
        rt.keys.decrypt("beneficiary", "nir", r.id, r.nir_enc): (
            rt.keys.decrypt("beneficiary", "last_name", r.id, r.last_name_enc),
            rt.keys.decrypt("beneficiary", "birth_date", r.id, r.birth_date_enc),
        )
        for r in rows
    }
    assert stored == {p.nir: (p.last_name, p.birth_date.isoformat()) for p in persons}
    assert all(p.nir.encode() not in r.nir_enc for p in persons for r in rows)


async def test_same_people_written_differently_are_unchanged_and_a_bad_row_still_rejects(
    rt: Runtime, insurer: f.Insurer, tmp_path: Path
) -> None:
    """A row is skipped unchecked only when its text gives the stored fingerprint: a NIR
    with spaces, a lower-case adherent number or a quoted field go through the checks and are
    found unchanged; a row made invalid since the last import is rejected."""
    persons = f.people(6)
    await _import(rt, f.write_file(tmp_path / "v1.csv", persons), insurer.amc_number)
    before = await _snapshot(rt)
    n = persons[0].nir
    persons[0].nir = f"{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:10]} {n[10:13]} {n[13:]}"
    persons[1].adherent_number = persons[1].adherent_number.lower()
    path = f.write_file(tmp_path / "v2.csv", persons)
    text = path.read_text().replace(persons[2].last_name, f'"{persons[2].last_name}"')
    path.write_text(text)
    s = await _import(rt, path, insurer.amc_number)
    assert (s.status, s.rows_unchanged, s.rows_changed, s.rows_new) == ("committed", 6, 0, 0)
    assert await _snapshot(rt) == before

    persons[3].contract_code = "GOLD"
    s = await _import(rt, f.write_file(tmp_path / "v3.csv", persons), insurer.amc_number)
    assert (s.status, [(r.line, r.field) for r in s.first_rejects]) == (
        "rejected",
        [(5, "contract_code")],
    )
