"""HTML forms to the JSON documents the services take, and their errors back to the fields.

A form names its inputs by the document's dotted paths (``beneficiary.amc_number``,
``lines.0.unit_price``), so a service's ``FieldError("lines.0.unit_price", …)`` lands on the
input that caused it, exactly as the API names it.

    >>> to_doc({"care_date": "2026-12-01", "lines.0.code": "X1", "lines.1.quantity": "1"})
    {'care_date': '2026-12-01', 'lines': [{'code': 'X1'}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from rempart.domain.errors import FieldError, InvalidFields
from rempart.web.problems import field_errors

INT_FIELDS = frozenset({"rank", "quantity", "amo_rate"})
# what a form fills in for every line slot: a line with nothing else is a slot left blank
LINE_PREFILLED = frozenset({"domain", "quantity"})
BOOL_FIELDS = frozenset({"vision_change"})


def _value(name: str, raw: str) -> Any:
    if name in INT_FIELDS and raw.isdigit():
        return int(raw)
    if name in BOOL_FIELDS:
        return raw in ("on", "true", "1")
    return raw


def to_doc(form: Mapping[str, str]) -> dict[str, Any]:
    """Dotted names to a nested document; blank fields are left out, and so are blank lines."""
    doc: dict[str, Any] = {}
    lines: dict[int, dict[str, Any]] = {}
    for key, raw in form.items():
        value = raw.strip()
        if key == "csrf" or not value:
            continue
        parts = key.split(".")
        if parts[0] == "lines" and len(parts) == 3 and parts[1].isdigit():
            lines.setdefault(int(parts[1]), {})[parts[2]] = _value(parts[2], value)
        elif len(parts) == 2:
            doc.setdefault(parts[0], {})[parts[1]] = _value(parts[1], value)
        elif len(parts) == 1:
            doc[key] = _value(key, value)
    # trailing blank slots are dropped; a blank one before a filled one stays, so an error
    # still names the slot it is about
    kept = [lines.get(i, {}) for i in range(max(lines, default=-1) + 1)]
    while kept and not set(kept[-1]) - LINE_PREFILLED:
        kept.pop()
    if kept:
        doc["lines"] = kept
    return doc


def validated(model: type[BaseModel], doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document as the API's schema checks it (the same rules as the JSON API), or
    ``InvalidFields`` naming every field in error."""
    try:
        return model.model_validate(doc).model_dump(mode="json", exclude_none=True)
    except ValidationError as e:
        raise InvalidFields(field_errors(e)) from None


def errors_by_field(errors: list[FieldError] | tuple[FieldError, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for e in errors:
        found.setdefault(e.field or "", e.reason)
    return found


def flat(form: Any) -> dict[str, str]:
    """A Starlette form as plain strings (no file uploads on these pages)."""
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}
