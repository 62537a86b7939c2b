"""Use case: import an insurer's beneficiary file (DESIGN §2.2, ``docs/formats/beneficiaries.md``).

The file is a full snapshot of the OCAM's beneficiaries. The import streams it (memory flat in
the file's size), validates every row, and then either commits everything or nothing:

- any rejected row → nothing is written, the reject report lists every problem (line, field,
  reason) and the import is recorded as ``rejected``;
- otherwise new people are added, changed rows updated, unchanged rows left alone (a re-import
  of the same file writes nothing but its own record), and people who disappeared from the file
  have their rights closed the day before the import.

Per batch of rows: one indexed read of the existing people by card index, then bulk writes.
Duplicates inside the file are found by the database (``import_seen``), not by a set in memory.
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, exists, func, select, update
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import beneficiary, beneficiary_import, contract, import_seen
from rempart.domain.beneficiary_file import (
    COLUMNS,
    LINE_CHARS_MAX,
    FileFormatError,
    Header,
    Reject,
    Row,
    check_row,
    parse_header,
)
from rempart.domain.errors import FieldError, Forbidden, InvalidFields, RempartError
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.keys import KeyRing
from rempart.security.principal import Principal
from rempart.security.pseudonyms import adherent_index, card_index, fingerprint, nir_index
from rempart.services.registry import ocam_by_number
from rempart.services.runtime import Runtime

BATCH_ROWS = 2000
_LINE_BYTES_MAX = LINE_CHARS_MAX * 4  # UTF-8: at most four bytes a character


@dataclass
class ImportSummary:
    import_id: UUID
    status: str  # committed | rejected | dry_run
    rows_total: int = 0
    rows_new: int = 0
    rows_changed: int = 0
    rows_unchanged: int = 0
    rows_closed: int = 0
    rows_rejected: int = 0
    report_path: Path | None = None
    first_rejects: list[Reject] = field(default_factory=list)


class _Rollback(Exception):
    """Raised inside the transaction to undo it (rejects found, or a dry run)."""


def _lines(f: IO[bytes], progress: Callable[[int], None] | None) -> Iterator[tuple[int, str, bool]]:
    """(line number, text without newline, ended by a newline) for each physical line."""
    number = 0
    while True:
        raw = f.readline(_LINE_BYTES_MAX + 1)
        if not raw:
            return
        number += 1
        if progress is not None:
            progress(len(raw))
        ended = raw.endswith(b"\n")
        if not ended and len(raw) > _LINE_BYTES_MAX:
            raise FileFormatError(
                f"ligne trop longue (plus de {LINE_CHARS_MAX} caractères) ; import annulé",
                line=number,
            )
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise FileFormatError("encodage invalide (UTF-8 attendu)", line=number) from None
        if len(text) > LINE_CHARS_MAX:
            raise FileFormatError(
                f"ligne trop longue (plus de {LINE_CHARS_MAX} caractères) ; import annulé",
                line=number,
            )
        yield number, text, ended


def _records(
    f: IO[bytes], progress: Callable[[int], None] | None
) -> Iterator[tuple[Header, int, dict[str, str] | Reject]]:
    lines = _lines(f, progress)
    first = next(lines, None)
    if first is None or not first[1].strip():
        raise FileFormatError("fichier vide ou sans ligne d'en-tête", line=1)
    header = parse_header(first[1])
    width = len(header.columns)
    for number, text, ended in lines:
        if not ended and text:
            # A snapshot cut mid-way would close the rights of everyone after the cut, and a
            # line cut right after a separator still has the right field count: every line,
            # the last one included, must end with a newline.
            raise FileFormatError(
                "fichier tronqué : la dernière ligne ne se termine pas par un saut de ligne ; "
                "import annulé",
                line=number,
            )
        if not text.strip():
            continue
        try:
            fields = next(csv.reader([text], delimiter=header.delimiter, strict=True))
        except csv.Error:
            yield header, number, Reject(number, "ligne", "guillemets mal fermés")
            continue
        if len(fields) != width:
            yield (
                header,
                number,
                Reject(number, "ligne", f"{len(fields)} champs au lieu de {width}"),
            )
            continue
        yield header, number, dict(zip(header.columns, fields, strict=True))


def _row_fingerprint(keys: KeyRing, r: Row, contract_id: UUID) -> bytes:
    return fingerprint(
        keys, r.nir.value, r.last_name, r.first_name, contract_id, r.valid_from, r.valid_to
    )


def _encrypted(keys: KeyRing, row_id: UUID, r: Row) -> dict[str, Any]:
    enc = keys.encrypt
    return {
        "adherent_enc": enc("beneficiary", "adherent_number", row_id, r.adherent_number),
        "nir_enc": enc("beneficiary", "nir", row_id, r.nir.value),
        "birth_date_enc": enc("beneficiary", "birth_date", row_id, r.birth_date.isoformat()),
        "last_name_enc": enc("beneficiary", "last_name", row_id, r.last_name),
        "first_name_enc": enc("beneficiary", "first_name", row_id, r.first_name),
        "key_version": keys.current_version,
    }


class _Importer:
    def __init__(
        self,
        rt: Runtime,
        conn: AsyncConnection,
        ocam_row: Any,
        import_id: UUID,
        contracts: dict[str, UUID],
        summary: ImportSummary,
    ) -> None:
        self.rt, self.conn, self.ocam, self.import_id = rt, conn, ocam_row, import_id
        self.contracts, self.summary = contracts, summary
        self.now = rt.now()

    async def write(self, batch: list[Row]) -> None:
        keys, amc = self.rt.keys, self.ocam.amc_number
        cards = [card_index(keys, amc, r.adherent_number, r.birth_date, r.rank) for r in batch]
        await self.conn.execute(
            import_seen.insert(),
            [
                {"import_id": self.import_id, "card_bi": c, "line_no": r.line}
                for c, r in zip(cards, batch, strict=True)
            ],
        )
        if self.summary.rows_rejected:
            return  # nothing will be committed; keep validating for the report only
        found = {
            row.card_bi: row
            for row in (
                await self.conn.execute(
                    select(
                        beneficiary.c.id,
                        beneficiary.c.card_bi,
                        beneficiary.c.fingerprint,
                        beneficiary.c.closed_on,
                    ).where(beneficiary.c.card_bi.in_(set(cards)))
                )
            ).all()
        }
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        seen_here: set[bytes] = set()
        for card, r in zip(cards, batch, strict=True):
            if card in seen_here:
                continue  # a duplicate inside the batch: the duplicate query reports it
            seen_here.add(card)
            contract_id = self.contracts[r.contract_code]
            fp = _row_fingerprint(keys, r, contract_id)
            old = found.get(card)
            if old is not None and old.fingerprint == fp and old.closed_on is None:
                self.summary.rows_unchanged += 1
                continue
            row_id = old.id if old is not None else uuid.uuid4()
            values = {
                **_encrypted(keys, row_id, r),
                "nir_bi": nir_index(keys, r.nir.value),
                "rank": r.rank,
                "contract_id": contract_id,
                "valid_from": r.valid_from,
                "valid_to": r.valid_to,
                "closed_on": None,
                "fingerprint": fp,
                "updated_at": self.now,
            }
            if old is None:
                self.summary.rows_new += 1
                inserts.append(
                    {
                        "id": row_id,
                        "ocam_id": self.ocam.id,
                        "card_bi": card,
                        "adherent_bi": adherent_index(keys, amc, r.adherent_number),
                        "created_at": self.now,
                        **values,
                    }
                )
            else:
                self.summary.rows_changed += 1
                updates.append({"b_id": row_id, **values})
        if inserts:
            await self.conn.execute(beneficiary.insert(), inserts)
        if updates:
            await self.conn.execute(
                update(beneficiary).where(beneficiary.c.id == bindparam("b_id")),
                updates,
            )

    async def duplicates(self) -> list[Reject]:
        """Every line whose card identity appeared on an earlier line: one sort, no join (the
        planner has no statistics on a table filled inside this transaction)."""
        seen = import_seen.c
        ranked = (
            select(
                seen.line_no,
                func.min(seen.line_no).over(partition_by=seen.card_bi).label("first_line"),
            )
            .where(seen.import_id == self.import_id)
            .subquery()
        )
        rows = (
            await self.conn.execute(
                select(ranked.c.line_no, ranked.c.first_line)
                .where(ranked.c.line_no > ranked.c.first_line)
                .order_by(ranked.c.line_no)
            )
        ).all()
        return [
            Reject(
                r.line_no,
                "adherent_number",
                f"même bénéficiaire (adhérent, naissance, rang) qu'à la ligne {r.first_line}",
            )
            for r in rows
        ]

    async def close_disappeared(self, *, accept_closures: bool) -> int:
        """Close the rights of the people absent from the file, unless that is a suspicious
        share of the OCAM's open rights (a truncated or wrong export) and nobody said yes."""
        yesterday = self.rt.today() - timedelta(days=1)
        seen = exists().where(
            and_(
                import_seen.c.import_id == self.import_id,
                import_seen.c.card_bi == beneficiary.c.card_bi,
            )
        )
        still_open = (
            beneficiary.c.ocam_id == self.ocam.id,
            beneficiary.c.is_canary.is_(False),
            beneficiary.c.closed_on.is_(None),
        )
        if not accept_closures:
            counts = (
                await self.conn.execute(
                    select(func.count(), func.count().filter(~seen))
                    .select_from(beneficiary)
                    .where(*still_open)
                )
            ).one()
            open_total, closing = counts[0], counts[1]
            ratio_max = self.rt.settings.import_closure_ratio_max
            if closing and closing > ratio_max * open_total:
                raise MassClosure(closing, open_total, ratio_max)
        result = await self.conn.execute(
            update(beneficiary)
            .where(*still_open, ~seen)
            .values(closed_on=yesterday, updated_at=self.now)
        )
        return result.rowcount or 0


class MassClosure(RempartError):
    code = "mass_closure"
    status = 422
    title = "Trop de droits fermés"

    def __init__(self, closing: int, open_total: int, ratio_max: float) -> None:
        super().__init__(
            f"Ce fichier fermerait les droits de {closing} bénéficiaires sur {open_total} "
            f"(plus de {ratio_max:.0%}) : rien n'a été importé. Vérifiez que le fichier est "
            "complet, puis relancez avec --accept-closures si ces fermetures sont voulues."
        )


async def import_beneficiaries(
    rt: Runtime,
    path: Path,
    *,
    amc_number: str,
    actor: Principal,
    dry_run: bool = False,
    accept_closures: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    import_id = uuid.uuid4()
    summary = ImportSummary(import_id, "failed")
    async with rt.db.transaction() as conn:
        ocam_row = await ocam_by_number(conn, amc_number)
        refusal: RempartError | None = None
        if not actor.may(Permission.IMPORT_BENEFICIARIES):
            refusal = Forbidden("Vous n'avez pas le droit d'importer des bénéficiaires.")
        elif ocam_row is None or (actor.ocam_id is not None and actor.ocam_id != ocam_row.id):
            refusal = InvalidFields([FieldError("amc", "organisme inconnu")])
        if refusal is not None:
            await audit.record(
                conn,
                at=rt.now(),
                actor=actor,
                channel=_channel(actor),
                purpose="beneficiary_import",
                result="refused",
                detail={"reason": refusal.code},
            )
        else:
            codes = {
                r.code: r.id
                for r in (
                    await conn.execute(
                        select(contract.c.code, contract.c.id).where(
                            contract.c.ocam_id == ocam_row.id
                        )
                    )
                ).all()
            }
    if refusal is not None:
        raise refusal
    reports = rt.settings.data_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    summary.report_path = reports / f"beneficiaries-{amc_number}-{import_id}.csv"
    run = _Run(rt, ocam_row, import_id, codes, summary, actor, path, dry_run, accept_closures)
    try:
        with (
            path.open("rb") as f,
            summary.report_path.open("w", newline="", encoding="utf-8") as report,
        ):
            run.report = csv.writer(report, delimiter=";")
            run.report.writerow(["line", "field", "reason"])
            await run.execute(_Tracking(f, run.sha, progress or (lambda _n: None)))
    finally:
        if summary.status != "committed":  # a committed import recorded itself, atomically
            summary.rows_new = summary.rows_changed = summary.rows_unchanged = 0
            summary.rows_closed = 0
            if summary.status == "dry_run":
                summary.rows_new, summary.rows_changed = run.would_new, run.would_changed
                summary.rows_unchanged, summary.rows_closed = run.would_unchanged, run.would_closed
            async with rt.db.transaction() as conn:
                await run.record(conn)
    return summary


def _channel(actor: Principal) -> str:
    return "cli" if actor.kind.value == "system" else "backoffice"


class _Tracking:
    """A binary file that feeds the SHA-256 of the import and the progress bar as it is read."""

    def __init__(self, f: IO[bytes], sha: Any, on_bytes: Callable[[int], None]) -> None:
        self.f, self.sha, self.on_bytes = f, sha, on_bytes

    def readline(self, limit: int = -1) -> bytes:
        raw = self.f.readline(limit)
        self.sha.update(raw)
        return raw


class _Run:
    """One import run: stream, validate, write, then commit with its record or roll back."""

    def __init__(
        self,
        rt: Runtime,
        ocam_row: Any,
        import_id: UUID,
        codes: dict[str, UUID],
        summary: ImportSummary,
        actor: Principal,
        path: Path,
        dry_run: bool,
        accept_closures: bool,
    ) -> None:
        self.rt, self.ocam, self.import_id, self.codes = rt, ocam_row, import_id, codes
        self.summary, self.actor, self.path = summary, actor, path
        self.dry_run, self.accept_closures = dry_run, accept_closures
        self.sha = hashlib.sha256()
        self.started = rt.now()
        self.report: Any = None
        self.would_new = self.would_changed = self.would_unchanged = self.would_closed = 0

    def reject(self, r: Reject) -> None:
        s = self.summary
        s.rows_rejected += 1
        self.report.writerow([r.line, r.field, r.reason])
        if len(s.first_rejects) < 20:
            s.first_rejects.append(r)

    async def execute(self, f: _Tracking) -> None:
        s, today = self.summary, self.rt.today()
        try:
            async with self.rt.db.transaction() as conn:
                imp = _Importer(self.rt, conn, self.ocam, self.import_id, self.codes, s)
                batch: list[Row] = []
                for _header, number, item in _records(f, f.on_bytes):  # type: ignore[arg-type]
                    s.rows_total += 1
                    checked = (
                        item
                        if isinstance(item, Reject)
                        else check_row(number, item, contract_codes=self.codes.keys(), today=today)
                    )
                    if isinstance(checked, Reject):
                        self.reject(checked)
                    elif isinstance(checked, list):
                        for r in checked:
                            self.reject(r)
                    else:
                        batch.append(checked)
                    if len(batch) >= BATCH_ROWS:
                        await imp.write(batch)
                        batch = []
                if batch:
                    await imp.write(batch)
                if s.rows_total == 0:
                    raise FileFormatError(
                        "le fichier ne contient aucun bénéficiaire ; import annulé"
                    )
                if self.rt.db.dialect == "postgresql":
                    # import_seen was filled inside this transaction: without statistics the
                    # planner turns the anti-join of the closing step into a nested loop
                    await conn.execute(sql("ANALYZE import_seen"))
                for r in await imp.duplicates():
                    self.reject(r)
                if s.rows_rejected:
                    s.status = "rejected"
                    raise _Rollback
                s.rows_closed = await imp.close_disappeared(accept_closures=self.accept_closures)
                await conn.execute(
                    delete(import_seen).where(import_seen.c.import_id == self.import_id)
                )
                if self.dry_run:
                    s.status = "dry_run"
                    self.would_new, self.would_changed = s.rows_new, s.rows_changed
                    self.would_unchanged, self.would_closed = s.rows_unchanged, s.rows_closed
                    raise _Rollback
                s.status = "committed"
                await self.record(conn)
        except _Rollback:
            pass
        except (FileFormatError, MassClosure):
            s.status = "rejected"
            raise
        except BaseException:
            s.status = "failed"  # a crash, not a verdict on the file: recorded as such
            raise

    async def record(self, conn: AsyncConnection) -> None:
        s = self.summary
        await conn.execute(
            beneficiary_import.insert().values(
                id=s.import_id,
                ocam_id=self.ocam.id,
                filename=self.path.name[:255],
                sha256=self.sha.hexdigest(),
                actor=self.actor.label,
                status=s.status,
                rows_total=s.rows_total,
                rows_new=s.rows_new,
                rows_changed=s.rows_changed,
                rows_unchanged=s.rows_unchanged,
                rows_closed=s.rows_closed,
                rows_rejected=s.rows_rejected,
                report_path=str(s.report_path),
                started_at=self.started,
                finished_at=self.rt.now(),
            )
        )
        await audit.record(
            conn,
            at=self.rt.now(),
            actor=self.actor,
            channel=_channel(self.actor),
            purpose="beneficiary_import",
            result=s.status,
            subject_kind="import",
            subject_id=s.import_id,
            ocam_id=self.ocam.id,
            detail={"rows": s.rows_total, "rejected": s.rows_rejected, "closed": s.rows_closed},
        )


__all__ = ["COLUMNS", "ImportSummary", "import_beneficiaries"]
