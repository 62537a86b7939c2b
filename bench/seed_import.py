"""Seeding and beneficiary import at scale, on SQLite and on PostgreSQL.

    uv run python bench/seed_import.py [--beneficiaries 1000000] [--backends sqlite,postgres]

For each backend: ``rempart demo --no-serve`` with N beneficiaries (four OCAM files imported
through the real import), then a re-import of the first OCAM's file (a no-op). Prints wall time,
rows/s and peak RSS of each command, as one line per step and a final summary.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rempart.testing.postgres import Cluster

REMPART = str(Path(sys.executable).with_name("rempart"))


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak RSS in MiB, output) of one command, from wait4's rusage."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return elapsed, usage.ru_maxrss // 1024, text


def run(backend: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"rempart-bench-{backend}-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(REMPART_DATA_DIR=tmp, REMPART_LOG_LEVEL="warning")
        cluster = None
        if backend == "postgres":
            cluster = Cluster(durable=True).start()
            env["REMPART_DATABASE_URL"] = cluster.create_database("bench")
        try:
            seconds, rss, _ = timed([REMPART, "demo", "--no-serve", "--beneficiaries", str(n)], env)
            print(
                f"{backend}: demo seed of {n:,} beneficiaries: {seconds:.1f} s "
                f"({n / seconds:,.0f} rows/s), peak RSS {rss} MiB",
                flush=True,
            )
            first = sorted(Path(tmp, "demo").glob("beneficiaires-*.csv"))[0]
            rows = sum(1 for _ in first.open()) - 1
            amc = first.stem.split("-")[1]
            again, rss2, out = timed(
                [REMPART, "import", "beneficiaries", str(first), "--amc", amc], env
            )
            print(
                f"{backend}: re-import of the same file ({rows:,} rows, a no-op): {again:.1f} s "
                f"({rows / again:,.0f} rows/s), peak RSS {rss2} MiB",
                flush=True,
            )
            assert "Inchangés" in out
            return {"seed_s": seconds, "reimport_s": again, "reimport_rows": rows}
        finally:
            if cluster is not None:
                cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beneficiaries", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"machine: nproc={os.cpu_count()}, {_cpu_model()}", flush=True)
    for backend in args.backends.split(","):
        run(backend, args.beneficiaries)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
