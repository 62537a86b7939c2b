"""Use case: import an insurer's beneficiary file (DESIGN §2.2, ``docs/formats/beneficiaries.md``).

The file is a full snapshot of the OCAM's beneficiaries. The import streams it (memory flat in
the file's size), validates every row, and then either commits everything or nothing:

- any rejected row → nothing is written, the reject report lists every problem (line, field,
  reason) and the import is recorded as ``rejected``;
- otherwise new people are added, changed rows updated, unchanged rows left alone (a re-import
  of the same file writes nothing but its own record), and people who disappeared from the file
  have their rights closed the day before the import.

Per batch of rows: each row's card index and keyed fingerprint are computed from its text, one
indexed read fetches the existing people of the batch, and a row whose fingerprint equals the
stored one is unchanged — it is neither validated again (its every field equals one that passed
validation) nor encrypted. The other rows are checked field by field; valid new and changed rows
are encrypted and handed to the database's bulk path (``db.beneficiary_bulk``: COPY on
PostgreSQL, ``executemany`` on SQLite). Duplicates inside the file and the people who
disappeared are found by set-based statements over a temporary table of the file's cards, not
by a set in memory.
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.beneficiary_bulk import Stage
from rempart.db.tables import beneficiary_import, contract
from rempart.domain.beneficiary_file import (
    COLUMNS,
    FileFormatError,
    Reject,
    Row,
    check_fields,
)
from rempart.domain.errors import FieldError, Forbidden, InvalidFields, RempartError
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.keys import KeyRing
from rempart.security.principal import Principal
from rempart.security.pseudonyms import adherent_index, fingerprint, nir_index
from rempart.services.beneficiary_reader import records
from rempart.services.registry import ocam_by_number
from rempart.services.runtime import Runtime

BATCH_ROWS = 2000
Item = tuple[int, tuple[str, ...] | Reject]  # (line, values in COLUMNS order, or its reject)
Progress = Callable[[int, int], None]  # (bytes read, rows done) since the previous call


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


def _row_fingerprint(keys: KeyRing, r: Row, contract_id: UUID) -> bytes:
    return fingerprint(
        keys, r.nir.value, r.last_name, r.first_name, contract_id, r.valid_from, r.valid_to
    )


def _quick_keys(
    keys: KeyRing, amc: str, contracts: dict[str, str], values: tuple[str, ...]
) -> tuple[bytes, bytes | None]:
    """Card index and fingerprint straight from a row's text. For a valid row they equal what
    ``card_index`` and ``_row_fingerprint`` give for its checked ``Row`` (the checks accept a
    date, a rank or a name only in the form they store it), NIR written in its compact form
    included; any other text gives a fingerprint no stored row has."""
    adherent, rank, nir, birth, last, first, code, start, end = (v.strip() for v in values)
    card = keys.blind_index("card", f"{amc}|{adherent.upper()}|{birth}|{rank}")
    contract_id = contracts.get(code)
    if contract_id is None:
        return card, None
    fp = keys.blind_index(
        "fingerprint", f"{nir}\x1f{last}\x1f{first}\x1f{contract_id}\x1f{start}\x1f{end or None}"
    )
    return card, fp


class _Importer:
    """Decides, per batch, what each row is (unchanged, new, changed, rejected) and hands the
    writes to the stage."""

    def __init__(
        self,
        rt: Runtime,
        stage: Stage,
        ocam_row: Any,
        contracts: dict[str, UUID],
        summary: ImportSummary,
        reject: Callable[[Reject], None],
    ) -> None:
        self.keys, self.stage, self.ocam, self.summary = rt.keys, stage, ocam_row, summary
        self.contracts, self.reject = contracts, reject
        self.contract_text = {code: str(cid) for code, cid in contracts.items()}
        self.now, self.today = rt.now(), rt.today()

    async def write(self, batch: list[Item]) -> None:
        keys, amc, contracts = self.keys, self.ocam.amc_number, self.contract_text
        quick = [
            None if isinstance(item, Reject) else _quick_keys(keys, amc, contracts, item)
            for _, item in batch
        ]
        found = await self.stage.existing(list({q[0] for q in quick if q is not None}))
        seen: list[tuple[int, bytes]] = []
        new: list[tuple[Any, ...]] = []
        changed: list[tuple[Any, ...]] = []
        written: set[bytes] = set()
        s = self.summary
        for (number, item), q in zip(batch, quick, strict=True):
            if isinstance(item, Reject) or q is None:
                self.reject(item)  # type: ignore[arg-type]
                continue
            card, fp = q
            old = found.get(card)
            if old is not None and old[2] and old[1] == fp:
                s.rows_unchanged += 1  # equal to a row that passed every check: no check
                seen.append((number, card))
                continue
            checked = check_fields(number, item, contract_codes=self.contracts, today=self.today)
            if isinstance(checked, list):
                for r in checked:
                    self.reject(r)
                continue
            seen.append((number, card))
            if s.rows_rejected or card in written:
                continue  # nothing will be committed, or a duplicate the stage will report
            contract_id = self.contracts[checked.contract_code]
            if fp is None or checked.nir.value != item[2].strip():
                fp = _row_fingerprint(keys, checked, contract_id)
            if old is not None and old[2] and old[1] == fp:
                s.rows_unchanged += 1
                continue
            written.add(card)
            if old is None:
                s.rows_new += 1
                new.append(self._new(card, fp, contract_id, checked))
            else:
                s.rows_changed += 1
                changed.append(self._changed(self.stage.row_id(old[0]), fp, contract_id, checked))
        await self.stage.write(seen, new, changed)

    def _encrypted(self, row_id: UUID, r: Row) -> list[bytes]:
        return self.keys.encrypt_fields(
            "beneficiary",
            row_id,
            (
                ("adherent_number", r.adherent_number),
                ("nir", r.nir.value),
                ("birth_date", r.birth_date.isoformat()),
                ("last_name", r.last_name),
                ("first_name", r.first_name),
            ),
        )

    def _new(self, card: bytes, fp: bytes, contract_id: UUID, r: Row) -> tuple[Any, ...]:
        keys, row_id = self.keys, uuid.uuid4()
        return (  # db.beneficiary_bulk.NEW_COLUMNS
            row_id,
            self.ocam.id,
            card,
            adherent_index(keys, self.ocam.amc_number, r.adherent_number),
            nir_index(keys, r.nir.value),
            *self._encrypted(row_id, r),
            r.rank,
            contract_id,
            r.valid_from,
            r.valid_to,
            None,
            fp,
            keys.current_version,
            False,
            self.now,
            self.now,
        )

    def _changed(self, row_id: UUID, fp: bytes, contract_id: UUID, r: Row) -> tuple[Any, ...]:
        return (  # db.beneficiary_bulk.CHANGED_COLUMNS
            row_id,
            nir_index(self.keys, r.nir.value),
            *self._encrypted(row_id, r),
            r.rank,
            contract_id,
            r.valid_from,
            r.valid_to,
            None,
            fp,
            self.keys.current_version,
            self.now,
        )

    async def duplicates(self) -> list[Reject]:
        return [
            Reject(
                line,
                "adherent_number",
                f"même bénéficiaire (adhérent, naissance, rang) qu'à la ligne {first}",
            )
            for line, first in await self.stage.duplicates()
        ]

    async def close_disappeared(self, *, accept_closures: bool, ratio_max: float) -> int:
        """Close the rights of the people absent from the file, unless that is a suspicious
        share of the OCAM's open rights (a truncated or wrong export) and nobody said yes."""
        if not accept_closures:
            open_total, closing = await self.stage.closing_counts(self.ocam.id)
            if closing and closing > ratio_max * open_total:
                raise MassClosure(closing, open_total, ratio_max)
        yesterday = self.today - timedelta(days=1)
        return await self.stage.close_absent(self.ocam.id, on=yesterday, now=self.now)


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
    progress: Progress | None = None,
) -> ImportSummary:
    """``progress`` is called as the file is read with (bytes read, rows done) since its
    previous call."""
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
            await run.execute(_Tracking(f, run.sha, progress or (lambda _b, _r: None)))
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
    """A binary file that feeds the SHA-256 of the import as it is read, and counts the bytes
    for the progress bar."""

    def __init__(self, f: IO[bytes], sha: Any, progress: Progress) -> None:
        self.f, self.sha, self.progress = f, sha, progress
        self.unreported_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.sha.update(data)
        self.unreported_bytes += len(data)
        return data

    def report(self, rows: int) -> None:
        self.progress(self.unreported_bytes, rows)
        self.unreported_bytes = 0


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
        s = self.summary
        try:
            async with self.rt.db.transaction() as conn:
                stage = await Stage.open(conn, self.import_id.hex)
                imp = _Importer(self.rt, stage, self.ocam, self.codes, s, self.reject)
                batch: list[Item] = []
                for _header, number, item in records(f):  # type: ignore[arg-type]
                    batch.append((number, item))
                    if len(batch) >= BATCH_ROWS:
                        await self._write(imp, f, batch)
                        batch = []
                await self._write(imp, f, batch)
                if s.rows_total == 0:
                    raise FileFormatError(
                        "le fichier ne contient aucun bénéficiaire ; import annulé"
                    )
                await stage.scanned()
                for r in await imp.duplicates():
                    self.reject(r)
                if s.rows_rejected:
                    s.status = "rejected"
                    raise _Rollback
                await stage.merge()
                s.rows_closed = await imp.close_disappeared(
                    accept_closures=self.accept_closures,
                    ratio_max=self.rt.settings.import_closure_ratio_max,
                )
                await stage.drop()
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

    async def _write(self, imp: _Importer, f: _Tracking, batch: list[Item]) -> None:
        if batch:
            self.summary.rows_total += len(batch)
            await imp.write(batch)
        f.report(len(batch))

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
