"""Passkeys (WebAuthn, with py_webauthn): the only way a person signs in (DESIGN §4.1).

The rules that make a phished sign-in open nothing:

- the relying-party id is the configured host (``Settings.rp_id``, from ``REMPART_BASE_URL``)
  and the origin in the browser's signed client data must equal ``Settings.public_base_url``
  exactly: an assertion made on a look-alike site (``evil.localhost``) is refused;
- user verification is required at registration and at every sign-in (PIN or biometrics on
  the authenticator, not only presence);
- each challenge is random (256 bits), stored server-side, used once, within
  ``CHALLENGE_TTL``: a replayed assertion finds its challenge spent;
- the signature counter must grow when the authenticator keeps one (a cloned key shows).

This module only translates between the library and our types; storing challenges, passkeys
and sessions is the service's (``services.portal_auth``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import webauthn
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

CHALLENGE_TTL = timedelta(minutes=5)
CHALLENGE_BYTES = 32
TIMEOUT_MS = 120_000
RP_NAME = "Rempart"


class PasskeyRefused(Exception):
    """The browser's answer does not verify; ``reason`` is a code for the audit log."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: str  # comma-separated, as the browser reported them


@dataclass(frozen=True, slots=True)
class Assertion:
    """A parsed, not yet verified, sign-in answer: which credential it claims to be."""

    credential_id: bytes
    user_handle: bytes | None
    raw: Any  # the library's AuthenticationCredential


def registration_options(
    *,
    rp_id: str,
    user_id: bytes,
    user_name: str,
    display_name: str,
    challenge: bytes,
    exclude: list[bytes],
) -> dict[str, Any]:
    """What ``navigator.credentials.create`` needs, as JSON-ready data."""
    options = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name=RP_NAME,
        user_id=user_id,
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
    )
    return json.loads(webauthn.options_to_json(options))  # type: ignore[no-any-return]


def verify_registration(
    credential: dict[str, Any], *, challenge: bytes, rp_id: str, origin: str
) -> NewCredential:
    try:
        parsed = parse_registration_credential_json(json.dumps(credential))
        verified = webauthn.verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as e:
        raise PasskeyRefused(_reason(e)) from None
    transports = ",".join(t.value for t in (parsed.response.transports or []))
    return NewCredential(
        verified.credential_id, verified.credential_public_key, verified.sign_count, transports
    )


def authentication_options(
    *, rp_id: str, challenge: bytes, allow: list[bytes] | None = None
) -> dict[str, Any]:
    """Discoverable credentials: the browser offers the passkeys it holds for this RP; no user
    name is typed, so none can be phished or enumerated. A step-up (the person is signed in)
    names the account's own passkeys in ``allow``."""
    options = webauthn.generate_authentication_options(
        rp_id=rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
        allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allow or []],
    )
    return json.loads(webauthn.options_to_json(options))  # type: ignore[no-any-return]


def parse_assertion(credential: dict[str, Any]) -> Assertion:
    try:
        parsed = parse_authentication_credential_json(json.dumps(credential))
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise PasskeyRefused("malformed") from None
    return Assertion(parsed.raw_id, parsed.response.user_handle, parsed)


def verify_assertion(
    assertion: Assertion,
    *,
    challenge: bytes,
    rp_id: str,
    origin: str,
    public_key: bytes,
    sign_count: int,
) -> int:
    """Verify signature, origin, RP id, user verification and counter; the new counter."""
    try:
        verified = webauthn.verify_authentication_response(
            credential=assertion.raw,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as e:
        raise PasskeyRefused(_reason(e)) from None
    return int(verified.new_sign_count)


def challenge_of(client_data: dict[str, Any]) -> str:
    return str(client_data.get("challenge", ""))


def b64url(data: bytes) -> str:
    return bytes_to_base64url(data)


def _reason(e: Exception) -> str:
    """A short code for the audit log, from the library's message (never echoed to clients)."""
    text = str(e).lower()
    for needle, code in (
        ("user verification", "user_not_verified"),
        ("sign count", "sign_count"),
        ("origin", "origin"),
        ("rp id", "rp_id"),
        ("challenge", "challenge"),
        ("signature", "signature"),
    ):
        if needle in text:
            return code
    return "invalid"


__all__ = [
    "CHALLENGE_BYTES",
    "CHALLENGE_TTL",
    "Assertion",
    "AuthenticatorTransport",
    "NewCredential",
    "PasskeyRefused",
    "authentication_options",
    "parse_assertion",
    "registration_options",
    "verify_assertion",
    "verify_registration",
]
