"""The ``kill -9`` acceptance item of the claims issue, 10 trials (``bench/claims_crash.py``;
``make bench-claims-crash`` runs the 100): the intake server and the workers are killed at
random moments while senders retry with the same keys, and nothing is lost, duplicated or
decided twice."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "claims_crash.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("claims_crash", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_9_of_server_and_workers_nothing_lost_duplicated_or_decided_twice() -> None:
    bench = _bench()
    total = bench.run(trials=10, kills=2)
    assert {c: total[c] for c in bench.CHECKS} == dict.fromkeys(bench.CHECKS, 0), total
    assert total["refused"] == 0, total  # no 4xx: every retry was a faithful replay
    assert total["http_5xx"] == 0, total  # copies of one request at once included
    assert total["audit_problems"] == 0, total  # the log the killed workers sealed verifies
    assert total["acked"] == total["sent"] > 0
    # the invoices were accepted for real; the rejections are the duplicates sent on purpose
    assert total["accepted"] > 5 * total["rejected"] > 0, total
    assert total["server_kills"] >= 10 and total["worker_kills"] >= 10, total
