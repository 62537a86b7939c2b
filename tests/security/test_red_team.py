"""Red-team scenarios (exfiltration issue): a stolen API secret scraping, enumeration, canary
reads. Each prints what the attacker obtained before containment and how long containment took.

Run on PostgreSQL with the real services and API; answers past the soft ceiling are slowed in
production (``REMPART_QUOTA_SLOWDOWN_SECONDS``), set to zero here so the scrape runs fast.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from rempart.db.tables import api_client, containment, security_alert
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.registry import create_api_client
from rempart.services.runtime import Runtime
from rempart.web.app import create_app
from tests import factories as f

CARE = "2026-12-01"


def report(scenario: str, obtained: int, seconds: float | None, outcome: str | None = None) -> None:
    took = outcome or (
        "never contained" if seconds is None else f"contained after {seconds * 1000:.0f} ms"
    )
    sys.__stderr__.write(f"\n[red-team] {scenario}: {obtained} records obtained, {took}\n")  # type: ignore[union-attr]


class Attack:
    def __init__(
        self, http: httpx.AsyncClient, insurer: f.Insurer, persons: list[f.Person]
    ) -> None:
        self.http, self.insurer, self.persons = http, insurer, persons

    async def token(self, creds) -> str | None:  # type: ignore[no-untyped-def]
        r = await self.http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
            },
        )
        return r.json()["access_token"] if r.status_code == 200 else None

    async def check(self, token: str, body: dict[str, object]) -> httpx.Response:
        return await self.http.post(
            "/api/v1/rights-checks",
            json={**body, "domain": "PHAR", "care_date": CARE},
            headers={"Authorization": f"Bearer {token}"},
        )


@pytest.fixture
async def world(rt: Runtime, tmp_path: Path):  # type: ignore[no-untyped-def]
    rt.settings.quota_slowdown_seconds = 0
    insurer = await f.insurer(rt)
    persons = f.people(2000, seed=21)
    await import_beneficiaries(
        rt, f.write_file(tmp_path / "b.csv", persons), amc_number=insurer.amc_number, actor=f.ACTOR
    )
    app = create_app(rt.settings, runtime=rt)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:
        yield rt, Attack(http, insurer, persons)


async def _scrape(
    attack: Attack, token: str, bodies: list[dict[str, object]]
) -> tuple[int, int, float | None]:
    """(records obtained, requests answered, seconds from the start of the scrape to its first
    refusal, or None if never refused)."""
    obtained = answered = 0
    started = time.perf_counter()
    for body in bodies:
        r = await attack.check(token, body)
        if r.status_code != 200:
            return obtained, answered, time.perf_counter() - started
        answered += 1
        obtained += r.json()["status"] != "unknown"
    return obtained, answered, None


async def test_stolen_secret_scraping_is_contained_at_the_hard_ceiling(world) -> None:  # type: ignore[no-untyped-def]
    rt, attack = world
    big = await f.insurer(rt, "900000505", "Grande Mutuelle")
    population = f.people(100_000, seed=41, prefix="G")
    await import_beneficiaries(
        rt,
        f.write_file(Path(rt.settings.data_dir) / "big.csv", population),
        amc_number=big.amc_number,
        actor=f.ACTOR,
    )
    thief = await f.professional(rt, seed=31, name="Pharmacie Volée")
    token = await attack.token(thief.client)
    bodies = [p.card(big.amc_number) for p in random.Random(3).sample(population, 700)]
    obtained, answered, took = await _scrape(attack, token, bodies)
    report("(b) stolen API secret, scraping", obtained, took)
    assert answered == 600  # pharmacy hard ceiling: the 601st distinct person is refused
    assert obtained == 600  # all of them real people of the base: the ceiling is exact
    r = await attack.check(token, bodies[0])  # even a person already read: frozen
    assert r.status_code == 401
    assert await attack.token(thief.client) is None  # no new token either
    async with rt.db.transaction() as conn:
        kinds = (
            (await conn.execute(select(security_alert.c.kind).order_by(security_alert.c.kind)))
            .scalars()
            .all()
        )
        contained = (
            await conn.execute(
                select(api_client.c.contained_at).where(api_client.c.id == thief.client.id)
            )
        ).scalar_one()
    assert kinds == ["hard_quota", "soft_quota"]
    assert contained is not None


async def test_enumeration_counts_unknown_answers_and_is_contained(world) -> None:  # type: ignore[no-untyped-def]
    rt, attack = world
    thief = await f.professional(rt, seed=32, name="Pharmacie Curieuse")
    token = await attack.token(thief.client)
    rng = random.Random(5)
    p = attack.persons[0]
    guesses = [
        {
            "amc_number": attack.insurer.amc_number,
            "adherent_number": f"{rng.randint(10**8, 10**9)}",
            "birth_date": (date(1950, 1, 1).toordinal() + rng.randint(0, 20000)),
            "rank": 1,
        }
        for _ in range(650)
    ]
    bodies = [{**g, "birth_date": date.fromordinal(g["birth_date"]).isoformat()} for g in guesses]  # type: ignore[arg-type]
    bodies[10] = p.card(attack.insurer.amc_number)
    other = await f.insurer(rt, "900000404", "Autre")
    bodies[11] = p.card(other.amc_number)  # the same person looked up at another insurer
    answers = [await attack.check(token, b) for b in bodies[:12]]
    unknown = [a.json() for a in answers if a.json()["status"] == "unknown"]
    assert len(unknown) == 11
    assert (
        len({tuple((k, v) for k, v in a.items() if k != "verification_id") for a in unknown}) == 1
    )
    obtained, answered, took = await _scrape(attack, token, bodies[12:])
    report("(c) enumeration of adherent numbers and birth dates", obtained + 1, took)
    assert answered + 12 == 600


async def test_a_canary_read_contains_at_once_and_the_rest_of_the_structure_keeps_working(
    world, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    rt, attack = world
    victim = await f.professional(rt, seed=33, name="Pharmacie du Canari")
    colleague = await create_api_client(
        rt, structure_id=victim.structure_id, name="Second poste", actor=f.ACTOR
    )
    canary = f.people(1, seed=77, prefix="C")[0]
    await import_beneficiaries(
        rt,
        f.write_file(tmp_path / "c.csv", [*attack.persons, canary]),
        amc_number=attack.insurer.amc_number,
        actor=f.ACTOR,
    )

    await f.make_canary(rt, attack.insurer.amc_number, canary)
    token = await attack.token(victim.client)
    other = await attack.token(colleague)
    started = time.perf_counter()
    first = await attack.check(token, canary.card(attack.insurer.amc_number))
    assert first.status_code == 200  # the tripwire does not show itself
    after = await attack.check(token, attack.persons[0].card(attack.insurer.amc_number))
    elapsed = time.perf_counter() - started
    report("(e) canary read", 1, elapsed)
    assert after.status_code == 401
    assert elapsed < 5
    ok = [await attack.check(other, p.card(attack.insurer.amc_number)) for p in attack.persons[:50]]
    assert [r.status_code for r in ok] == [200] * 50  # the colleague's software keeps working
    async with rt.db.transaction() as conn:
        reasons = (await conn.execute(select(containment.c.reason))).scalars().all()
    assert reasons == ["canary"]


async def test_a_security_officer_sees_whom_it_touched_and_two_lift_it(world) -> None:  # type: ignore[no-untyped-def]
    from rempart.domain.errors import Forbidden, FourEyesViolation
    from rempart.domain.roles import Role
    from rempart.services import security_ops
    from rempart.services.registry import create_account, operator_principal

    rt, attack = world
    rt.settings.quota_ceilings = {"pharmacy": (5, 10)}
    thief = await f.professional(rt, seed=34, name="Pharmacie Levée")
    token = await attack.token(thief.client)
    bodies = [p.card(attack.insurer.amc_number) for p in attack.persons[:12]]
    bodies[3] = {**bodies[3], "adherent_number": "GUESS1"}
    _, answered, _ = await _scrape(attack, token, bodies)
    assert answered == 10
    for name in ("sec.un", "sec.deux"):
        await create_account(
            rt,
            username=name,
            display_name=name,
            email=f"{name}@op.example",
            role=Role.SECURITY,
            actor=f.ACTOR,
        )
    one, two = await operator_principal(rt, "sec.un"), await operator_principal(rt, "sec.deux")
    [hard] = [a for a in await security_ops.alerts(rt, actor=one) if a.kind == "hard_quota"]
    scope = await security_ops.touched(rt, hard.id, actor=one)
    # 10 answered (9 people, 1 guess); the 11th was refused unread, so it is not in the scope
    assert (len(scope.beneficiary_ids), scope.unknown_cards) == (9, 1)
    with pytest.raises(Forbidden):
        await security_ops.touched(rt, hard.id, actor=f.ACTOR)  # a shell without --actor: no
    async with rt.db.transaction() as conn:
        cid = (await conn.execute(select(containment.c.id))).scalar_one()
    assert (await security_ops.lift(rt, cid, actor=one)).status == "requested"
    with pytest.raises(FourEyesViolation):
        await security_ops.lift(rt, cid, actor=one)
    assert await attack.token(thief.client) is None  # still contained
    lifted = await security_ops.lift(rt, cid, actor=two)
    assert lifted.status == "lifted"
    assert await attack.token(thief.client) is None  # the leaked secret stays worthless
    from dataclasses import replace

    renewed = replace(thief.client, client_secret=lifted.new_client_secret)
    token = await attack.token(renewed)
    assert token is not None
    r = await attack.check(token, attack.persons[20].card(attack.insurer.amc_number))
    assert r.status_code == 200  # the count restarted: the practice works again at once


async def test_an_edited_audit_row_fails_verify_naming_it(world) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from rempart.db.tables import audit_event
    from rempart.services import audit_log

    rt, attack = world
    pro = await f.professional(rt, seed=35, name="Pharmacie Témoin")
    token = await attack.token(pro.client)
    answers = [
        await attack.check(token, p.card(attack.insurer.amc_number)) for p in attack.persons[:5]
    ]
    await audit_log.checkpoint_all(rt)
    assert (await audit_log.verify(rt)).ok
    target = answers[2].json()["verification_id"]
    async with rt.db.transaction() as conn:  # an insider hides one read of a person
        await conn.execute(
            update(audit_event).where(audit_event.c.id == target).values(subject_id=None)
        )
    report = await audit_log.verify(rt)
    report_line = next(p for p in report.problems if target in p)
    sys.__stderr__.write(f"\n[red-team] (f) edited audit row: verify says «{report_line}»\n")  # type: ignore[union-attr]
    assert "modifié" in report_line


async def test_brute_force_on_tokens_is_rate_limited_per_ip(world) -> None:  # type: ignore[no-untyped-def]
    rt, attack = world
    rt.settings.token_requests_per_ip_per_s, rt.settings.token_requests_per_ip_burst = 1.0, 30
    pro = await f.professional(rt, seed=36, name="Pharmacie Ciblée")
    codes = []
    for i in range(40):  # guessing secrets as fast as possible from one address
        r = await attack.http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": pro.client.client_id,
                "client_secret": f"guess-{i}",
            },
        )
        codes.append(r.status_code)
    assert codes[:31] == [401] * 31  # the request plus a burst of 30
    assert set(codes[31:]) == {429}
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["code"] == "rate_limited"
    sys.__stderr__.write(  # type: ignore[union-attr]
        f"\n[red-team] (g) secret guessing from one address: {codes.count(401)} guesses answered, "
        f"then {codes.count(429)} refused (429)\n"
    )
    app = create_app(rt.settings, runtime=rt)
    elsewhere = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://localhost") as other:
        ok = await other.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": pro.client.client_id,
                "client_secret": pro.client.client_secret,
            },
        )
    assert ok.status_code == 200  # the practice's own software, from its own address, still works


async def test_a_flood_of_bad_bearer_tokens_is_rate_limited(world) -> None:  # type: ignore[no-untyped-def]
    rt, attack = world
    rt.settings.bad_tokens_per_ip_per_s, rt.settings.bad_tokens_per_ip_burst = 1.0, 30
    codes = [
        (
            await attack.check(f"forged-{i}", attack.persons[0].card(attack.insurer.amc_number))
        ).status_code
        for i in range(35)
    ]
    assert codes[:31] == [401] * 31
    assert set(codes[31:]) == {429}


async def test_a_canary_engagement_in_a_dump_names_the_credential(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import delete

    from rempart.db.tables import engagement
    from rempart.domain.roles import Role
    from rempart.services import security_ops
    from rempart.services.registry import create_account, operator_principal

    rt, attack = world
    canary = attack.persons[7]
    await f.make_canary(rt, attack.insurer.amc_number, canary)
    leaker = await f.professional(rt, seed=37, name="Pharmacie Fuite")
    honest = await f.professional(rt, seed=38, name="Pharmacie Honnête")
    answer = (
        await attack.check(
            await attack.token(leaker.client), canary.card(attack.insurer.amc_number)
        )
    ).json()
    normal = (
        await attack.check(
            await attack.token(honest.client), attack.persons[0].card(attack.insurer.amc_number)
        )
    ).json()
    number = answer["engagement_number"]
    assert len(number) == len(normal["engagement_number"]) and number.startswith(
        "E"
    )  # looks like any other
    async with rt.db.transaction() as conn:  # the attacker wiped the engagement table
        await conn.execute(delete(engagement))
    await create_account(
        rt,
        username="sec.trois",
        display_name="x",
        email="x@op.example",
        role=Role.SECURITY,
        actor=f.ACTOR,
    )
    officer = await operator_principal(rt, "sec.trois")
    assert await security_ops.identify(rt, number, actor=officer) == [leaker.client.client_id]
    assert await security_ops.identify(rt, normal["engagement_number"], actor=officer) == []
