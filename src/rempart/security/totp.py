"""TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps) for transitional
passwords, with pyotp (docs/decisions/0010-transitional-passwords-totp.md).

A code is accepted for the current step or one step either side (clock drift), and only for
a step later than the last one accepted for the account: a code works once, so a code
watched over a shoulder or relayed by a phishing page cannot be replayed.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, base32: what authenticator apps expect


def provisioning_uri(secret: str, *, username: str, issuer: str = "Rempart") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def step_at(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * STEP_SECONDS)


def accepted_step(secret: str, code: str, *, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to, if it is valid now and newer than ``last_step``."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = step_at(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if (last_step is None or step > last_step) and hmac.compare_digest(
            code_at(secret, step), code
        ):
            return step
    return None
