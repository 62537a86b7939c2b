"""Use cases: transitional passwords, for accounts that cannot use a passkey yet (DESIGN §4.1).

Never enough alone, in every configuration:

- the installation must allow them (``REMPART_TRANSITIONAL_PASSWORDS``, off by default) *and*
  an operator must allow them for the account (``rempart account allow-password``);
- the person chooses the password from their one-time invitation, with a TOTP secret they
  prove they hold (a first code);
- a sign-in takes the user name, the password *and* a TOTP code in one form; each is checked,
  and the answer never says which one failed;
- failures are throttled *before* any hashing, per account name and per IP (GCRA in the
  database: ``password_failures_max`` at once, then one every few minutes);
- a session opened this way has no passkey assertion, so it can never step up: bank details,
  exports and reads past the soft ceiling stay closed to it.

Every refusal is audited on ``portal-signin`` with its reason; the person sees one message.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import structlog
from sqlalchemy import select, update

from rempart.access import record_refusal
from rempart.db.tables import account, invitation
from rempart.domain.channels import Channel
from rempart.domain.errors import (
    FieldError,
    Forbidden,
    InvalidFields,
    NotAuthenticated,
    NotFound,
    TooManyRequests,
)
from rempart.domain.ratelimit import gcra
from rempart.domain.roles import Permission
from rempart.security import audit, passwords, ratelimit, sessions, totp
from rempart.security.principal import ActorKind, Principal
from rempart.services import channels, revocation
from rempart.services.portal_auth import SignedIn, _known_device, read_invitation
from rempart.services.runtime import Runtime

log = structlog.get_logger("rempart.portal")

REFUSED = (
    "Connexion refusée : identifiant, mot de passe ou code à usage unique incorrect, ou "
    "connexion par mot de passe non autorisée pour ce compte."
)
_METHOD = "avec un mot de passe transitoire et un code à usage unique"


# -- operators ---------------------------------------------------------------------------------


async def allow(rt: Runtime, username: str, *, actor: Principal, allowed: bool) -> UUID:
    """Turn the account's transitional password on or off. Off also forgets the password and
    the TOTP secret: turned on again, the person chooses new ones."""
    if actor.kind is not ActorKind.ACCOUNT or not actor.may(Permission.MANAGE_ACCOUNTS):
        raise Forbidden("Réservé aux comptes du back-office qui gèrent les comptes (--actor).")
    values: dict[str, object] = {"password_allowed": allowed}
    if not allowed:
        values |= {"password_hash": None, "totp_secret_enc": None, "totp_last_step": None}
    async with rt.db.transaction() as conn:
        target = (
            await conn.execute(select(account.c.id).where(account.c.username == username))
        ).scalar()
        if target is None:
            raise NotFound("Compte inconnu.")
        await conn.execute(update(account).where(account.c.id == target).values(**values))
        assert isinstance(target, UUID)
        await audit.record(
            conn,
            at=rt.now(),
            actor=actor,
            channel="backoffice",
            purpose="password.allow" if allowed else "password.disallow",
            result="ok",
            subject_kind="account",
            subject_id=target,
        )
    return target


# -- choosing the password (from the invitation) -------------------------------------------


@dataclass(frozen=True, slots=True)
class PasswordOffer:
    """What the invitation page shows when a password may be chosen: a fresh TOTP secret."""

    secret: str
    uri: str


async def offer(rt: Runtime, token: str) -> PasswordOffer | None:
    """A TOTP secret to set up, if this invitation's account may choose a password."""
    if not rt.settings.transitional_passwords:
        return None
    who = await read_invitation(rt, token)
    async with rt.db.read() as conn:
        ok = (
            await conn.execute(
                select(account.c.password_allowed).where(account.c.id == who.account_id)
            )
        ).scalar()
    if not ok:
        return None
    return offer_of(totp.new_secret(), who.username)


def offer_of(secret: str, username: str) -> PasswordOffer:
    return PasswordOffer(secret, totp.provisioning_uri(secret, username=username))


async def enrol(
    rt: Runtime,
    token: str,
    *,
    password: str,
    totp_secret: str,
    totp_code: str,
    user_agent: str,
    device: str | None = None,
) -> SignedIn:
    """Store the password (argon2id) and the TOTP secret (encrypted), spend the invitation,
    open a session. The first code proves the person's app holds the secret."""
    who = await read_invitation(rt, token)
    actor = Principal(ActorKind.ACCOUNT, who.account_id, who.username, None)
    now = rt.now()
    async with rt.db.read() as conn:
        allowed = (
            await conn.execute(
                select(account.c.password_allowed).where(account.c.id == who.account_id)
            )
        ).scalar()
    if not (rt.settings.transitional_passwords and allowed):
        raise Forbidden("La connexion par mot de passe n'est pas autorisée pour ce compte.")
    errors = [
        FieldError("password", r) for r in passwords.problems(password, username=who.username)
    ]
    secret = totp_secret.strip().upper()
    step = None
    if len(secret) == 32 and all(c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for c in secret):
        step = totp.accepted_step(secret, totp_code, now=now, last_step=None)
    if step is None:
        errors.append(
            FieldError("totp_code", "code incorrect ou expiré : saisissez le code affiché")
        )
    if errors:
        raise InvalidFields(errors, "Vérifiez le mot de passe et le code.")
    digest = passwords.hash_password(password)
    async with rt.db.transaction() as conn:
        spent = await conn.execute(
            update(invitation)
            .where(invitation.c.id == who.invitation_id, invitation.c.used_at.is_(None))
            .values(used_at=now)
        )
        if spent.rowcount != 1:
            raise NotFound(
                "Ce lien d'inscription n'est pas valable (inconnu, expiré ou déjà utilisé)."
            )
        await conn.execute(
            update(account)
            .where(account.c.id == who.account_id)
            .values(
                password_hash=digest,
                totp_secret_enc=rt.keys.encrypt("account", "totp_secret", who.account_id, secret),
                totp_last_step=step,
            )
        )
        cookie = await sessions.open_session(
            conn,
            rt.keys,
            account_id=who.account_id,
            passkey_id=None,
            user_agent=user_agent,
            now=now,
        )
        device_cookie = await _known_device(
            conn, rt, who.account_id, device, user_agent, _METHOD, now
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel=Channel.PORTAL_SIGNIN.value,
            purpose="password.enrol",
            result="ok",
            subject_kind="account",
            subject_id=who.account_id,
        )
    return SignedIn(cookie, who.account_id, device_cookie)


# -- signing in ----------------------------------------------------------------------------


def _keys(username: str, ip: str) -> tuple[str, str]:
    return f"pw-account:{username.casefold()[:100]}", f"pw-ip:{ip}"


async def _throttled(rt: Runtime, username: str, ip: str) -> int | None:
    """Seconds to wait if the account name or the IP has used up its failures; nothing is
    hashed then."""
    s, now = rt.settings, rt.now()
    rate = s.password_failures_per_hour / 3600
    waits = []
    async with rt.db.read() as conn:
        for key in _keys(username, ip):
            tat = await ratelimit.tat(conn, key)
            d = gcra(tat, now, rate_per_s=rate, burst=s.password_failures_max - 1)
            if not d.allowed:
                waits.append(d.retry_after_seconds)
    return max(waits) if waits else None


async def _failed(rt: Runtime, actor: Principal, username: str, ip: str, reason: str) -> None:
    s, now = rt.settings, rt.now()
    async with rt.db.transaction() as conn:
        for key in _keys(username, ip):
            await ratelimit.hit(
                conn,
                rt.db.dialect,
                key,
                now=now,
                rate_per_s=s.password_failures_per_hour / 3600,
                burst=s.password_failures_max,  # the check above stops at max - 1
            )
        await record_refusal(
            conn,
            principal=actor,
            channel=Channel.PORTAL_SIGNIN.value,
            purpose="password.signin",
            reason=reason,
            now=now,
        )
    log.warning("portal.refused", purpose="password.signin", reason=reason)


async def sign_in(
    rt: Runtime,
    *,
    username: str,
    password: str,
    totp_code: str,
    user_agent: str,
    ip: str = "unknown",
    device: str | None = None,
) -> SignedIn:
    await channels.ensure_open(rt, Channel.PORTAL_SIGNIN)
    username = username.strip()[:100]
    unknown = Principal(ActorKind.ACCOUNT, None, "(identifiant inconnu)", None)
    if not rt.settings.transitional_passwords:
        async with rt.db.transaction() as conn:
            await record_refusal(
                conn, principal=unknown, channel=Channel.PORTAL_SIGNIN.value,
                purpose="password.signin", reason="passwords_disabled", now=rt.now(),
            )  # fmt: skip
        raise NotFound()
    wait = await _throttled(rt, username, ip)
    if wait is not None:
        async with rt.db.transaction() as conn:
            await record_refusal(
                conn, principal=unknown, channel=Channel.PORTAL_SIGNIN.value,
                purpose="password.signin", reason="throttled", now=rt.now(),
            )  # fmt: skip
        log.warning("auth.rate_limited", key="password")
        raise TooManyRequests(wait)
    async with rt.db.read() as conn:
        row = (
            await conn.execute(
                select(
                    account.c.id,
                    account.c.username,
                    account.c.password_allowed,
                    account.c.password_hash,
                    account.c.totp_secret_enc,
                    account.c.totp_last_step,
                    account.c.disabled_at,
                    account.c.contained_at,
                ).where(account.c.username == username)
            )
        ).first()
    actor = Principal(ActorKind.ACCOUNT, row.id, row.username, None) if row else unknown
    # always one argon2 verification, whatever the account: the time tells nothing
    good_password = passwords.verify(row.password_hash if row else None, password)
    now = rt.now()
    reason: str | None = None
    step: int | None = None
    if row is None:
        reason = "unknown_account"
    elif not row.password_allowed or row.password_hash is None:
        reason = "password_not_allowed"
    elif not good_password:
        reason = "bad_password"
    elif row.totp_secret_enc is None or not totp_code.strip():
        reason = "totp_missing"
    else:
        secret = rt.keys.decrypt("account", "totp_secret", row.id, row.totp_secret_enc)
        step = totp.accepted_step(secret, totp_code, now=now, last_step=row.totp_last_step)
        if step is None:
            reason = "totp_wrong"
        elif row.disabled_at is not None:
            reason = "account_disabled"
        elif row.contained_at is not None:
            reason = "account_contained"
    if reason is None and row is not None:
        async with rt.db.transaction() as conn:  # after a mass revocation: a passkey first
            if await revocation.passkey_required(conn, row.id):
                reason = "passkey_required"
    if reason is not None:
        await _failed(rt, actor, username, ip, reason)
        raise NotAuthenticated(REFUSED)
    assert row is not None
    assert step is not None
    async with rt.db.transaction() as conn:
        # the code is spent: a concurrent sign-in with the same code loses this update
        last = account.c.totp_last_step
        spent = await conn.execute(
            update(account)
            .where(account.c.id == row.id)
            .where(last.is_(None) | (last < step))
            .values(totp_last_step=step)
        )
        if spent.rowcount != 1:
            raise NotAuthenticated(REFUSED)
        cookie = await sessions.open_session(
            conn, rt.keys, account_id=row.id, passkey_id=None, user_agent=user_agent, now=now
        )
        device_cookie = await _known_device(conn, rt, row.id, device, user_agent, _METHOD, now)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel=Channel.PORTAL_SIGNIN.value,
            purpose="password.signin",
            result="ok",
            subject_kind="account",
            subject_id=row.id,
        )
    return SignedIn(cookie, row.id, device_cookie)
