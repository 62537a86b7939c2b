"""Beneficiary import alone: one file of N rows, first import then a no-op re-import.

    uv run python bench/import_file.py [--rows 1000000] [--backends sqlite,postgres] [--repeat 1]

The file is written once with the demo generator (families, twins, lapsed rights) for the first
demo OCAM and kept in ``var/bench/`` for later runs. For each backend: an empty demo database
(``rempart demo --no-serve --beneficiaries 0``: OCAMs, contracts, canaries, no one else), then
``rempart import beneficiaries`` of the file (every row new) and the same command again (every
row unchanged). Prints seconds, rows/s and peak RSS of each import (``wait4``'s rusage, so the
whole command: interpreter, settings, migrations check, import).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_import import REMPART, _cpu_model

from rempart.domain.beneficiary_file import COLUMNS
from rempart.services import demo, demo_data
from rempart.testing.postgres import Cluster

# Durable (fsync, synchronous_commit, full-page writes on), sized as the rights-check bench
# and the ceiling: a bulk load with the default 1 GB of WAL between checkpoints spends its
# time writing full pages.
PG_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}
CHUNK_ROWS = 100_000  # generated and written a chunk at a time: the generator keeps its people


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS in MiB, output) of one command (wait4's rusage).
    CPU time is the command's own: PostgreSQL's work shows in the wall time only."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, text


def bench_file(rows: int) -> tuple[Path, str]:
    amc = demo_data.OCAMS[0][0]
    path = Path(__file__).resolve().parents[1] / "var" / "bench" / f"beneficiaires-{rows}.csv"
    if path.exists():
        return path, amc
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261202)
    partial = path.with_suffix(".part")
    with partial.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(COLUMNS)
        for k, start in enumerate(range(0, rows, CHUNK_ROWS)):
            people = demo._people(
                rng, min(CHUNK_ROWS, rows - start), demo.BIRTHS_RELATIVE_TO, k * 10**7
            )
            w.writerows(demo._file_row(p) for p in people)
    partial.rename(path)
    return path, amc


def run(backend: str, path: Path, amc: str, rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix=f"rempart-bench-import-{backend}-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(REMPART_DATA_DIR=tmp, REMPART_LOG_LEVEL="warning")
        # Byte-compiled modules, as in any installed tree: without them each command spends
        # seconds compiling the CLI's imports before it reads a line.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cluster = None
        if backend == "postgres":
            cluster = Cluster(durable=True, settings=PG_SETTINGS).start()
            env["REMPART_DATABASE_URL"] = cluster.create_database("bench")
        try:
            timed([REMPART, "demo", "--no-serve", "--beneficiaries", "0"], env)
            command = [REMPART, "import", "beneficiaries", str(path), "--amc", amc]
            count = f"{rows:,}".replace(",", " ")
            for label, expected in (
                ("first import", "Nouveaux"),
                ("re-import (no-op)", "Inchangés"),
            ):
                seconds, cpu, rss, out = timed(command, env)
                assert "importé" in out, out[-2000:]
                assert any(expected in ln and f" {count} " in ln for ln in out.splitlines()), out
                print(
                    f"{backend}: {label} of {rows:,} rows: {seconds:.1f} s "
                    f"({rows / seconds:,.0f} rows/s), CPU {cpu:.1f} s, peak RSS {rss} MiB",
                    flush=True,
                )
        finally:
            if cluster is not None:
                cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: nproc={os.cpu_count()}, {_cpu_model()}", flush=True)
    path, amc = bench_file(args.rows)
    for _ in range(args.repeat):
        for backend in args.backends.split(","):
            run(backend, path, amc, args.rows)


if __name__ == "__main__":
    main()
