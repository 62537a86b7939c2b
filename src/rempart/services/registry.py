"""Use cases on the reference data: OCAMs, contracts and guarantee grids, PS structures with
their bank details, API clients, accounts with their one-time enrolment invitations.

Identifiers are validated by ``domain.identifiers``; IBANs and people's names are encrypted
with the row id bound into the ciphertext; secrets are returned once and stored hashed.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import holidays
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import (
    account,
    api_client,
    bank_account,
    contract,
    guarantee,
    invitation,
    ocam,
    structure,
)
from rempart.domain.calendar import add_business_days
from rempart.domain.care import Profession
from rempart.domain.coverage import Contract
from rempart.domain.errors import FieldError, Forbidden, InvalidFields, NotFound
from rempart.domain.identifiers import (
    IdentifierError,
    parse_amc_number,
    parse_bic,
    parse_finess,
    parse_iban,
    parse_rpps,
    parse_siret,
)
from rempart.domain.roles import OPERATOR_ROLES, PS_ROLES, Permission, Role
from rempart.security import audit, tokens
from rempart.security.principal import ActorKind, Principal
from rempart.security.pseudonyms import iban_index
from rempart.services.runtime import PARIS, Runtime

INVITATION_VALIDITY = timedelta(days=7)
IBAN_COOLING_OFF_BUSINESS_DAYS = 5  # DESIGN §5: new bank details pay after 5 business days


def cooling_off_end(rt: Runtime, now: datetime) -> datetime:
    """Midnight (Paris) at the start of the 5th business day after today: no transfer goes to
    new bank details before then."""
    today = now.astimezone(PARIS).date()
    end = add_business_days(today, IBAN_COOLING_OFF_BUSINESS_DAYS, holidays=french_holidays(today))
    return datetime.combine(end, time.min, tzinfo=PARIS).astimezone(UTC)


def french_holidays(around: date) -> Container[date]:
    return holidays.country_holidays("FR", years=range(around.year, around.year + 2))


def _need(actor: Principal, permission: Permission) -> None:
    if not actor.may(permission):
        raise Forbidden()


def _checked(field: str, parse: object, value: str, errors: list[FieldError]) -> str:
    try:
        out = parse(value)  # type: ignore[operator]
    except IdentifierError as e:
        errors.append(FieldError(field, e.reason))
        return value
    return out.value if hasattr(out, "value") else str(out)


NAME_CHARS_MAX = 200


def _name_ok(field: str, value: str, errors: list[FieldError]) -> None:
    if not value.strip():
        errors.append(FieldError(field, "obligatoire"))
    elif len(value) > NAME_CHARS_MAX:
        errors.append(FieldError(field, f"{NAME_CHARS_MAX} caractères au plus"))


async def create_ocam(
    rt: Runtime, *, amc_number: str, name: str, actor: Principal, ocam_id: UUID | None = None
) -> UUID:
    _need(actor, Permission.MANAGE_REGISTRY)
    errors: list[FieldError] = []
    number = _checked("amc_number", parse_amc_number, amc_number, errors)
    _name_ok("name", name, errors)
    if errors:
        raise InvalidFields(errors)
    new_id = ocam_id or uuid.uuid4()
    async with rt.db.transaction() as conn:
        await conn.execute(
            ocam.insert().values(id=new_id, amc_number=number, name=name, created_at=rt.now())
        )
        await _audit_change(conn, rt, actor, "ocam.create", "ocam", new_id)
    return new_id


async def create_contract(
    rt: Runtime, *, ocam_id: UUID, contract_: Contract, actor: Principal
) -> UUID:
    _need(actor, Permission.MANAGE_REGISTRY)
    new_id = uuid.uuid4()
    async with rt.db.transaction() as conn:
        await conn.execute(
            contract.insert().values(
                id=new_id,
                ocam_id=ocam_id,
                code=contract_.code,
                label=contract_.label,
                responsible=contract_.responsible,
                valid_from=contract_.valid_from,
                valid_to=contract_.valid_to,
                created_at=rt.now(),
            )
        )
        if contract_.guarantees:
            await conn.execute(
                guarantee.insert(),
                [
                    {
                        "id": uuid.uuid4(),
                        "contract_id": new_id,
                        "domain": g.domain.value,
                        "formula": g.formula.value,
                        "rate_pct": g.rate_pct,
                        "flat_amount_cents": g.flat_amount.cents if g.flat_amount else None,
                        "ceiling_amount_cents": g.ceiling_amount.cents
                        if g.ceiling_amount
                        else None,
                        "period": g.period.value,
                        "valid_from": g.valid_from,
                        "valid_to": g.valid_to,
                    }
                    for g in contract_.guarantees
                ],
            )
        await _audit_change(conn, rt, actor, "contract.create", "contract", new_id)
    return new_id


@dataclass(frozen=True, slots=True)
class BankDetails:
    iban: str
    bic: str
    holder: str


async def create_structure(
    rt: Runtime,
    *,
    name: str,
    profession: Profession,
    finess: str | None = None,
    siret: str | None = None,
    rpps: str | None = None,
    bank: BankDetails | None = None,
    pays_from: datetime | None = None,
    is_canary: bool = False,
    actor: Principal,
    structure_id: UUID | None = None,
) -> UUID:
    """A PS structure, with bank details whose cooling-off ends at ``pays_from`` (default: five
    French business days from today; the demo seeds details already past it)."""
    _need(actor, Permission.MANAGE_REGISTRY)
    errors: list[FieldError] = []
    _name_ok("name", name, errors)
    finess = _checked("finess", parse_finess, finess, errors) if finess else None
    siret = _checked("siret", parse_siret, siret, errors) if siret else None
    rpps = _checked("rpps", parse_rpps, rpps, errors) if rpps else None
    iban = bic = None
    if bank is not None:
        try:
            iban = parse_iban(bank.iban)
        except IdentifierError as e:
            errors.append(FieldError("bank.iban", e.reason))
        bic = _checked("bank.bic", parse_bic, bank.bic, errors)
    if errors:
        raise InvalidFields(errors)
    new_id = structure_id or uuid.uuid4()
    now = rt.now()
    async with rt.db.transaction() as conn:
        await conn.execute(
            structure.insert().values(
                id=new_id,
                name=name,
                profession=profession.value,
                finess=finess,
                siret=siret,
                rpps=rpps,
                is_canary=is_canary,
                created_at=now,
            )
        )
        if bank is not None and iban is not None and bic is not None:
            bank_id = uuid.uuid4()
            v = rt.keys.current_version
            await conn.execute(
                bank_account.insert().values(
                    id=bank_id,
                    structure_id=new_id,
                    iban_enc=rt.keys.encrypt("bank_account", "iban", bank_id, iban.value),
                    iban_bi=iban_index(rt.keys, iban.value),
                    iban_last4=iban.last4,
                    bic=bic,
                    holder_enc=rt.keys.encrypt("bank_account", "holder", bank_id, bank.holder),
                    status="active",
                    pays_from=pays_from or cooling_off_end(rt, now),
                    key_version=v,
                    is_canary=is_canary,
                    created_at=now,
                )
            )
        await _audit_change(conn, rt, actor, "structure.create", "structure", new_id)
    return new_id


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    id: UUID
    client_id: str
    client_secret: str  # shown once; only its keyed hash is stored


async def create_api_client(
    rt: Runtime,
    *,
    structure_id: UUID,
    name: str,
    actor: Principal,
    client_id: str | None = None,
    client_secret: str | None = None,
    quota_soft: int | None = None,
    quota_hard: int | None = None,
) -> ClientCredentials:
    _need(actor, Permission.MANAGE_REGISTRY)
    creds = ClientCredentials(
        uuid.uuid4(), client_id or tokens.new_client_id(), client_secret or tokens.new_secret()
    )
    async with rt.db.transaction() as conn:
        if (
            await conn.execute(select(structure.c.id).where(structure.c.id == structure_id))
        ).first() is None:
            raise NotFound()
        await conn.execute(
            api_client.insert().values(
                id=creds.id,
                client_id=creds.client_id,
                secret_hash=tokens.secret_hash(rt.keys, creds.client_secret),
                structure_id=structure_id,
                name=name,
                quota_soft=quota_soft,
                quota_hard=quota_hard,
                created_at=rt.now(),
            )
        )
        await _audit_change(conn, rt, actor, "api_client.create", "api_client", creds.id)
    return creds


@dataclass(frozen=True, slots=True)
class NewAccount:
    id: UUID
    username: str
    invitation_token: str  # the one-time enrolment link carries it; stored hashed


async def create_account(
    rt: Runtime,
    *,
    username: str,
    display_name: str,
    email: str,
    role: Role,
    structure_id: UUID | None = None,
    ocam_id: UUID | None = None,
    actor: Principal,
) -> NewAccount:
    _need(actor, Permission.MANAGE_ACCOUNTS)
    errors: list[FieldError] = []
    if role in PS_ROLES and structure_id is None:
        errors.append(FieldError("structure_id", "obligatoire pour un compte de professionnel"))
    if role is Role.INSURER and ocam_id is None:
        errors.append(FieldError("ocam_id", "obligatoire pour un compte d'organisme"))
    if role not in PS_ROLES | OPERATOR_ROLES:
        errors.append(FieldError("role", "rôle inconnu"))
    if errors:
        raise InvalidFields(errors)
    new_id, token, now = uuid.uuid4(), secrets.token_urlsafe(32), rt.now()
    k = rt.keys
    async with rt.db.transaction() as conn:
        await conn.execute(
            account.insert().values(
                id=new_id,
                username=username,
                display_name_enc=k.encrypt("account", "display_name", new_id, display_name),
                email_enc=k.encrypt("account", "email", new_id, email),
                role=role.value,
                structure_id=structure_id if role in PS_ROLES else None,
                ocam_id=ocam_id if role is Role.INSURER else None,
                key_version=k.current_version,
                created_at=now,
            )
        )
        await conn.execute(
            invitation.insert().values(
                id=uuid.uuid4(),
                account_id=new_id,
                token_hash=k.token_hash("invitation\x00" + token),
                expires_at=now + INVITATION_VALIDITY,
                created_at=now,
            )
        )
        await _audit_change(conn, rt, actor, "account.create", "account", new_id)
    return NewAccount(new_id, username, token)


@dataclass(frozen=True, slots=True)
class BankWatch:
    """Bank details an operator should look at: still in their cooling-off, under review (a
    returned transfer), or the same IBAN registered by several structures. Last four only."""

    bank_account_id: UUID
    structure_id: UUID
    structure_name: str
    iban_last4: str
    status: str  # active | review
    pays_from: datetime
    owners: int
    created_at: datetime

    def reasons(self, now: datetime) -> list[str]:
        found = []
        if self.pays_from > now:
            found.append("Délai de sécurité en cours")
        if self.status == "review":
            found.append("Virement rejeté : à vérifier")
        if self.owners > 1:
            found.append(f"IBAN déclaré par {self.owners} structures")
        return found


async def bank_watch(rt: Runtime, actor: Principal) -> list[BankWatch]:
    _need(actor, Permission.MANAGE_REGISTRY)
    now = rt.now()
    owners = (
        select(
            bank_account.c.iban_bi,
            func.count(func.distinct(bank_account.c.structure_id)).label("owners"),
        )
        .where(bank_account.c.status != "retired")
        .group_by(bank_account.c.iban_bi)
    ).subquery("owners")
    q = (
        select(
            bank_account.c.id, bank_account.c.structure_id, structure.c.name,
            bank_account.c.iban_last4, bank_account.c.status, bank_account.c.pays_from,
            owners.c.owners, bank_account.c.created_at,
        )
        .join(owners, owners.c.iban_bi == bank_account.c.iban_bi)
        .join(structure, structure.c.id == bank_account.c.structure_id)
        .where(
            bank_account.c.status != "retired",
            or_(
                bank_account.c.pays_from > now,
                bank_account.c.status == "review",
                owners.c.owners > 1,
            ),
        )
        .order_by(bank_account.c.created_at.desc())
        .limit(500)
    )  # fmt: skip
    async with rt.db.read() as conn:
        return [BankWatch(*r) for r in await conn.execute(q)]


async def operator_principal(rt: Runtime, username: str) -> Principal:
    """The ``--actor`` of a CLI command: an existing, enabled back-office account."""
    async with rt.db.transaction() as conn:
        row = (
            await conn.execute(
                select(
                    account.c.id, account.c.role, account.c.ocam_id, account.c.disabled_at
                ).where(account.c.username == username)
            )
        ).first()
    if row is None or row.disabled_at is not None or Role(row.role) not in OPERATOR_ROLES:
        raise InvalidFields(
            [FieldError("actor", "compte du back-office inconnu ou désactivé")],
            "L'acteur doit être un compte existant du back-office.",
        )
    return Principal(ActorKind.ACCOUNT, row.id, username, Role(row.role), ocam_id=row.ocam_id)


async def ocam_by_number(conn: AsyncConnection, amc_number: str) -> Any:
    return (await conn.execute(select(ocam).where(ocam.c.amc_number == amc_number))).first()


async def _audit_change(
    conn: AsyncConnection, rt: Runtime, actor: Principal, purpose: str, kind: str, subject: UUID
) -> None:
    await audit.record(
        conn,
        at=rt.now(),
        actor=actor,
        channel="cli" if actor.kind is ActorKind.SYSTEM else "backoffice",
        purpose=purpose,
        result="ok",
        subject_kind=kind,
        subject_id=subject,
    )


@dataclass(frozen=True, slots=True)
class StructureIds:
    finess: str | None
    rpps: str | None


async def own_identifiers(rt: Runtime, actor: Principal) -> StructureIds:
    """The caller's structure's FINESS and RPPS (public registry numbers, not personal data):
    what a FHIR ``Claim.provider`` or a ``PaymentReconciliation`` search names it by."""
    if actor.structure_id is None:
        return StructureIds(None, None)
    async with rt.db.read(replica_ok=True) as conn:
        row = (
            await conn.execute(
                select(structure.c.finess, structure.c.rpps).where(
                    structure.c.id == actor.structure_id
                )
            )
        ).first()
    return StructureIds(row.finess, row.rpps) if row is not None else StructureIds(None, None)
