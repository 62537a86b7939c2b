"""The tamper-evident audit log on PostgreSQL: seal, verify, detect edits, deletions and
reorderings naming what changed, and inclusion proofs an outsider verifies with the key alone."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from rempart.db.tables import audit_checkpoint, audit_event
from rempart.security import audit
from rempart.services import audit_log
from rempart.services.runtime import Runtime
from tests import factories as f

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
