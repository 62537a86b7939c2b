"""The tamper-evident audit log on PostgreSQL: seal, verify, detect edits, deletions and
reorderings naming what changed, and inclusion proofs an outsider verifies with the key alone."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from rempart.db.engine import Database, create_engine
from rempart.db.migrate import upgrade
from rempart.db.tables import audit_checkpoint, audit_event
from rempart.domain.merkle import leaf_hash
from rempart.security import audit
from rempart.security.keys import KeyRing
from rempart.security.principal import ActorKind, Principal
from rempart.services import audit_log
from rempart.services.runtime import Runtime
from rempart.testing.postgres import Cluster
from tests import factories as f
from tests.conftest import make_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "verify_audit_proof.py"


async def _events(rt: Runtime, n: int, clock) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    ids = []
    async with rt.db.transaction() as conn:
        for i in range(n):
            clock.advance(seconds=1)
            ids.append(
                await audit.record(
                    conn,
                    at=rt.now(),
                    actor=f.ACTOR,
                    channel="api",
                    purpose="rights_check",
                    result="covered",
                    subject_kind="beneficiary",
                    subject_id=uuid.uuid4(),
                    categories=("coverage",),
                    detail={"i": i},
                )
            )
    return ids


async def _ids_by_leaf(rt: Runtime) -> list[uuid.UUID]:
    async with rt.db.transaction() as conn:
        return list(
            (
                await conn.execute(select(audit_event.c.id).order_by(audit_event.c.leaf_index))
            ).scalars()
        )


async def test_checkpoints_seal_in_order_and_verify(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    ids = await _events(rt, 7, clock)
    first = await audit_log.checkpoint(rt)
    assert first is not None
    assert (first.tree_size, first.sealed_rows) == (7, 7)
    assert await audit_log.checkpoint(rt) is None  # nothing pending
    await _events(rt, 5, clock)
    second = await audit_log.checkpoint(rt, rows_max=3)
    third = await audit_log.checkpoint(rt)
    assert (second.tree_size, third.tree_size) == (10, 12)  # type: ignore[union-attr]
    assert (await _ids_by_leaf(rt))[:7] == ids
    report = await audit_log.verify(rt)
    assert (report.ok, report.rows, report.checkpoints) == (True, 12, 3)


async def test_an_edited_row_is_named(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    ids = await _events(rt, 6, clock)
    await audit_log.checkpoint_all(rt)
    async with rt.db.transaction() as conn:
        await conn.execute(
            update(audit_event).where(audit_event.c.id == ids[3]).values(result="unknown")
        )
    report = await audit_log.verify(rt)
    assert not report.ok
    assert report.problems == [
        f"événement {ids[3]} (feuille 3) modifié"
    ]  # the stored hash names it


async def test_an_edit_that_also_rewrites_the_leaf_hash_breaks_the_signed_root(
    rt: Runtime, clock
) -> None:  # type: ignore[no-untyped-def]
    from rempart.domain.merkle import leaf_hash

    ids = await _events(rt, 4, clock)
    await audit_log.checkpoint_all(rt)
    async with rt.db.transaction() as conn:
        await conn.execute(
            update(audit_event).where(audit_event.c.id == ids[1]).values(actor_label="someone else")
        )
        row = (await conn.execute(select(audit_event).where(audit_event.c.id == ids[1]))).one()
        await conn.execute(
            update(audit_event)
            .where(audit_event.c.id == ids[1])
            .values(leaf_hash=leaf_hash(audit.leaf_data(row)))
        )
    report = await audit_log.verify(rt)
    assert report.problems == [
        "point de contrôle 4 : racine différente (une ligne scellée a été modifiée, retirée ou déplacée)"
    ]


async def test_a_deleted_row_and_a_reordering_are_detected(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    ids = await _events(rt, 5, clock)
    await audit_log.checkpoint_all(rt)
    async with rt.db.transaction() as conn:
        await conn.execute(audit_event.delete().where(audit_event.c.id == ids[2]))
    report = await audit_log.verify(rt)
    assert "feuilles 2 à 2 manquantes (lignes supprimées)" in report.problems

    async with rt.db.transaction() as conn:  # swap two rows' positions
        await conn.execute(text("UPDATE audit_event SET leaf_index = -1 WHERE leaf_index = 0"))
        await conn.execute(text("UPDATE audit_event SET leaf_index = 0 WHERE leaf_index = 1"))
        await conn.execute(text("UPDATE audit_event SET leaf_index = 1 WHERE leaf_index = -1"))
    report = await audit_log.verify(rt)
    assert f"événement {ids[0]} (feuille 1) modifié" in report.problems
    assert f"événement {ids[1]} (feuille 0) modifié" in report.problems


async def test_a_forged_checkpoint_signature_is_detected(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    await _events(rt, 3, clock)
    await audit_log.checkpoint_all(rt)
    async with rt.db.transaction() as conn:
        await conn.execute(update(audit_checkpoint).values(signature=b"\0" * 64))
    assert (await audit_log.verify(rt)).problems == ["point de contrôle 3 : signature invalide"]


@pytest.mark.parametrize("n", [1, 2, 9, 33])
async def test_inclusion_proofs_verify_with_the_public_key_alone(
    rt: Runtime, clock, tmp_path: Path, n: int
) -> None:  # type: ignore[no-untyped-def]
    ids = await _events(rt, n, clock)
    await audit_log.checkpoint_all(rt)
    for event_id in {ids[0], ids[n // 2], ids[-1]}:
        proof = (await audit_log.prove(rt, event_id)).as_dict()
        path = tmp_path / "proof.json"
        path.write_text(json.dumps(proof))
        key = audit_log.public_key(rt).hex()
        ok = subprocess.run(
            [sys.executable, str(EXAMPLE), str(path), "--public-key", key],
            capture_output=True,
            text=True,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.startswith("OK: event")
        forged = {**proof, "leaf_data": proof["leaf_data"].replace('"covered"', '"unknown"')}
        path.write_text(json.dumps(forged))
        bad = subprocess.run(
            [sys.executable, str(EXAMPLE), str(path), "--public-key", key],
            capture_output=True,
            text=True,
        )
        assert bad.returncode == 1
        assert "does not lead to the signed root" in bad.stdout


async def test_an_unsealed_event_has_no_proof_yet(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    from rempart.domain.errors import NotFound

    [event_id] = await _events(rt, 1, clock)
    with pytest.raises(NotFound):
        await audit_log.prove(rt, event_id)


async def test_sealed_rows_beyond_the_last_signed_head_are_reported(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    await _events(rt, 4, clock)
    await audit_log.checkpoint_all(rt)
    [extra] = await _events(rt, 1, clock)
    async with rt.db.transaction() as conn:  # a row slipped in with the next index, unsigned
        await conn.execute(
            update(audit_event)
            .where(audit_event.c.id == extra)
            .values(leaf_index=4, leaf_hash=b"\0" * 32)
        )
    problems = (await audit_log.verify(rt)).problems
    assert (
        "feuilles 4 à 4 hors de tout point de contrôle signé (lignes ajoutées ou point de contrôle supprimé)"
        in problems
    )


async def test_the_standalone_verifier_refuses_a_relabelled_proof(
    rt: Runtime, clock, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ids = await _events(rt, 3, clock)
    await audit_log.checkpoint_all(rt)
    proof = {**(await audit_log.prove(rt, ids[0])).as_dict(), "event_id": str(ids[1])}
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    r = subprocess.run(
        [sys.executable, str(EXAMPLE), str(path), "--public-key", audit_log.public_key(rt).hex()],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert "not the event the proof names" in r.stdout


# -- verify at scale: the COPY fast path, chunks, workers -----------------------------------

_ROOT_DIFFERS = "racine différente (une ligne scellée a été modifiée, retirée ou déplacée)"


async def _raw_events(rt: Runtime, clock, **overrides: object) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    """One row per keyword, its column set to the value as is (no JSON, no label rules)."""
    ids = []
    async with rt.db.transaction() as conn:
        for column, value in overrides.items():
            clock.advance(seconds=1)
            values = audit.row(
                at=rt.now(),
                actor=Principal(ActorKind.CLIENT, uuid.uuid4(), "cli_x", None, uuid.uuid4()),
                channel="api-rights",
                purpose="rights_check",
                result="covered",
                detail={"domain": "PHAR"},
            )
            values[column.rstrip("_0123456789")] = value
            await conn.execute(audit_event.insert().values(**values))
            ids.append(values["id"])
    return ids


async def test_the_fast_path_vouches_for_what_copy_and_json_escape_alike(
    rt: Runtime, clock
) -> None:  # type: ignore[no-untyped-def]
    ids = await _raw_events(
        rt,
        clock,
        actor_label='guillemets " et \\ barre',
        detail='{"raison": "\\u00e9t\\u00e9"}',  # what json.dumps writes for « été »
        categories="tab\tline\nreturn\rback\bfeed\f",
        subject_kind="bénéficiaire ✓",
        detail_2=None,
        actor_label_2="\\N",  # the text COPY writes for NULL, as a value
        result="",
    )
    await audit_log.checkpoint_all(rt)
    report = await audit_log.verify(rt)
    assert (report.ok, report.rows, report.rechecked) == (True, len(ids), 0)

    odd = await _raw_events(rt, clock, actor_label="vertical\vtab", detail="bell\x07")
    await audit_log.checkpoint_all(rt)
    report = await audit_log.verify(rt)  # JSON writes these \u000b, \u0007: leaf_data decides
    assert (report.ok, report.rechecked) == (True, 2)

    async with rt.db.transaction() as conn:
        for event_id in (ids[0], odd[0]):
            await conn.execute(
                update(audit_event).where(audit_event.c.id == event_id).values(result="unknown")
            )
    assert (await audit_log.verify(rt)).problems == [
        f"événement {ids[0]} (feuille 0) modifié",
        f"événement {odd[0]} (feuille {len(ids)}) modifié",
    ]


async def test_a_time_moved_to_the_same_date_bc_is_named(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    # to_char's YYYY prints 2026 BC as 2026: the fast path must not take it for the sealed time
    ids = await _events(rt, 3, clock)
    await audit_log.checkpoint_all(rt)
    async with rt.db.transaction() as conn:
        await conn.execute(
            text(
                "UPDATE audit_event SET at = (to_char(at AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD HH24:MI:SS.US') || '+00 BC')::timestamptz WHERE id = :id"
            ),
            {"id": ids[1]},
        )
    assert (await audit_log.verify(rt)).problems == [f"événement {ids[1]} (feuille 1) modifié"]


async def test_deleting_the_last_row_of_a_checkpoint_breaks_its_root(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    await _events(rt, 6, clock)
    await audit_log.checkpoint(rt, rows_max=3)
    await audit_log.checkpoint(rt)
    async with rt.db.transaction() as conn:
        await conn.execute(text("DELETE FROM audit_event WHERE leaf_index = 2"))
    assert (await audit_log.verify(rt)).problems == [
        "feuilles 2 à 2 manquantes (lignes supprimées)",
        f"point de contrôle 3 : {_ROOT_DIFFERS}",
        f"point de contrôle 6 : {_ROOT_DIFFERS}",
    ]
    async with rt.db.transaction() as conn:  # the last rows: nothing follows to show a gap
        await conn.execute(text("DELETE FROM audit_event WHERE leaf_index >= 4"))
    assert (await audit_log.verify(rt)).problems[-1] == (
        "point de contrôle 6 : seules 4 feuilles subsistent (des lignes scellées ont été supprimées)"
    )


async def test_forged_rows_at_a_negative_or_a_taken_index_are_named(rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    sealed = await _events(rt, 3, clock)
    await audit_log.checkpoint_all(rt)
    forged = await _events(rt, 2, clock)
    async with rt.db.transaction() as conn:  # a DBA drops the unique index, then forges rows
        await conn.execute(
            text("ALTER TABLE audit_event DROP CONSTRAINT uq_audit_event_leaf_index")
        )
        for event_id, index in zip(forged, (-1, 1), strict=True):
            row = (
                await conn.execute(select(audit_event).where(audit_event.c.id == event_id))
            ).one()
            h = leaf_hash(audit.leaf_data({**row._asdict(), "leaf_index": index}))
            await conn.execute(
                update(audit_event)
                .where(audit_event.c.id == event_id)
                .values(leaf_index=index, leaf_hash=h)  # hashes that match: only places betray
            )
    problems = (await audit_log.verify(rt)).problems
    assert (
        "feuilles -1 à -1 hors de tout point de contrôle signé (lignes ajoutées ou point de contrôle supprimé)"
        in problems
    )
    # the two rows at leaf 1 come in either order: the second is named, and when it is the
    # true one, the forged one in the tree changes the root
    assert {f"événement {x} (feuille 1) modifié" for x in (forged[1], sealed[1])} & set(problems)


async def test_verify_on_sqlite(sqlite_rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    ids = await _events(sqlite_rt, 9, clock)
    await audit_log.checkpoint(sqlite_rt, rows_max=4)
    await audit_log.checkpoint(sqlite_rt)
    report = await audit_log.verify(sqlite_rt, chunk_leaves=4)
    assert (report.ok, report.rows, report.checkpoints) == (True, 9, 2)
    async with sqlite_rt.db.transaction() as conn:
        await conn.execute(
            update(audit_event).where(audit_event.c.id == ids[1]).values(result="unknown")
        )
        await conn.execute(audit_event.delete().where(audit_event.c.id.in_(ids[3:5])))
    assert (await audit_log.verify(sqlite_rt, chunk_leaves=4)).problems == [
        f"événement {ids[1]} (feuille 1) modifié",
        "feuilles 3 à 4 manquantes (lignes supprimées)",
        f"point de contrôle 4 : {_ROOT_DIFFERS}",
        f"point de contrôle 9 : {_ROOT_DIFFERS}",
    ]


@pytest.fixture
async def own_rt(
    pg_cluster: Cluster, tmp_path: Path, clock, keys: KeyRing
) -> AsyncIterator[Runtime]:  # type: ignore[no-untyped-def]
    """A database of its own, committed as in production: verify's workers can see it."""
    name = f"audit_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    upgrade(url)
    db = Database(create_engine(url, pool_size=2))
    try:
        yield Runtime(make_settings(tmp_path, database_url=url), db, keys, clock=clock)
    finally:
        await db.dispose()
        pg_cluster.psql(f'DROP DATABASE "{name}"')


async def _all_ways(rt: Runtime) -> list[str]:
    """Verify in worker processes over chunks of 4 and 8 leaves, and in one scan of one chunk:
    the same problems, in the same order."""
    reports = [
        await audit_log.verify(rt, processes=2, chunk_leaves=4),
        await audit_log.verify(rt, processes=2, chunk_leaves=8),
        await audit_log.verify(rt, processes=1),
    ]
    assert len({(r.rows, r.checkpoints, tuple(r.problems)) for r in reports}) == 1, reports
    return reports[0].problems


async def test_workers_scan_chunks_and_find_what_one_scan_finds(own_rt: Runtime, clock) -> None:  # type: ignore[no-untyped-def]
    rt = own_rt
    ids = await _events(rt, 23, clock)
    for rows_max in (5, 6, 5):
        await audit_log.checkpoint(rt, rows_max=rows_max)
    await audit_log.checkpoint(rt)  # heads at 5, 11, 16 and 23 leaves
    assert await _all_ways(rt) == []

    async with rt.db.transaction() as conn:
        await conn.execute(audit_event.delete().where(audit_event.c.id.in_(ids[7:9])))
        await conn.execute(
            update(audit_event).where(audit_event.c.id == ids[13]).values(result="unknown")
        )
        row = (await conn.execute(select(audit_event).where(audit_event.c.id == ids[4]))).one()
        edited = {**row._asdict(), "actor_label": "someone else"}
        await conn.execute(
            update(audit_event)
            .where(audit_event.c.id == ids[4])
            .values(actor_label="someone else", leaf_hash=leaf_hash(audit.leaf_data(edited)))
        )
    assert await _all_ways(rt) == [
        f"point de contrôle 5 : {_ROOT_DIFFERS}",
        "feuilles 7 à 8 manquantes (lignes supprimées)",  # across two chunks of 4, said once
        f"point de contrôle 11 : {_ROOT_DIFFERS}",
        f"événement {ids[13]} (feuille 13) modifié",
        f"point de contrôle 16 : {_ROOT_DIFFERS}",
        f"point de contrôle 23 : {_ROOT_DIFFERS}",
    ]


async def test_workers_report_rows_beyond_the_last_head_and_lost_ones(
    own_rt: Runtime, clock
) -> None:  # type: ignore[no-untyped-def]
    rt = own_rt
    await _events(rt, 10, clock)
    await audit_log.checkpoint(rt, rows_max=6)
    await audit_log.checkpoint(rt)
    [extra] = await _events(rt, 1, clock)
    async with rt.db.transaction() as conn:
        await conn.execute(
            update(audit_event)
            .where(audit_event.c.id == extra)
            .values(leaf_index=12, leaf_hash=b"\0" * 32)
        )
    assert await _all_ways(rt) == [
        "feuilles 10 à 11 manquantes (lignes supprimées)",
        f"événement {extra} (feuille 12) modifié",
        "feuilles 10 à 12 hors de tout point de contrôle signé (lignes ajoutées ou point de contrôle supprimé)",
    ]
    async with rt.db.transaction() as conn:
        await conn.execute(text("DELETE FROM audit_event WHERE leaf_index >= 7"))
    assert await _all_ways(rt) == [
        "point de contrôle 10 : seules 7 feuilles subsistent (des lignes scellées ont été supprimées)"
    ]
