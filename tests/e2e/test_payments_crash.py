"""kill -9 during prepare and during export, ten trials on a durable PostgreSQL (issue 6): the
bench's own script, smaller — 0 lost, 0 duplicated transfers, byte-identical files, money
conserved. ``make bench-payments-crash`` runs the hundred trials."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "payments_crash.py"


@pytest.mark.slow
@pytest.mark.postgres
def test_ten_trials_of_kill_9_lose_nothing_and_pay_nothing_twice() -> None:
    args = ["--trials", "10", "--structures", "120", "--invoices", "1200", "--seed", "6"]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    counts = dict(re.findall(r"(\w+)=(\d+)", last))
    assert counts["trials"] == "10"
    # a kill lands after the process ended now and then (load varies): most do not
    assert int(counts["prepare_kills"]) >= 2 and int(counts["export_kills"]) >= 2
    for name in ("lost", "duplicated", "differing_files", "unbalanced", "failed"):
        assert counts[name] == "0", last
