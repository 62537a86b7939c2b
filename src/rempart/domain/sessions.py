"""When a portal session ends: 30 minutes without a request, or 12 hours after sign-in,
whichever comes first (DESIGN §4.1, issue 7). Revoked sessions end at once.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    >>> s = SessionTimes(created_at=t0, last_seen_at=t0, expires_at=t0 + ABSOLUTE)
    >>> is_live(s, now=t0 + timedelta(minutes=29))
    True
    >>> is_live(s, now=t0 + timedelta(minutes=31))
    False
    >>> busy = SessionTimes(t0, last_seen_at=t0 + timedelta(hours=12), expires_at=t0 + ABSOLUTE)
    >>> is_live(busy, now=t0 + timedelta(hours=12, seconds=1))
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
# last_seen_at is written at most this often: an idle timeout of 30 minutes does not need a
# write on every request, one a minute is exact enough.
TOUCH_EVERY = timedelta(seconds=60)
# A sensitive action (bank details, exports, rights checks past the soft ceiling) needs a
# passkey assertion at most this old: the sign-in itself, or a step-up (DESIGN §4.7).
STEP_UP_FRESH = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class SessionTimes:
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime  # created_at + ABSOLUTE
    revoked_at: datetime | None = None


def is_live(s: SessionTimes, *, now: datetime, idle: timedelta = IDLE) -> bool:
    if s.revoked_at is not None:
        return False
    return now < s.expires_at and now < s.last_seen_at + idle


def is_fresh(stepped_up_at: datetime | None, *, now: datetime) -> bool:
    """Whether the session's last passkey assertion is recent enough for a sensitive action.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    >>> is_fresh(t0, now=t0 + timedelta(minutes=4)), is_fresh(t0, now=t0 + timedelta(minutes=6))
    (True, False)
    >>> is_fresh(None, now=t0)
    False
    """
    return stepped_up_at is not None and stepped_up_at <= now < stepped_up_at + STEP_UP_FRESH


def needs_touch(s: SessionTimes, *, now: datetime) -> bool:
    return now - s.last_seen_at >= TOUCH_EVERY


def device_label(user_agent: str) -> str:
    """A short, human name for a session's browser ('Chrome sur Linux'), from its User-Agent:
    enough for a person to recognise their own sessions, nothing more is kept.

    >>> device_label("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/156.0 Safari/537.36")
    'Chrome sur Linux'
    >>> device_label("")
    'Navigateur inconnu'
    """
    ua = user_agent.lower()
    browser = next((name for key, name in _BROWSERS if key in ua), None)
    system = next((name for key, name in _SYSTEMS if key in ua), None)
    if browser is None and system is None:
        return "Navigateur inconnu"
    return f"{browser or 'Navigateur'} sur {system or 'système inconnu'}"


_BROWSERS = (
    ("edg/", "Edge"),
    ("firefox/", "Firefox"),
    ("chrome/", "Chrome"),
    ("chromium/", "Chrome"),
    ("safari/", "Safari"),
)
_SYSTEMS = (
    ("android", "Android"),
    ("iphone", "iPhone"),
    ("ipad", "iPad"),
    ("windows", "Windows"),
    ("mac os", "macOS"),
    ("linux", "Linux"),
)
