"""Factories for test data, built through the services (never by writing rows by hand).

Every NIR, IBAN and name a factory makes is registered as sensitive: the session guard in
``conftest`` fails the run if one of them reaches a log line, and the at-rest tests look for
them in database dumps.
"""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from uuid import UUID

from rempart.domain.beneficiary_file import COLUMNS
from rempart.domain.care import Profession
from rempart.security.principal import system
from rempart.services import demo_data as dd
from rempart.services.registry import (
    BankDetails,
    ClientCredentials,
    create_api_client,
    create_contract,
    create_ocam,
    create_structure,
)
from rempart.services.runtime import Runtime

_SENSITIVE: dict[str, str] = {}  # value -> kind
ACTOR = system("tests")
HEADER = list(COLUMNS)  # the beneficiary file's required columns, in the documented order


def sensitive(kind: str, value: str) -> str:
    if len(value) >= 6:
        _SENSITIVE[value] = kind
    return value


def sensitive_values_in(text: str) -> list[str]:
    """Kinds of the registered values found in ``text``. Tokenised first: the suite registers
    hundreds of thousands of values and its log runs to megabytes."""
    words = set(re.findall(r"\w+", text))
    found = []
    for value, kind in _SENSITIVE.items():
        parts = re.findall(r"\w+", value)
        if parts and all(p in words for p in parts) and value in text:
            found.append(kind)
    return found


def all_sensitive() -> dict[str, str]:
    return dict(_SENSITIVE)


@dataclass
class Person:
    adherent_number: str
    rank: int
    nir: str
    birth_date: date
    last_name: str
    first_name: str
    contract_code: str = "ESS"
    valid_from: date = date(2024, 1, 1)
    valid_to: date | None = None

    def row(self) -> list[str]:
        return [
            self.adherent_number,
            str(self.rank),
            self.nir,
            self.birth_date.isoformat(),
            self.last_name,
            self.first_name,
            self.contract_code,
            self.valid_from.isoformat(),
            self.valid_to.isoformat() if self.valid_to else "",
        ]

    def card(self, amc_number: str) -> dict[str, object]:
        return {
            "amc_number": amc_number,
            "adherent_number": self.adherent_number,
            "birth_date": self.birth_date.isoformat(),
            "rank": self.rank,
        }


def people(
    n: int, *, seed: int = 7, today: date = date(2026, 12, 2), prefix: str = ""
) -> list[Person]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        birth = dd.birth_date(rng, today, child=False)
        last = f"{rng.choice(dd.LAST_NAMES)}{prefix}{i:05d}"  # unique, so that a leak is findable
        out.append(
            Person(
                adherent_number=f"{prefix}{rng.randint(10**8, 10**9 - 1)}{i:04d}"[-20:],
                rank=1,
                nir=sensitive("nir", dd.nir(rng, birth, rng.choice((1, 2)))),
                birth_date=birth,
                last_name=sensitive("last_name", last),
                first_name=sensitive("first_name", f"{rng.choice(dd.FIRST_NAMES)}{i:05d}"),
                contract_code=rng.choice(("ESS", "CONF", "SER")),
            )
        )
    return out


def write_file(
    path: Path, persons: list[Person], *, delimiter: str = ";", header: list[str] | None = None
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header or HEADER)
        w.writerows(p.row() for p in persons)
    return path


@dataclass
class Insurer:
    id: UUID
    amc_number: str


async def insurer(
    rt: Runtime, amc_number: str = "900000101", name: str = "Mutuelle Test"
) -> Insurer:
    oid = await create_ocam(rt, amc_number=amc_number, name=name, actor=ACTOR)
    for c in dd.CONTRACTS:
        await create_contract(rt, ocam_id=oid, contract_=c, actor=ACTOR)
    return Insurer(oid, amc_number)


@dataclass
class Professional:
    structure_id: UUID
    profession: Profession
    client: ClientCredentials
    iban: str = field(default="")


async def professional(
    rt: Runtime,
    profession: Profession = Profession.PHARMACY,
    *,
    seed: int = 3,
    name: str = "Pharmacie Test",
) -> Professional:
    rng = random.Random(seed)
    iban = sensitive("iban", dd.iban(rng))
    sid = await create_structure(
        rt,
        name=name,
        profession=profession,
        finess=dd.finess(rng),
        siret=dd.siret(rng),
        bank=BankDetails(iban, "ZZZZFRPP", sensitive("holder", f"Titulaire {name} {seed}")),
        actor=ACTOR,
    )
    client = await create_api_client(rt, structure_id=sid, name=f"LGO {name}", actor=ACTOR)
    return Professional(sid, profession, client, iban)


async def make_canary(rt: Runtime, amc_number: str, person: Person) -> None:
    """Mark an imported person as a canary, as the demo seeds them."""
    from sqlalchemy import update

    from rempart.db.tables import beneficiary
    from rempart.security.pseudonyms import card_index

    bi = card_index(rt.keys, amc_number, person.adherent_number, person.birth_date, person.rank)
    async with rt.db.transaction() as conn:
        await conn.execute(
            update(beneficiary).where(beneficiary.c.card_bi == bi).values(is_canary=True)
        )
