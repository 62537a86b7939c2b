"""``rempart account recover`` / ``approve-recovery`` through the Typer app, on SQLite: two
different operators, the link printed once, the same operator twice refused."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from rempart.cli import app
from rempart.db.engine import Database, create_engine
from rempart.db.migrate import upgrade
from rempart.db.tables import invitation, recovery_request
from rempart.domain.roles import Role
from rempart.security.keys import KeyRing
from rempart.services.registry import create_account
from rempart.services.runtime import Runtime
from tests import factories as f
from tests.conftest import MASTER_KEY, make_settings


def test_recovery_from_the_command_line(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    upgrade(settings.database)
    rt = Runtime(settings, Database(create_engine(settings.database)), KeyRing(MASTER_KEY))

    async def seed() -> None:
        pro = await f.professional(rt)
        await create_account(rt, username="t.lenoir", display_name="T. Lenoir",
                             email="t@example.test", role=Role.TITULAIRE,
                             structure_id=pro.structure_id, actor=f.ACTOR)  # fmt: skip
        for name in ("securite.a", "securite.b"):
            await create_account(rt, username=name, display_name=name, email="s@example.test",
                                 role=Role.SECURITY, actor=f.ACTOR)  # fmt: skip
        await rt.db.dispose()

    asyncio.run(seed())
    env = {
        "REMPART_ENV": "test",
        "REMPART_DATA_DIR": str(tmp_path),
        "REMPART_MASTER_KEY": base64.urlsafe_b64encode(MASTER_KEY).decode(),
        "REMPART_BASE_URL": "https://portail.example.test",
    }
    cli = CliRunner()
    asked = cli.invoke(app, ["account", "recover", "t.lenoir", "--actor", "securite.a",
                             "--reason", "rappel au numéro connu"], env=env)  # fmt: skip
    assert asked.exit_code == 0, asked.output
    [request_id] = re.findall(r"[0-9a-f-]{36}", asked.output)
    same = cli.invoke(app, ["account", "approve-recovery", request_id, "--actor", "securite.a"],
                      env=env)  # fmt: skip
    assert same.exit_code == 1 and "autre personne" in same.output
    ok = cli.invoke(app, ["account", "approve-recovery", request_id, "--actor", "securite.b"],
                    env=env)  # fmt: skip
    assert ok.exit_code == 0, ok.output
    [link] = re.findall(r"https://portail\.example\.test/inscription/(\S+)", ok.output)

    async def check() -> tuple[str, int]:
        async with rt.db.read() as conn:
            status = (await conn.execute(select(recovery_request.c.status))).scalar_one()
            live = await conn.execute(
                select(invitation.c.id).where(
                    invitation.c.token_hash == rt.keys.token_hash("invitation\x00" + link),
                    invitation.c.used_at.is_(None),
                )
            )
            n = len(live.all())
        await rt.db.dispose()
        return status, n

    assert asyncio.run(check()) == ("approved", 1)
