"""structlog set-up: event names, not sentences; a request id bound per request; never a NIR,
an IBAN, a name or a token (we log ids and codes only, and a processor drops known-sensitive keys
as a second line of defence)."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from rempart.config import Settings

_SENSITIVE = frozenset(
    {
        "nir",
        "iban",
        "token",
        "secret",
        "password",
        "client_secret",
        "access_token",
        "last_name",
        "first_name",
        "name",
        "email",
        "authorization",
    }
)


def _drop_sensitive(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if key in _SENSITIVE:
            event[key] = "[masqué]"
    return event


# Processors run just before rendering, e.g. the test suite's guard that no sensitive value
# reaches a log line. Empty in production.
EXTRA_PROCESSORS: list[Any] = []


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_sensitive,
            structlog.processors.format_exc_info,
            *EXTRA_PROCESSORS,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
