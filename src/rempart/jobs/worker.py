"""The worker loop: batch jobs that keep state tables tidy and, with later issues, decide
invoices and seal the audit log. Each job is idempotent and safe to run from several workers at
once (work is state in tables; PostgreSQL picks rows with ``SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from sqlalchemy import delete

from rempart.db.tables import api_token
from rempart.services import adjudication, audit_log, key_rotation, outbox
from rempart.services.runtime import Runtime

log = structlog.get_logger("rempart.worker")

Job = Callable[[Runtime], Awaitable[int]]


async def purge_expired_tokens(rt: Runtime) -> int:
    """Tokens expired for more than a day are of no use; their audit rows stay."""
    cutoff = rt.now() - timedelta(days=1)
    async with rt.db.transaction() as conn:
        result = await conn.execute(delete(api_token).where(api_token.c.expires_at < cutoff))
    return result.rowcount or 0


async def seal_audit_log(rt: Runtime) -> int:
    """Seal pending audit rows into the signed Merkle tree (DESIGN §4.6: at least every 60 s;
    the loop runs every few seconds)."""
    return sum(cp.sealed_rows for cp in await audit_log.checkpoint_all(rt))


async def decide_invoices(rt: Runtime) -> int:
    """Decide received invoices, batch after batch (stops when the channel is switched off)."""
    return await adjudication.decide_all(rt)


async def deliver_mail(rt: Runtime) -> int:
    """Send pending notifications when an SMTP server is configured."""
    return await outbox.deliver(rt)


JOBS: tuple[tuple[str, Job], ...] = (
    ("decide_invoices", decide_invoices),
    ("deliver_mail", deliver_mail),
    ("purge_expired_tokens", purge_expired_tokens),
    ("seal_audit_log", seal_audit_log),
)


async def run_once(rt: Runtime) -> dict[str, int]:
    await key_rotation.load(rt)  # a rotation elsewhere: write with the new version from now on
    done = {}
    for name, job in JOBS:
        try:
            done[name] = await job(rt)
        except Exception:  # one job failing must not stop the others (sealing, above all)
            log.exception("worker.job_failed", job=name)
            done[name] = 0
            continue
        if done[name]:
            log.info("worker.job", job=name, rows=done[name])
    return done


async def run_forever(rt: Runtime, *, interval_seconds: float | None = None) -> None:
    idle_seconds = interval_seconds or rt.settings.worker_interval_seconds
    while True:
        busy = False
        try:
            busy = any((await run_once(rt)).values())
        except Exception:  # a failed round must not kill the loop; it is logged and retried
            log.exception("worker.round_failed")
        # a round that found work goes on at once: a backlog is drained, not paced
        await asyncio.sleep(0 if busy else idle_seconds)
