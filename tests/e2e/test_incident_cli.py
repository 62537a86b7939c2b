"""``rempart incident …`` as an operator types it, on the zero-setup SQLite path: publish,
update and close an incident (it shows on ``/status.atom`` data), and the commands that name
people refuse a bare shell without ``--actor``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from rempart.db.tables import incident, incident_update

RempartBin = str(Path(sys.executable).with_name("rempart"))


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RempartBin, *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
    e.update(REMPART_DATA_DIR=str(tmp_path), REMPART_LOG_LEVEL="warning", COLUMNS="200")
    assert _cli(e, "db", "upgrade").returncode == 0
    return e


def test_publish_update_close_and_refusals(env: dict[str, str], tmp_path: Path) -> None:
    opened = _cli(
        env,
        "incident",
        "open",
        "--title",
        "Portail fermé",
        "--summary",
        "Par précaution.",
        "--next-update",
        "2999-01-01T10:00+01:00",
    )
    assert opened.returncode == 0, opened.stderr
    bad = _cli(env, "incident", "update", "--summary", "Suite.", "--next-update", "demain")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
    assert _cli(env, "incident", "update", "--summary", "Suite.").returncode == 0
    assert _cli(env, "incident", "close", "--summary", "Rouvert.").returncode == 0
    scope = _cli(env, "incident", "scope", "--client", "cli_nobody")
    assert scope.returncode == 1 and "rôle sécurité" in scope.stderr  # no --actor: refused
    mass = _cli(env, "incident", "revoke", "--all", "--reason", "x")
    assert mass.returncode == 1 and "rôle sécurité" in mass.stderr
    engine = create_engine(f"sqlite:///{tmp_path / 'rempart.db'}")
    with engine.connect() as conn:
        state = conn.execute(select(incident.c.status, incident.c.summary)).one()
        kinds = (
            conn.execute(select(incident_update.c.kind).order_by(incident_update.c.at))
            .scalars()
            .all()
        )
    engine.dispose()
    assert tuple(state) == ("closed", "Rouvert.")
    assert kinds == ["open", "update", "close"]
