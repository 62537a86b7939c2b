"""Use cases: a person enrols a passkey from a one-time invitation, signs in with it, and
manages their sessions and passkeys, and steps up (a fresh assertion before a sensitive
action). A password is never enough (DESIGN §4.1): see ``services.passwords``.

    invitation link → options (challenge stored) → navigator.credentials.create (UV)
        → verify (origin, RP id, UV) → passkey stored, invitation spent, session opened
    /connexion → options (challenge stored) → navigator.credentials.get (UV)
        → challenge spent → verify (signature, origin, UV, counter) → session opened

A challenge is spent before its answer is verified, so a failed or replayed answer never gets
a second try. Every refusal is audited on the ``portal-signin`` channel with a reason code;
the person sees one message, whatever the reason.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.access import record_refusal
from rempart.db.tables import account, invitation, passkey, reverify, webauthn_challenge
from rempart.domain.channels import Channel
from rempart.domain.errors import Conflict, NotAuthenticated, NotFound, TooManyRequests
from rempart.domain.sessions import device_label, is_fresh
from rempart.security import audit, devices, passkeys, ratelimit, sessions
from rempart.security.principal import ActorKind, Principal
from rempart.security.sessions import Session, SessionLine
from rempart.services import channels, notifications, step_up
from rempart.services.runtime import Runtime

log = structlog.get_logger("rempart.portal")

PASSKEY_NAME_CHARS_MAX = 60
_REFUSED = "La connexion a été refusée. Réessayez avec votre clé d'accès."
_STEP_UP_REFUSED = "La confirmation a été refusée. Réessayez avec votre clé d'accès."


@dataclass(frozen=True, slots=True)
class Invitee:
    account_id: UUID
    invitation_id: UUID
    username: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Ceremony:
    id: UUID  # the browser sends it back with its answer
    options: dict[str, Any]  # for navigator.credentials.create / get


@dataclass(frozen=True, slots=True)
class SignedIn:
    cookie: str  # the session id: set as the cookie, never stored in clear
    account_id: UUID
    device: str  # the browser's device cookie (set again: it may be new)


# -- invitations and enrolment -----------------------------------------------------------------


def _invitation_hash(rt: Runtime, token: str) -> bytes:
    return rt.keys.token_hash("invitation\x00" + token)


async def _invitee(conn: AsyncConnection, rt: Runtime, token: str) -> Invitee:
    """The account a valid invitation enrols. Unknown, expired, spent, or for a disabled account:
    the same NotFound."""
    row = (
        await conn.execute(
            select(
                invitation.c.id,
                invitation.c.expires_at,
                invitation.c.used_at,
                account.c.id.label("account_id"),
                account.c.username,
                account.c.display_name_enc,
                account.c.disabled_at,
            )
            .join(account, account.c.id == invitation.c.account_id)
            .where(invitation.c.token_hash == _invitation_hash(rt, token[:100]))
        )
    ).first()
    if (
        row is None
        or row.used_at is not None
        or row.expires_at <= rt.now()
        or row.disabled_at is not None
    ):
        raise NotFound("Ce lien d'inscription n'est pas valable (inconnu, expiré ou déjà utilisé).")
    name = rt.keys.decrypt("account", "display_name", row.account_id, row.display_name_enc)
    return Invitee(row.account_id, row.id, row.username, name)


async def read_invitation(rt: Runtime, token: str) -> Invitee:
    async with rt.db.read() as conn:
        return await _invitee(conn, rt, token)


async def _new_challenge(
    conn: AsyncConnection, rt: Runtime, purpose: str, account_id: UUID | None
) -> tuple[UUID, bytes]:
    cid, challenge, now = uuid.uuid4(), secrets.token_bytes(passkeys.CHALLENGE_BYTES), rt.now()
    await conn.execute(
        webauthn_challenge.insert().values(
            id=cid,
            purpose=purpose,
            challenge=challenge,
            account_id=account_id,
            expires_at=now + passkeys.CHALLENGE_TTL,
            created_at=now,
        )
    )
    return cid, challenge


async def _spend_challenge(
    rt: Runtime, ceremony_id: UUID, purpose: str
) -> tuple[bytes, UUID | None] | None:
    """The challenge and its account, now spent (committed at once); None if unknown, expired
    or already used. Two concurrent answers to one challenge: one update wins."""
    now = rt.now()
    async with rt.db.transaction() as conn:
        row = (
            await conn.execute(
                select(webauthn_challenge.c.challenge, webauthn_challenge.c.account_id).where(
                    webauthn_challenge.c.id == ceremony_id,
                    webauthn_challenge.c.purpose == purpose,
                    webauthn_challenge.c.used_at.is_(None),
                    webauthn_challenge.c.expires_at > now,
                )
            )
        ).first()
        if row is None:
            return None
        spent = await conn.execute(
            update(webauthn_challenge)
            .where(webauthn_challenge.c.id == ceremony_id, webauthn_challenge.c.used_at.is_(None))
            .values(used_at=now)
        )
        if spent.rowcount != 1:
            return None
    return row.challenge, row.account_id


async def _credential_ids(conn: AsyncConnection, account_id: UUID) -> list[bytes]:
    rows = await conn.execute(
        select(passkey.c.credential_id).where(
            passkey.c.account_id == account_id, passkey.c.revoked_at.is_(None)
        )
    )
    return list(rows.scalars())


async def _registration(
    conn: AsyncConnection, rt: Runtime, account_id: UUID, username: str, display_name: str
) -> Ceremony:
    cid, challenge = await _new_challenge(conn, rt, "register", account_id)
    options = passkeys.registration_options(
        rp_id=rt.settings.rp_id,
        user_id=account_id.bytes,  # a random UUID: nothing identifying goes to the authenticator
        user_name=username,
        display_name=display_name,
        challenge=challenge,
        exclude=await _credential_ids(conn, account_id),
    )
    return Ceremony(cid, options)


async def begin_enrolment(rt: Runtime, token: str) -> Ceremony:
    async with rt.db.transaction() as conn:
        who = await _invitee(conn, rt, token)
        return await _registration(conn, rt, who.account_id, who.username, who.display_name)


def passkey_name(name: str) -> str:
    cleaned = " ".join(name.split())[:PASSKEY_NAME_CHARS_MAX]
    return cleaned or "Clé d'accès"


async def _store_passkey(
    conn: AsyncConnection,
    rt: Runtime,
    actor: Principal,
    new: passkeys.NewCredential,
    name: str,
    user_agent: str,
) -> UUID:
    """Store a passkey. Every passkey but the account's very first is notified on its
    existing channel (a second key, a key added later, the key of a recovery)."""
    assert actor.id is not None
    pid, now = uuid.uuid4(), rt.now()
    had_one = (
        await conn.execute(select(passkey.c.id).where(passkey.c.account_id == actor.id).limit(1))
    ).first() is not None
    await conn.execute(
        passkey.insert().values(
            id=pid,
            account_id=actor.id,
            credential_id=new.credential_id,
            public_key=new.public_key,
            sign_count=new.sign_count,
            name=passkey_name(name),
            transports=new.transports[:100],
            created_at=now,
        )
    )
    await audit.record(
        conn,
        at=now,
        actor=actor,
        channel=Channel.PORTAL_SIGNIN.value,
        purpose="passkey.register",
        result="ok",
        subject_kind="passkey",
        subject_id=pid,
    )
    if had_one:
        await notifications.new_passkey(
            conn,
            account_id=actor.id,
            name=passkey_name(name),
            device=device_label(user_agent),
            now=now,
        )
    return pid


async def _verified_registration(
    rt: Runtime, ceremony_id: UUID, account_id: UUID, credential: dict[str, Any], actor: Principal
) -> passkeys.NewCredential:
    spent = await _spend_challenge(rt, ceremony_id, "register")
    try:
        if spent is None or spent[1] != account_id:
            raise passkeys.PasskeyRefused("challenge")
        return passkeys.verify_registration(
            credential,
            challenge=spent[0],
            rp_id=rt.settings.rp_id,
            origin=rt.settings.public_base_url,
        )
    except passkeys.PasskeyRefused as e:
        await _refused(rt, actor, "passkey.register", e.reason)
        raise NotAuthenticated("La clé d'accès n'a pas pu être enregistrée. Réessayez.") from None


async def finish_enrolment(
    rt: Runtime,
    token: str,
    ceremony_id: UUID,
    credential: dict[str, Any],
    *,
    name: str,
    user_agent: str,
    device: str | None = None,
) -> SignedIn:
    """Store the passkey, spend the invitation, open a session: one transaction. The
    enrolling browser becomes a known device."""
    who = await read_invitation(rt, token)
    actor = Principal(ActorKind.ACCOUNT, who.account_id, who.username, None)
    new = await _verified_registration(rt, ceremony_id, who.account_id, credential, actor)
    async with rt.db.transaction() as conn:
        spent = await conn.execute(
            update(invitation)
            .where(invitation.c.id == who.invitation_id, invitation.c.used_at.is_(None))
            .values(used_at=rt.now())
        )
        if spent.rowcount != 1:  # the same link used twice at once: one wins
            raise NotFound(
                "Ce lien d'inscription n'est pas valable (inconnu, expiré ou déjà utilisé)."
            )
        pid = await _store_passkey(conn, rt, actor, new, name, user_agent)
        cookie = await sessions.open_session(
            conn,
            rt.keys,
            account_id=who.account_id,
            passkey_id=pid,
            user_agent=user_agent,
            now=rt.now(),
        )
        device_cookie, _ = await devices.remember(
            conn, rt.db.dialect, rt.keys, account_id=who.account_id, cookie=device, now=rt.now()
        )
    log.info("portal.enrolled", account_id=str(who.account_id))
    return SignedIn(cookie, who.account_id, device_cookie)


async def begin_add_passkey(rt: Runtime, session: Session) -> Ceremony:
    """A further passkey for a signed-in account (a second device, a spare key). A stolen
    session must not be able to add the thief's key: a fresh assertion is required."""
    p = session.principal
    assert p.id is not None
    await step_up.require(rt, actor=p, stepped_up_at=session.stepped_up_at, purpose="passkey.add")
    async with rt.db.transaction() as conn:
        return await _registration(conn, rt, p.id, p.label, session.display_name)


async def finish_add_passkey(
    rt: Runtime,
    session: Session,
    ceremony_id: UUID,
    credential: dict[str, Any],
    *,
    name: str,
    user_agent: str = "",
) -> UUID:
    p = session.principal
    assert p.id is not None
    new = await _verified_registration(rt, ceremony_id, p.id, credential, p)
    async with rt.db.transaction() as conn:
        return await _store_passkey(conn, rt, p, new, name, user_agent)


# -- sign-in --------------------------------------------------------------------------------


async def _refused(rt: Runtime, actor: Principal, purpose: str, reason: str) -> None:
    async with rt.db.transaction() as conn:
        await record_refusal(
            conn,
            principal=actor,
            channel=Channel.PORTAL_SIGNIN.value,
            purpose=purpose,
            reason=reason,
            now=rt.now(),
        )
    log.warning("portal.refused", purpose=purpose, reason=reason)


async def _limit(rt: Runtime, ip: str) -> None:
    s = rt.settings
    async with rt.db.transaction() as conn:
        d = await ratelimit.hit(
            conn,
            rt.db.dialect,
            f"signin:{ip}",
            now=rt.now(),
            rate_per_s=s.signin_attempts_per_ip_per_s,
            burst=s.signin_attempts_per_ip_burst,
        )
    if not d.allowed:
        log.warning("auth.rate_limited", key="signin")
        raise TooManyRequests(d.retry_after_seconds)


async def begin_signin(rt: Runtime, *, ip: str = "unknown") -> Ceremony:
    await channels.ensure_open(rt, Channel.PORTAL_SIGNIN)
    await _limit(rt, ip)
    async with rt.db.transaction() as conn:
        cid, challenge = await _new_challenge(conn, rt, "signin", None)
    return Ceremony(
        cid, passkeys.authentication_options(rp_id=rt.settings.rp_id, challenge=challenge)
    )


_PASSKEY_COLUMNS = (
    passkey.c.id,
    passkey.c.account_id,
    passkey.c.public_key,
    passkey.c.sign_count,
    passkey.c.revoked_at,
    account.c.username,
    account.c.disabled_at,
    account.c.contained_at,
)


async def finish_signin(
    rt: Runtime,
    ceremony_id: UUID,
    credential: dict[str, Any],
    *,
    user_agent: str,
    ip: str = "unknown",
    device: str | None = None,
) -> SignedIn:
    await channels.ensure_open(rt, Channel.PORTAL_SIGNIN)
    unknown = Principal(ActorKind.ACCOUNT, None, "(clé inconnue)", None)
    spent = await _spend_challenge(rt, ceremony_id, "signin")
    try:
        assertion = passkeys.parse_assertion(credential)
    except passkeys.PasskeyRefused as e:
        await _refused(rt, unknown, "signin", e.reason)
        raise NotAuthenticated(_REFUSED) from None
    async with rt.db.read() as conn:
        key = (
            await conn.execute(
                select(*_PASSKEY_COLUMNS)
                .join(account, account.c.id == passkey.c.account_id)
                .where(passkey.c.credential_id == assertion.credential_id)
            )
        ).first()
    actor = Principal(ActorKind.ACCOUNT, key.account_id, key.username, None) if key else unknown
    reason = _precheck(key, assertion, spent)
    if reason is None:
        assert key is not None
        assert spent is not None
        try:
            count = passkeys.verify_assertion(
                assertion,
                challenge=spent[0],
                rp_id=rt.settings.rp_id,
                origin=rt.settings.public_base_url,
                public_key=key.public_key,
                sign_count=key.sign_count,
            )
        except passkeys.PasskeyRefused as e:
            reason = e.reason
    if reason is not None:
        await _limit(rt, ip)  # failures cost a token of the per-IP bucket
        await _refused(rt, actor, "signin", reason)
        raise NotAuthenticated(_REFUSED)
    assert key is not None
    return await _signed_in(rt, key, actor, count, user_agent, device)


def _precheck(
    key: Any, assertion: passkeys.Assertion, spent: tuple[bytes, UUID | None] | None
) -> str | None:
    """Why a sign-in is refused before any signature is checked, or None."""
    if spent is None:
        return "challenge_spent"  # unknown, expired, or already used: a replay lands here
    if key is None:
        return "unknown_credential"
    if key.revoked_at is not None:
        return "revoked_passkey"
    if key.disabled_at is not None:
        return "account_disabled"
    if key.contained_at is not None:
        return "account_contained"
    if assertion.user_handle is not None and assertion.user_handle != key.account_id.bytes:
        return "user_handle"
    return None


async def _signed_in(
    rt: Runtime, key: Any, actor: Principal, count: int, user_agent: str, device: str | None
) -> SignedIn:
    now = rt.now()
    async with rt.db.transaction() as conn:
        # the counter moves only forward, also against a concurrent sign-in with a clone
        moved = await conn.execute(
            update(passkey)
            .where(passkey.c.id == key.id, passkey.c.sign_count == key.sign_count)
            .values(sign_count=count, last_used_at=now)
        )
        if moved.rowcount != 1:
            raise NotAuthenticated(_REFUSED)
        cookie = await sessions.open_session(
            conn,
            rt.keys,
            account_id=key.account_id,
            passkey_id=key.id,
            user_agent=user_agent,
            now=now,
        )
        # a fresh passkey assertion is what a mass revocation asked for (services.revocation)
        await conn.execute(delete(reverify).where(reverify.c.account_id == key.account_id))
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel=Channel.PORTAL_SIGNIN.value,
            purpose="signin",
            result="ok",
            subject_kind="passkey",
            subject_id=key.id,
        )
        device_cookie = await _known_device(
            conn, rt, key.account_id, device, user_agent, "avec une clé d'accès", now
        )
    return SignedIn(cookie, key.account_id, device_cookie)


async def _known_device(
    conn: AsyncConnection,
    rt: Runtime,
    account_id: UUID,
    device: str | None,
    user_agent: str,
    method: str,
    now: datetime,
) -> str:
    """Remember the browser; a browser new to this account is notified on its channel."""
    value, new = await devices.remember(
        conn, rt.db.dialect, rt.keys, account_id=account_id, cookie=device, now=now
    )
    if new:
        await notifications.new_device(
            conn, account_id=account_id, device=device_label(user_agent), method=method, now=now
        )
    return value


# -- step-up -------------------------------------------------------------------------------


async def begin_step_up(rt: Runtime, session: Session) -> Ceremony:
    """A fresh assertion for a signed-in person, with one of the account's own passkeys."""
    p = session.principal
    assert p.id is not None
    async with rt.db.transaction() as conn:
        cid, challenge = await _new_challenge(conn, rt, "stepup", p.id)
        allow = await _credential_ids(conn, p.id)
    options = passkeys.authentication_options(
        rp_id=rt.settings.rp_id, challenge=challenge, allow=allow
    )
    return Ceremony(cid, options)


async def finish_step_up(
    rt: Runtime, session: Session, ceremony_id: UUID, credential: dict[str, Any]
) -> None:
    """Verify the assertion (challenge of this account, one of its live passkeys, user
    verified, counter moving on) and mark the session stepped up now."""
    p = session.principal
    assert p.id is not None
    spent = await _spend_challenge(rt, ceremony_id, "stepup")
    reason: str | None = None
    key: Any = None
    try:
        assertion = passkeys.parse_assertion(credential)
    except passkeys.PasskeyRefused as e:
        reason = e.reason
    else:
        async with rt.db.read() as conn:
            key = (
                await conn.execute(
                    select(*_PASSKEY_COLUMNS)
                    .join(account, account.c.id == passkey.c.account_id)
                    .where(passkey.c.credential_id == assertion.credential_id)
                )
            ).first()
        if spent is not None and spent[1] != p.id:
            reason = "challenge_spent"
        elif key is not None and key.account_id != p.id:
            reason = "unknown_credential"  # another account's passkey: not this person
        else:
            reason = _precheck(key, assertion, spent)
        if reason is None:
            try:
                count = passkeys.verify_assertion(
                    assertion,
                    challenge=spent[0],  # type: ignore[index]
                    rp_id=rt.settings.rp_id,
                    origin=rt.settings.public_base_url,
                    public_key=key.public_key,
                    sign_count=key.sign_count,
                )
            except passkeys.PasskeyRefused as e:
                reason = e.reason
    if reason is not None:
        await _refused(rt, p, "step_up", reason)
        raise NotAuthenticated(_STEP_UP_REFUSED)
    now = rt.now()
    async with rt.db.transaction() as conn:
        moved = await conn.execute(
            update(passkey)
            .where(passkey.c.id == key.id, passkey.c.sign_count == key.sign_count)
            .values(sign_count=count, last_used_at=now)
        )
        if moved.rowcount != 1:
            raise NotAuthenticated(
                "La confirmation a été refusée. Réessayez avec votre clé d'accès."
            )
        await sessions.record_step_up(conn, session.id, now=now)
        await audit.record(
            conn,
            at=now,
            actor=p,
            channel="portal",
            purpose="step_up",
            result="ok",
            subject_kind="passkey",
            subject_id=key.id,
        )


def stepped_up(rt: Runtime, session: Session) -> bool:
    return is_fresh(session.stepped_up_at, now=rt.now())


# -- sessions ------------------------------------------------------------------------------


async def current_session(rt: Runtime, cookie: str | None) -> Session | None:
    if not cookie:
        return None
    async with rt.db.transaction() as conn:
        return await sessions.find_live(conn, rt.keys, cookie[:100], now=rt.now())


async def sign_out(rt: Runtime, cookie: str, session: Session) -> None:
    async with rt.db.transaction() as conn:
        await sessions.revoke(conn, rt.keys, cookie, now=rt.now())
        await audit.record(
            conn,
            at=rt.now(),
            actor=session.principal,
            channel="portal",
            purpose="signout",
            result="ok",
            subject_kind="web_session",
            subject_id=session.id,
        )


async def sign_out_others(rt: Runtime, session: Session) -> int:
    """End every other session of this account: a stolen cookie stops working at once."""
    p = session.principal
    assert p.id is not None
    async with rt.db.transaction() as conn:
        n = await sessions.revoke_all(conn, p.id, now=rt.now(), keep=session.id)
        await audit.record(
            conn,
            at=rt.now(),
            actor=p,
            channel="portal",
            purpose="signout_others",
            result="ok",
            subject_kind="account",
            subject_id=p.id,
            detail={"sessions": n},
        )
    return n


@dataclass(frozen=True, slots=True)
class PasskeyLine:
    id: UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class SecurityOverview:
    passkeys: list[PasskeyLine]
    sessions: list[SessionLine]


async def security_overview(rt: Runtime, session: Session) -> SecurityOverview:
    p = session.principal
    assert p.id is not None
    async with rt.db.read() as conn:
        rows = await conn.execute(
            select(passkey.c.id, passkey.c.name, passkey.c.created_at, passkey.c.last_used_at)
            .where(passkey.c.account_id == p.id, passkey.c.revoked_at.is_(None))
            .order_by(passkey.c.created_at)
        )
        keys = [PasskeyLine(r.id, r.name, r.created_at, r.last_used_at) for r in rows]
        live = await sessions.list_live(conn, p.id, now=rt.now())
    return SecurityOverview(keys, live)


async def revoke_passkey(rt: Runtime, session: Session, passkey_id: UUID) -> None:
    """Revoke one of the account's own passkeys, never the last one (the account would be
    locked out; recovery goes through an operator). Another account's passkey: NotFound."""
    p = session.principal
    assert p.id is not None
    now = rt.now()
    async with rt.db.transaction() as conn:
        live = await _live_passkey_ids(conn, p.id)
        if passkey_id not in live:
            raise NotFound()
        if len(live) == 1:
            raise LastPasskey()
        await conn.execute(update(passkey).where(passkey.c.id == passkey_id).values(revoked_at=now))
        # sessions opened with that passkey end with it
        await sessions.revoke_opened_with(conn, passkey_id, now=now)
        await audit.record(
            conn,
            at=now,
            actor=p,
            channel="portal",
            purpose="passkey.revoke",
            result="ok",
            subject_kind="passkey",
            subject_id=passkey_id,
        )


async def _live_passkey_ids(conn: AsyncConnection, account_id: UUID) -> set[UUID]:
    rows = await conn.execute(
        select(passkey.c.id).where(
            passkey.c.account_id == account_id, passkey.c.revoked_at.is_(None)
        )
    )
    return set(rows.scalars())


class LastPasskey(Conflict):
    code = "last_passkey"
    title = "Dernière clé d'accès"

    def __init__(self) -> None:
        super().__init__(
            "C'est votre seule clé d'accès : ajoutez-en une autre avant de retirer celle-ci."
        )
