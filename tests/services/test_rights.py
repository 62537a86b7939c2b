"""The rights check as a use case, on PostgreSQL: decisions, audit rows, engagements, relationships."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from rempart.access import Card
from rempart.db.tables import audit_event, care_relationship, engagement
from rempart.domain.care import CareDomain, Profession
from rempart.domain.channels import Channel
from rempart.domain.errors import ChannelClosed, Forbidden, InvalidFields
from rempart.domain.identifiers import parse_nir
from rempart.domain.rights import Status
from rempart.security.principal import Principal
from rempart.services import auth, channels
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.rights import RightsQuery, check_rights
from rempart.services.runtime import Runtime
from tests import factories as f

CARE = date(2026, 12, 1)


class World:
    def __init__(
        self,
        rt: Runtime,
        insurer: f.Insurer,
        other: f.Insurer,
        persons: list[f.Person],
        pharmacy: Principal,
        optician: Principal,
    ) -> None:
        self.rt, self.insurer, self.other, self.persons = rt, insurer, other, persons
        self.pharmacy, self.optician = pharmacy, optician

    def card(self, p: f.Person, *, amc: str | None = None, nir: str | None = None) -> Card:
        return Card(
            amc or self.insurer.amc_number,
            p.adherent_number,
            p.birth_date,
            p.rank,
            parse_nir(nir) if nir else None,
        )

    async def check(
        self,
        card: Card,
        domain: CareDomain = CareDomain.PHAR,
        *,
        who: Principal | None = None,
        care: date = CARE,
    ):  # type: ignore[no-untyped-def]
        return await check_rights(
            self.rt,
            RightsQuery(card, domain, care),
            actor=who or self.pharmacy,
            channel=Channel.API_RIGHTS,
        )


async def _principal(rt: Runtime, pro: f.Professional) -> Principal:
    issued = await auth.issue_token(rt, pro.client.client_id, pro.client.client_secret)
    return await auth.authenticate(rt, issued.access_token)


@pytest.fixture
async def world(rt: Runtime, tmp_path: Path) -> World:
    insurer = await f.insurer(rt)
    other = await f.insurer(rt, "900000202", "Autre Mutuelle")
    persons = f.people(6)
    persons[1].valid_to = date(2026, 6, 30)  # lapsed
    await import_beneficiaries(
        rt, f.write_file(tmp_path / "b.csv", persons), amc_number=insurer.amc_number, actor=f.ACTOR
    )
    pharmacy = await _principal(rt, await f.professional(rt))
    optician = await _principal(
        rt, await f.professional(rt, Profession.OPTICIAN, seed=4, name="Optique Test")
    )
    return World(rt, insurer, other, persons, pharmacy, optician)


async def _rows(rt: Runtime, table, *where):  # type: ignore[no-untyped-def]
    async with rt.db.transaction() as conn:
        return (await conn.execute(select(table).where(*where))).all()


async def test_covered_opens_relationship_and_engagement(world: World) -> None:
    p = world.persons[0]
    answer = await world.check(world.card(p))
    assert answer.status is Status.COVERED
    assert answer.guarantee is not None and answer.guarantee.rate_pct == 100
    assert answer.valid_until == CARE + timedelta(days=15)
    assert answer.engagement_number and len(answer.engagement_number) == 27
    [eng] = await _rows(world.rt, engagement)
    assert (eng.number, eng.structure_id, eng.valid_until) == (
        answer.engagement_number,
        world.pharmacy.structure_id,
        answer.valid_until,
    )
    [rel] = await _rows(world.rt, care_relationship)
    assert rel.beneficiary_id == eng.beneficiary_id
    assert rel.expires_at - rel.opened_at == timedelta(days=90)
    [event] = await _rows(world.rt, audit_event, audit_event.c.purpose == "rights_check")
    assert event.id == answer.verification_id
    assert (event.result, event.subject_id, event.categories, event.actor_kind) == (
        "covered",
        eng.beneficiary_id,
        "coverage",
        "client",
    )
    assert event.actor_id == world.pharmacy.id and event.structure_id == world.pharmacy.structure_id


async def test_second_check_extends_the_relationship(world: World, clock) -> None:  # type: ignore[no-untyped-def]
    await world.check(world.card(world.persons[0]))
    clock.advance(days=10)
    await world.check(world.card(world.persons[0]), care=date(2026, 12, 11))
    [rel] = await _rows(world.rt, care_relationship)
    assert rel.expires_at == clock.now + timedelta(days=90)
    assert len(await _rows(world.rt, engagement)) == 2


async def test_not_covered_and_unknown_open_nothing(world: World) -> None:
    lapsed = await world.check(world.card(world.persons[1]))
    no_domain = await world.check(world.card(world.persons[0]), CareDomain.OPTI, who=world.optician)
    unknown = await world.check(Card(world.insurer.amc_number, "ZZZ999", date(1980, 1, 1)))
    assert lapsed.status is Status.NOT_COVERED
    # every demo contract covers OPTI; an optician sees covered for the right person
    assert no_domain.status is Status.COVERED
    assert unknown.status is Status.UNKNOWN
    assert (
        unknown.guarantee is None
        and unknown.engagement_number is None
        and unknown.valid_until is None
    )
    assert len(await _rows(world.rt, engagement)) == 1
    events = await _rows(world.rt, audit_event, audit_event.c.purpose == "rights_check")
    assert sorted(e.result for e in events) == ["covered", "not_covered", "unknown"]
    assert [e.subject_id for e in events if e.result == "unknown"] == [None]


async def test_other_ocam_wrong_rank_and_wrong_nir_look_exactly_unknown(world: World) -> None:
    p = world.persons[0]
    variants = [
        world.card(p, amc=world.other.amc_number),  # same adherent number at another insurer
        Card(world.insurer.amc_number, p.adherent_number, p.birth_date, 2),
        Card(world.insurer.amc_number, p.adherent_number, p.birth_date + timedelta(days=1), 1),
        world.card(p, nir=world.persons[2].nir),
    ]
    answers = [await world.check(c) for c in variants]
    assert {a.status for a in answers} == {Status.UNKNOWN}
    shapes = {(a.guarantee, a.engagement_number, a.valid_until) for a in answers}
    assert shapes == {(None, None, None)}
    assert (await world.check(world.card(p, nir=p.nir))).status is Status.COVERED


async def test_domain_outside_profession_is_refused_and_audited(world: World) -> None:
    with pytest.raises(Forbidden) as e:
        await world.check(world.card(world.persons[0]), CareDomain.OPTI)
    assert e.value.errors[0].field == "domain"
    [event] = await _rows(world.rt, audit_event, audit_event.c.purpose == "rights_check")
    assert (event.result, event.subject_id) == ("refused", None)
    assert len(await _rows(world.rt, care_relationship)) == 0


async def test_care_date_in_the_future_is_a_field_error(world: World) -> None:
    with pytest.raises(InvalidFields) as e:
        await world.check(world.card(world.persons[0]), care=date(2026, 12, 10))
    assert e.value.errors[0].field == "care_date"


async def test_closed_channel_refuses_before_reading(world: World) -> None:
    await channels.switch(
        world.rt, Channel.API_RIGHTS, open_=False, reason="Maintenance", actor=f.ACTOR
    )
    with pytest.raises(ChannelClosed) as e:
        await world.check(world.card(world.persons[0]))
    assert e.value.retry_after_seconds == 300
    [refusal] = await _rows(world.rt, audit_event, audit_event.c.purpose == "rights_check")
    # refused before any lookup: audited, with nobody as its subject
    assert (refusal.result, refusal.subject_id, refusal.detail) == (
        "refused",
        None,
        '{"reason": "channel_closed"}',
    )
    # the portal channel is a different switch
    answer = await check_rights(
        world.rt,
        RightsQuery(world.card(world.persons[0]), CareDomain.PHAR, CARE),
        actor=world.pharmacy,
        channel=Channel.PORTAL_RIGHTS,
    )
    assert answer.status is Status.COVERED


async def _fail_inserts_into(rt: Runtime, table: str) -> None:
    async with rt.db.transaction() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'store unavailable'; END $$"
            )
        )
        await conn.execute(
            text(
                f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
            )
        )


async def test_if_the_audit_write_fails_no_personal_data_is_returned(world: World) -> None:
    """DESIGN §4.3: no answer leaves without its audit row."""
    await _fail_inserts_into(world.rt, "audit_event")
    with pytest.raises(Exception, match="store unavailable"):
        await world.check(world.card(world.persons[0]))
    assert await _rows(world.rt, engagement) == []
    assert await _rows(world.rt, care_relationship) == []


async def test_the_audit_row_and_the_read_are_one_transaction(world: World) -> None:
    """A failure after the audit insert (here, the engagement) takes the audit row with it:
    they commit together or not at all."""
    await _fail_inserts_into(world.rt, "engagement")
    with pytest.raises(Exception, match="store unavailable"):
        await world.check(world.card(world.persons[0]))
    assert await _rows(world.rt, audit_event, audit_event.c.purpose == "rights_check") == []
    assert await _rows(world.rt, care_relationship) == []


async def test_a_wrong_nir_is_audited_against_the_card_it_probed(world: World) -> None:
    p = world.persons[0]
    answer = await world.check(world.card(p, nir=world.persons[2].nir))
    assert answer.status is Status.UNKNOWN
    [event] = await _rows(world.rt, audit_event, audit_event.c.purpose == "rights_check")
    assert event.subject_id is not None
    assert (event.result, event.categories, event.detail) == (
        "unknown",
        "",
        '{"domain": "PHAR", "nir_mismatch": true}',
    )


async def test_a_canary_card_with_a_wrong_nir_still_trips_containment(world: World) -> None:

    from rempart.db.tables import containment

    p = world.persons[3]
    await f.make_canary(world.rt, world.insurer.amc_number, p)
    answer = await world.check(world.card(p, nir=world.persons[0].nir))
    assert answer.status is Status.UNKNOWN
    assert [r.reason for r in await _rows(world.rt, containment)] == ["canary"]


async def test_new_bank_details_pay_after_five_business_days(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from rempart.db.tables import bank_account

    clock.now = datetime(2026, 12, 23, 15, 0, tzinfo=UTC)  # a Wednesday before Christmas
    pro = await f.professional(rt, seed=9, name="Pharmacie Nouvelle")
    [account] = await _rows(rt, bank_account, bank_account.c.structure_id == pro.structure_id)
    # Thu 24, (Fri 25 holiday), Mon 28, Tue 29, Wed 30, Thu 31 → from Thursday 31 at 00:00 Paris
    assert account.pays_from == datetime(2026, 12, 30, 23, 0, tzinfo=UTC)


async def test_usual_checks_take_the_two_statement_path(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A covered, a not-covered and an unknown check, a card seen twice: each is answered by
    ``access.check_rights_counted`` (two statements), none falls back to the general path."""
    from rempart.services import rights

    answered: list[bool] = []
    counted = rights.check_rights_counted

    async def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        done = await counted(*args, **kwargs)
        answered.append(done is not None)
        return done

    monkeypatch.setattr(rights, "check_rights_counted", spy)
    p = world.persons
    unknown = f.Person(**{**p[0].__dict__, "adherent_number": "X000000001"})
    for card in (world.card(p[0]), world.card(p[1]), world.card(unknown), world.card(p[0])):
        await world.check(card)
    assert answered == [True, True, True, True]
