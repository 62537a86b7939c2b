"""One base for every error Rempart shows to a person or a program.

A ``RempartError`` carries a stable ``code`` (for programs), an HTTP ``status``, a French
``message`` (for people) and the fields at fault. The web edge turns it into RFC 9457
problem+json; the CLI prints it. Infrastructure exceptions are translated at the adapter.

    >>> err = InvalidFields([FieldError("birth_date", "date invalide (AAAA-MM-JJ attendu)")])
    >>> (err.code, err.status, err.errors[0].field)
    ('invalid_fields', 422, 'birth_date')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # dotted path: "lines.0.unit_price"
    reason: str  # French, readable by a person; never the value itself


class RempartError(Exception):
    code = "error"
    status = 400
    title = "Erreur"

    def __init__(self, message: str | None = None, *, errors: Sequence[FieldError] = ()) -> None:
        self.message = message or self.title
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__(self.message)


class InvalidFields(RempartError):
    code = "invalid_fields"
    status = 422
    title = "Requête invalide"

    def __init__(self, errors: Sequence[FieldError], message: str | None = None) -> None:
        fields = ", ".join(e.field for e in errors)
        super().__init__(message or f"Champs invalides : {fields}", errors=errors)


class MalformedBody(RempartError):
    code = "malformed_body"
    status = 400
    title = "Corps de requête illisible"


class NotAuthenticated(RempartError):
    code = "not_authenticated"
    status = 401
    title = "Authentification requise"


class Forbidden(RempartError):
    code = "forbidden"
    status = 403
    title = "Accès refusé"


class NotFound(RempartError):
    """Also what "not yours" looks like: the two are indistinguishable by design."""

    code = "not_found"
    status = 404
    title = "Introuvable"


class Conflict(RempartError):
    code = "conflict"
    status = 409
    title = "Conflit"


class ChannelClosed(RempartError):
    code = "channel_closed"
    status = 503
    title = "Service momentanément fermé"

    def __init__(self, channel: str, message: str, retry_after_seconds: int) -> None:
        self.channel = channel
        self.retry_after_seconds = retry_after_seconds
        super().__init__(message)


class TooManyRequests(RempartError):
    code = "rate_limited"
    status = 429
    title = "Trop de requêtes"

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"Trop de tentatives : réessayez dans {retry_after_seconds} s.")


class FourEyesViolation(RempartError):
    code = "four_eyes"
    status = 403
    title = "Une seconde personne doit valider"
