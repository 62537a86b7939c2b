"""Use case: seed a demo installation (``rempart demo``, DESIGN §5).

Several OCAMs with contracts, N beneficiaries imported through the same beneficiary-file
import as an insurer's (one file per OCAM, written to the data dir), PS structures of every
profession with members and bank details already past their cooling-off, API clients, operator
accounts, and canary records that no legitimate flow reaches. Deterministic for a given seed
(except random UUIDs and one-time invitation tokens, which must never be predictable).
"""

from __future__ import annotations

import csv
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from rempart.db.tables import beneficiary, ocam, setting
from rempart.domain.beneficiary_file import COLUMNS
from rempart.domain.care import Profession
from rempart.domain.roles import Role
from rempart.security.principal import Principal, system
from rempart.security.pseudonyms import card_index
from rempart.services import demo_data as dd
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.registry import (
    BankDetails,
    create_account,
    create_api_client,
    create_contract,
    create_ocam,
    create_structure,
)
from rempart.services.runtime import Runtime

DEMO_MARKER = "demo_seed"
# Ages are drawn relative to a fixed day, so that a seed gives the same people on any day.
BIRTHS_RELATIVE_TO = date(2026, 1, 1)
CANARIES_PER_OCAM = 3
BENCH_QUOTA = 1_000_000_000

STRUCTURES = (
    (Profession.PHARMACY, "Pharmacie du Marché", "75"),
    (Profession.PHARMACY, "Pharmacie de la Gare", "69"),
    (Profession.PHARMACY, "Grande Pharmacie du Port", "13"),
    (Profession.OPTICIAN, "Optique Lumière", "33"),
    (Profession.OPTICIAN, "Les Lunettes de Margaux", "59"),
    (Profession.DENTIST, "Cabinet dentaire des Lilas", "67"),
    (Profession.AUDIOLOGIST, "Audition Claire", "44"),
    (Profession.LABORATORY, "Laboratoire BioSud", "31"),
    (Profession.HOSPITAL, "Clinique Saint-Exupéry", "31"),
    (Profession.PHYSICIAN, "Cabinet du Dr Roussel", "35"),
)

OPERATORS = (
    ("agent.martin", Role.AGENT, "Claire Martin"),
    ("paiements.durand", Role.PAYMENTS, "Hugo Durand"),
    ("paiements.leroy", Role.PAYMENTS, "Inès Leroy"),
    ("securite.bernard", Role.SECURITY, "Paul Bernard"),
    ("securite.moreau", Role.SECURITY, "Zoé Moreau"),  # a second pair of eyes for lifts
    ("admin.petit", Role.ADMIN, "Léa Petit"),
)


@dataclass
class DemoResult:
    beneficiaries: int = 0
    cards: list[dict[str, Any]] = field(default_factory=list)
    canaries: list[dict[str, Any]] = field(default_factory=list)
    clients: list[dict[str, Any]] = field(default_factory=list)
    operators: list[dict[str, str]] = field(default_factory=list)
    contracts: list[dict[str, str]] = field(default_factory=list)
    invitations: list[tuple[str, str, str]] = field(default_factory=list)  # username, role, link


async def is_demo_database(rt: Runtime) -> bool | None:
    """True: a demo database; False: a database with other data; None: empty."""
    async with rt.db.transaction() as conn:
        marker = (
            await conn.execute(select(setting.c.value).where(setting.c.key == DEMO_MARKER))
        ).first()
        has_data = (await conn.execute(select(ocam.c.id).limit(1))).first() is not None
    if marker is not None:
        return True
    return False if has_data else None


def _write_file(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(COLUMNS)
        w.writerows(rows)


def _people(rng: random.Random, n: int, today: date, start_adherent: int) -> list[dict[str, Any]]:
    """Families of one to four, one in twenty with twins (same birth date, rank 2)."""
    people: list[dict[str, Any]] = []
    family = start_adherent
    while len(people) < n:
        family += 1
        adherent = f"{family * 2654435761 % 10**10:010d}"
        contract = rng.choice(dd.CONTRACTS)
        last = rng.choice(dd.LAST_NAMES)
        lapsed = rng.random() < 0.05
        valid_to = (
            date(2025, 6, 30) if lapsed else (date(2027, 12, 31) if rng.random() < 0.1 else None)
        )
        size = min(rng.choice((1, 2, 3, 4)), n - len(people))
        births: list[date] = []
        for member in range(size):
            twin = member >= 2 and rng.random() < 0.05 and births
            birth = births[-1] if twin else dd.birth_date(rng, today, child=member >= 2)
            rank = births.count(birth) + 1  # twins, or two children born the same day
            births.append(birth)
            people.append(
                {
                    "adherent": adherent,
                    "rank": rank,
                    "birth": birth,
                    "nir": dd.nir(rng, birth, rng.choice((1, 2))),
                    "last": last,
                    "first": rng.choice(dd.FIRST_NAMES),
                    "contract": contract,
                    "valid_from": dd.START,
                    "valid_to": valid_to,
                }
            )
    return people


async def seed(
    rt: Runtime,
    *,
    beneficiaries: int,
    seed: int,
    base_url: str,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoResult:
    rng = random.Random(seed)  # noqa: S311 — synthetic data, reproducible by design
    actor: Principal = system("demo")
    today = rt.today()
    out = DemoResult()
    files = rt.settings.data_dir / "demo"
    files.mkdir(parents=True, exist_ok=True)
    async with rt.db.transaction() as conn:
        await conn.execute(setting.insert().values(key=DEMO_MARKER, value=str(seed)))

    ocam_ids: dict[str, uuid.UUID] = {}
    for amc, name in dd.OCAMS:
        ocam_ids[amc] = await create_ocam(
            rt,
            amc_number=amc,
            name=name,
            actor=actor,
            ocam_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        )
        for c in dd.CONTRACTS:
            await create_contract(rt, ocam_id=ocam_ids[amc], contract_=c, actor=actor)
            out.contracts.append({"amc_number": amc, "contract_code": c.code})

    per_ocam = [beneficiaries // len(dd.OCAMS)] * len(dd.OCAMS)
    per_ocam[0] += beneficiaries - sum(per_ocam)
    done = 0
    for k, ((amc, _name), count) in enumerate(zip(dd.OCAMS, per_ocam, strict=True)):
        people = _people(rng, count, BIRTHS_RELATIVE_TO, start_adherent=k * 10**8)
        # Canaries: synthetic families of their own, open rights, never in cards.csv.
        canaries = [
            {
                **_people(rng, 1, BIRTHS_RELATIVE_TO, start_adherent=k * 10**8 + 9 * 10**7 + j)[0],
                "valid_to": None,
            }
            for j in range(CANARIES_PER_OCAM)
        ]
        path = files / f"beneficiaires-{amc}.csv"
        _write_file(path, [_file_row(p) for p in people + canaries])
        summary = await import_beneficiaries(
            rt,
            path,
            amc_number=amc,
            actor=actor,
            progress=(lambda n, _rows, a=amc: progress(f"import {a}", n, 0)) if progress else None,  # type: ignore[misc]
        )
        if summary.status != "committed":
            raise RuntimeError(f"demo import for {amc} failed: {summary.first_rejects[:3]}")
        done += summary.rows_new
        await _mark_canaries(rt, amc, canaries)
        for p in people:
            if p["valid_to"] is None or p["valid_to"] >= today:
                out.cards.append(_card(amc, p))
        out.canaries.extend(_card(amc, p) for p in canaries)
    out.beneficiaries = done - len(out.canaries)

    await _seed_structures(rt, rng, actor, out, base_url)
    for username, role, name in OPERATORS:
        acc = await create_account(
            rt,
            username=username,
            display_name=name,
            email=f"{username}@operateur.example",
            role=role,
            actor=actor,
        )
        out.operators.append({"username": username, "role": role.value})
        out.invitations.append(
            (username, role.value, f"{base_url}/inscription/{acc.invitation_token}")
        )
    for amc, name in dd.OCAMS:
        username = f"organisme.{amc}"
        acc = await create_account(
            rt,
            username=username,
            display_name=f"Gestion {name}",
            email=f"{username}@organisme.example",
            role=Role.INSURER,
            ocam_id=ocam_ids[amc],
            actor=actor,
        )
        out.operators.append({"username": username, "role": Role.INSURER.value})
        out.invitations.append(
            (username, Role.INSURER.value, f"{base_url}/inscription/{acc.invitation_token}")
        )
    return out


def _file_row(p: dict[str, Any]) -> list[str]:
    return [
        p["adherent"],
        str(p["rank"]),
        p["nir"],
        p["birth"].isoformat(),
        p["last"],
        p["first"],
        p["contract"].code,
        p["valid_from"].isoformat(),
        p["valid_to"].isoformat() if p["valid_to"] else "",
    ]


def _card(amc: str, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "amc_number": amc,
        "adherent_number": p["adherent"],
        "rank": p["rank"],
        "birth_date": p["birth"].isoformat(),
        "domains": "|".join(sorted(d.value for d in p["contract"].domains)),
    }


async def _mark_canaries(rt: Runtime, amc: str, canaries: list[dict[str, Any]]) -> None:
    bis = [card_index(rt.keys, amc, p["adherent"], p["birth"], p["rank"]) for p in canaries]
    async with rt.db.transaction() as conn:
        await conn.execute(
            update(beneficiary).where(beneficiary.c.card_bi.in_(bis)).values(is_canary=True)
        )


async def _seed_structures(
    rt: Runtime, rng: random.Random, actor: Principal, out: DemoResult, base_url: str
) -> None:
    past_cooling_off = rt.now() - timedelta(days=30)
    for i, (profession, name, dept) in enumerate(STRUCTURES):
        sid = await create_structure(
            rt,
            name=name,
            profession=profession,
            finess=dd.finess(rng, dept),
            siret=dd.siret(rng),
            rpps=dd.rpps(rng) if profession in (Profession.PHYSICIAN, Profession.DENTIST) else None,
            bank=BankDetails(dd.iban(rng), "ZZZZFRPP", name),
            pays_from=past_cooling_off,
            actor=actor,
            structure_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        )
        client = await create_api_client(
            rt,
            structure_id=sid,
            name=f"Logiciel de {name}",
            actor=actor,
            client_id=f"cli_{rng.getrandbits(96):024x}",
            client_secret=f"{rng.getrandbits(256):064x}",
        )
        out.clients.append(
            {
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "structure_id": str(sid),
                "profession": profession.value,
            }
        )
        if i == 0:  # the load-test client: ceilings raised so that containment does not trip
            bench = await create_api_client(
                rt,
                structure_id=sid,
                name="Client de charge (bench)",
                actor=actor,
                client_id=f"cli_bench_{rng.getrandbits(64):016x}",
                client_secret=f"{rng.getrandbits(256):064x}",
                quota_soft=BENCH_QUOTA,
                quota_hard=BENCH_QUOTA,
            )
            out.clients.append(
                {
                    "client_id": bench.client_id,
                    "client_secret": bench.client_secret,
                    "structure_id": str(sid),
                    "profession": profession.value,
                    "bench": True,
                }
            )
        slug = name.lower().split()[-1].replace("é", "e").replace("è", "e")
        for role, who in ((Role.TITULAIRE, "titulaire"), (Role.COLLABORATEUR, "collaborateur")):
            username = f"{who}.{slug}{i}"
            acc = await create_account(
                rt,
                username=username,
                display_name=f"{rng.choice(dd.FIRST_NAMES)} {rng.choice(dd.LAST_NAMES)}",
                email=f"{username}@ps.example",
                role=role,
                structure_id=sid,
                actor=actor,
            )
            out.invitations.append(
                (username, role.value, f"{base_url}/inscription/{acc.invitation_token}")
            )
    await create_structure(  # a canary PS and IBAN: no legitimate flow reaches them
        rt,
        name="Pharmacie des Ormes",
        profession=Profession.PHARMACY,
        finess=dd.finess(rng, "75"),
        siret=dd.siret(rng),
        bank=BankDetails(dd.iban(rng), "ZZZZFRPP", "Pharmacie des Ormes"),
        pays_from=past_cooling_off,
        is_canary=True,
        actor=actor,
        structure_id=uuid.UUID(int=rng.getrandbits(128), version=4),
    )


def export_fixtures(result: DemoResult, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cards = directory / "cards.csv"
    _write_cards(cards, result.cards)
    clients = directory / "clients.json"
    clients.write_text(json.dumps(result.clients, indent=2, ensure_ascii=False) + "\n")
    clients.chmod(0o600)
    operators = directory / "operators.json"
    operators.write_text(json.dumps(result.operators, indent=2) + "\n")
    contracts = directory / "contracts.csv"
    with contracts.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["amc_number", "contract_code"])
        w.writeheader()
        w.writerows(result.contracts)
    return [cards, clients, operators, contracts]


def export_canaries(result: DemoResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_cards(path, result.canaries)


def _write_cards(path: Path, cards: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=["amc_number", "adherent_number", "rank", "birth_date", "domains"]
        )
        w.writeheader()
        w.writerows(cards)
