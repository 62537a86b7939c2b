"""Reading an insurer's beneficiary file: physical lines, then fields, fast and in file order.

The file is read in blocks of about a mebibyte cut at the last newline, so that decoding,
splitting and the SHA-256 of the import cost a few C calls per block instead of several Python
calls per line; every rule of the line-by-line reader still holds, with the same line numbers:
UTF-8 only, a line over ``LINE_CHARS_MAX`` characters refuses the file, and so does a last line
without a newline (``docs/formats/beneficiaries.md``). A block that does not decode is re-read
line by line, so that the error names the first bad line and any earlier problem comes first.

A line without quotes, carriage returns or NUL characters is split on the separator (what the
``csv`` module would give for it); any other line goes through ``csv`` as before.

    >>> import io
    >>> f = io.BytesIO("adherent_number;rank\\nA1;1\\n".encode())
    >>> [(n, text, ended) for n, text, ended in lines(f)]
    [(1, 'adherent_number;rank', True), (2, 'A1;1', True)]
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import IO

from rempart.domain.beneficiary_file import (
    COLUMNS,
    LINE_CHARS_MAX,
    FileFormatError,
    Header,
    Reject,
    parse_header,
)

BLOCK_BYTES = 1 << 20
_LINE_BYTES_MAX = LINE_CHARS_MAX * 4  # UTF-8: at most four bytes a character
_SLOW_CHARS = ('"', "\r", "\x00")


def _too_long(number: int) -> FileFormatError:
    return FileFormatError(
        f"ligne trop longue (plus de {LINE_CHARS_MAX} caractères) ; import annulé", line=number
    )


def _one_line(raw: bytes, number: int) -> str:
    """The line-by-line rules for one physical line (``raw`` without its newline)."""
    if len(raw) > _LINE_BYTES_MAX:
        raise _too_long(number)
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise FileFormatError("encodage invalide (UTF-8 attendu)", line=number) from None
    if len(text) > LINE_CHARS_MAX:
        raise _too_long(number)
    return text


def _block_lines(block: bytes, first_number: int) -> Iterator[str]:
    """The lines of a block of whole lines (newlines removed), checked as one piece when it
    decodes, else line by line; a problem is raised after the lines before it."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        for i, raw in enumerate(block.split(b"\n")):
            yield _one_line(raw, first_number + i)
        return
    parts = text.split("\n")
    if "\r" in text:
        parts = [p.rstrip("\r") for p in parts]
    if max(map(len, parts)) > LINE_CHARS_MAX:
        for i, p in enumerate(parts):
            if len(p) > LINE_CHARS_MAX:
                raise _too_long(first_number + i)
            yield p
    yield from parts


def lines(
    f: IO[bytes], on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[int, str, bool]]:
    """(line number, text without newline, ended by a newline) for each physical line."""
    number = 0
    pending = b""
    while True:
        data = f.read(BLOCK_BYTES)
        if on_bytes is not None and data:
            on_bytes(len(data))
        if not data:
            if pending:
                yield number + 1, _one_line(pending, number + 1), False
            return
        data = pending + data
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
        else:
            pending = data[cut + 1 :]
            for text in _block_lines(data[:cut], number + 1):
                number += 1
                yield number, text, True
        if len(pending) > _LINE_BYTES_MAX:
            raise _too_long(number + 1)


def records(
    f: IO[bytes], on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[Header, int, tuple[str, ...] | Reject]]:
    """The header, then each non-blank line: its values in ``COLUMNS`` order, or a Reject."""
    stream = lines(f, on_bytes)
    first = next(stream, None)
    if first is None or not first[1].strip():
        raise FileFormatError("fichier vide ou sans ligne d'en-tête", line=1)
    header = parse_header(first[1])
    width, delimiter = len(header.columns), header.delimiter
    order = [header.columns.index(c) for c in COLUMNS]
    for number, text, ended in stream:
        if not ended and text:
            # A snapshot cut mid-way would close the rights of everyone after the cut, and a
            # line cut right after a separator still has the right field count: every line,
            # the last one included, must end with a newline.
            raise FileFormatError(
                "fichier tronqué : la dernière ligne ne se termine pas par un saut de ligne ; "
                "import annulé",
                line=number,
            )
        if any(c in text for c in _SLOW_CHARS):
            if not text.strip():
                continue
            try:
                fields = next(csv.reader([text], delimiter=delimiter, strict=True))
            except csv.Error:
                yield header, number, Reject(number, "ligne", "guillemets mal fermés")
                continue
        else:
            if not text or text.isspace():
                continue
            fields = text.split(delimiter)
        if len(fields) != width:
            yield (
                header,
                number,
                Reject(number, "ligne", f"{len(fields)} champs au lieu de {width}"),
            )
            continue
        yield header, number, tuple(fields[i] for i in order)
