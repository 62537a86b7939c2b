"""A payment run of 1,000,000 accepted invoices across 50,000 professionals, on PostgreSQL.

    uv run python bench/payment_run.py [--structures 50000] [--invoices 1000000]
                                       [--profile DIR]

Starts a durable throwaway PostgreSQL (the rights-check bench's settings), seeds it with
``rempart demo --no-serve`` (operators, beneficiaries) and ``rempart.testing.money`` (the
structures with their own encrypted IBANs, the accepted invoices and their ledger postings,
set-based), then runs, each as its own process and timed from start to exit:

    rempart pay run --date D --json --actor paiements.durand
    rempart pay approve RUN_ID --actor paiements.leroy
    rempart pay export RUN_ID --out FILE --actor paiements.durand

and prints the seconds and the peak resident memory of each (``wait4``), the file's size,
transfers and total, the trial balance, and the statements that took over a second. ``--profile DIR`` runs each under
``py-spy record`` and writes its collapsed stacks per command (slower: do not take its times).

Last line: ``rempart_payment_run_seconds=<s> prepare=… approve=… export=… peak_rss_mb=<m>``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rempart.security.keys import KeyRing
from rempart.testing.money import seed_payable
from rempart.testing.postgres import Cluster

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from rights_check import PG_SETTINGS, REMPART  # noqa: E402

RUN_DAY = date(2030, 1, 7)


def timed(cmd: list[str], env: dict[str, str], profile: Path | None, name: str) -> tuple:
    """(seconds, peak RSS in MiB, stdout) of one command, run to its end."""
    if profile is not None:
        raw = profile / f"{name}.txt"  # collapsed stacks: flamegraph.pl or speedscope read them
        cmd = ["py-spy", "record", "-r", "40", "-f", "raw", "-o", str(raw), "--", *cmd]
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{text[-4000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--structures", type=int, default=50_000)
    ap.add_argument("--invoices", type=int, default=1_000_000)
    ap.add_argument("--profile", type=Path)
    a = ap.parse_args()
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rempart-payrun-bench-"))
    master = os.urandom(32)
    settings = {**PG_SETTINGS, "log_min_duration_statement": "1000"}  # the slow statements
    cluster = Cluster(durable=True, settings=settings).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(
            REMPART_DATA_DIR=str(tmp / "var"),
            REMPART_DATABASE_URL=cluster.create_database("rempart"),
            REMPART_MASTER_KEY=base64.urlsafe_b64encode(master).decode(),
            REMPART_LOG_LEVEL="warning",
            COLUMNS="200",
        )
        t0 = time.perf_counter()
        subprocess.run([REMPART, "demo", "--no-serve", "--beneficiaries", "2000"], env=env,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        with psycopg.connect(cluster.url("rempart")) as conn:
            seeded = seed_payable(conn, KeyRing(master), structures=a.structures,
                                  invoices=a.invoices, now=datetime.now(UTC))  # fmt: skip
        cluster.psql("VACUUM ANALYZE", "rempart")
        cluster.psql("CHECKPOINT", "rempart")
        print(f"# seeded {a.invoices:,} accepted invoices over {a.structures:,} structures "
              f"({seeded.accepted_cents / 100:,.2f} €) in {time.perf_counter() - t0:.0f} s; "
              f"nproc={os.cpu_count()}, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        startup, _, _ = timed([REMPART, "pay", "--help"], env, None, "startup")
        print(f"# `rempart pay --help` (interpreter and imports alone): {startup:.1f} s")
        out = tmp / "virements.xml"
        day = RUN_DAY.isoformat()
        s_prep, m_prep, text = timed(
            [REMPART, "pay", "run", "--date", day, "--json", "--actor", "paiements.durand"],
            env, a.profile, "prepare",
        )  # fmt: skip
        run = json.loads(next(ln for ln in reversed(text.splitlines()) if ln.startswith("{")))
        s_appr, m_appr, _ = timed(
            [REMPART, "pay", "approve", run["run_id"], "--actor", "paiements.leroy"],
            env, a.profile, "approve",
        )  # fmt: skip
        s_exp, m_exp, _ = timed(
            [REMPART, "pay", "export", run["run_id"], "--out", str(out), "--actor",
             "paiements.durand"],
            env, a.profile, "export",
        )  # fmt: skip
        data = out.read_bytes()
        txs = int(re.search(rb"<NbOfTxs>(\d+)</NbOfTxs>", data).group(1))  # type: ignore[union-attr]
        balance = cluster.psql(
            "SELECT coalesce(sum(n), 0) FROM (SELECT amount_cents n FROM ledger_posting UNION ALL "
            "SELECT -amount_cents FROM ledger_posting) x", "rempart",
        ).strip()  # fmt: skip
        paid = cluster.psql("SELECT count(*) FROM invoice WHERE status = 'paid'", "rempart")
        print("| step | seconds | peak RSS MiB |\n|---|---|---|")
        for name, s, m in (("prepare", s_prep, m_prep), ("approve", s_appr, m_appr),
                           ("export", s_exp, m_exp)):  # fmt: skip
            print(f"| {name} | {s:.1f} | {m:.0f} |")
        print(f"# run {run['run_id']}: {run['transfers']:,} transfers, {run['total']} €, "
              f"{len(run['holds'])} holds; file {len(data) / 1e6:.1f} MB, NbOfTxs {txs:,}; "
              f"{int(paid):,} invoices paid; trial balance {balance}; "
              f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
        total = s_prep + s_appr + s_exp
        print(f"rempart_payment_run_seconds={total:.1f} prepare={s_prep:.1f} "
              f"approve={s_appr:.1f} export={s_exp:.1f} "
              f"peak_rss_mb={max(m_prep, m_appr, m_exp):.0f}")  # fmt: skip
        slow = re.findall(r"duration: ([0-9.]+) ms\s+(?:statement|execute [^:]*): (.{0,90})",
                          (cluster.root / "server.log").read_text(errors="replace"))  # fmt: skip
        for ms, sql in slow[-12:]:
            print(f"#   {float(ms) / 1000:5.1f} s  {' '.join(sql.split())}")
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
