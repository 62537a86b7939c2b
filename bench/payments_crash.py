"""kill -9 during payment runs: nothing lost, nothing paid twice, the same file (issue 6).

    uv run python bench/payments_crash.py [--trials 100] [--structures 300] [--invoices 3000]
                                          [--seed 1] [--exec]

Starts a durable throwaway PostgreSQL, seeds it once with ``rempart demo --no-serve`` (the
operators ``paiements.durand`` and ``paiements.leroy``) and ``rempart.testing.money`` (decided
invoices and their ledger postings, with one structure of each hold and one whose invoices are
all rejected), and keeps it as a template. A reference database copied from it runs
``rempart pay run`` / ``approve`` / ``export`` without interruption. Then each trial, on its own
copy, runs the same commands as separate processes and SIGKILLs them — prepare at a random
moment, once or twice; export at a random moment or just after its file appears (the window
between the file and the commit), one to three times — re-running each until it succeeds, then
exports once more, and checks:

- **lost** — an accepted invoice neither paid by the run nor still unpaid under a hold; a paid
  invoice whose payment does not carry its amount;
- **duplicated** — an invoice reported by two payments, an ``EndToEndId`` twice in the file,
  more than one run for the date, a payment posted twice;
- **files** — every file seen on disk during the trial (a killed export may leave one), the
  final one and the re-export are byte-identical, their SHA-256 is the run's stored
  ``file_sha256``, and with the run's own ids and time masked the file is the reference's;
- **money** — the trial balance is zero, the bank's balance is minus the file's ``CtrlSum`` and
  the sum of the exported transfers, each professional is owed exactly its unpaid invoices;
- **later run** — the held structure whose cooling-off then ends is paid by the next day's run,
  and nothing else is.

Processes are forked from this one after it has imported Rempart (``rempart.cli.main`` with
the command's arguments), so that a trial does not spend four seconds per command importing;
``--exec`` runs the ``rempart`` executable instead. Prints the counts; the last line is
``payments_crash trials=… kills=… lost=0 duplicated=0 differing_files=0 unbalanced=0 failed=0``,
and the exit status is 1 if any trial failed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
# imported before forking, so that a child starts at once
import rempart.cli
import rempart.services.payments
from rempart.security.keys import KeyRing
from rempart.testing.money import seed_payable
from rempart.testing.postgres import Cluster

REMPART = str(Path(sys.executable).with_name("rempart"))
PREPARER, APPROVER = "paiements.durand", "paiements.leroy"
PG_SETTINGS = {"shared_buffers": "256MB", "max_wal_size": "2GB"}
RUN_DAY = date(2030, 1, 7)


@dataclass
class Attempt:
    rc: int | None  # None: killed
    out: str
    seconds: float


@dataclass
class Bench:
    cluster: Cluster
    env: dict[str, str]
    tmp: Path
    exec_mode: bool
    rng: random.Random
    timing: dict[str, float] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def url(self, db: str) -> str:
        return self.cluster.url(db)

    # -- processes ---------------------------------------------------------------------------

    def cli(self, db: str, *args: str, kill_after: float | None = None,
            kill_on: Path | None = None, jitter: float = 0.0) -> Attempt:  # fmt: skip
        """Run ``rempart ARGS`` against ``db`` as its own process; SIGKILL it ``kill_after``
        seconds in, or ``jitter`` at most after ``kill_on`` (or its temporary) appears."""
        log = self.tmp / f"cli-{uuid.uuid4().hex}.log"
        env = {**self.env, "REMPART_DATABASE_URL": self.url(db)}
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(args, env, log, self.exec_mode)
        killed = False
        tmp_name = kill_on.with_name(f".{kill_on.name}.tmp") if kill_on else None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            elapsed = time.perf_counter() - t0
            due = kill_after is not None and elapsed >= kill_after
            if kill_on is not None and (tmp_name.exists() or _fresh(kill_on, t0)):  # type: ignore[union-attr]
                time.sleep(self.rng.uniform(0, jitter))
                due = True
            if due:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                killed = os.WIFSIGNALED(status)
                break
            time.sleep(0.0005)
        out = log.read_text(errors="replace")
        log.unlink()
        rc = None if killed else os.waitstatus_to_exitcode(status)
        return Attempt(rc, out, time.perf_counter() - t0)

    def must(self, db: str, *args: str) -> str:
        a = self.cli(db, *args)
        if a.rc != 0:
            raise SystemExit(f"rempart {' '.join(args)} failed ({a.rc}):\n{a.out}")
        return a.out

    # -- the database ------------------------------------------------------------------------

    def sql(self, db: str, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.url(db), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def clone(self, name: str) -> None:
        self.cluster.psql(f'CREATE DATABASE "{name}" TEMPLATE seed')

    def drop(self, name: str) -> None:
        self.cluster.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _child(args: tuple[str, ...], env: dict[str, str], log: Path, exec_mode: bool) -> None:
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        if exec_mode:
            os.execve(REMPART, [REMPART, *args], env)  # noqa: S606 — our own console script
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["rempart", *args]
        try:
            rempart.cli.main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # the child reports anything, then exits
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _fresh(path: Path, since: float) -> bool:
    """``path`` was (re)written after ``since`` (a perf_counter instant)."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age < time.perf_counter() - since


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


MASKS = (
    (re.compile(rb"RMP-[0-9a-f]{16}"), b"RMP-<run>"),
    (re.compile(rb"RMP[0-9a-f]{12}-"), b"RMP<run>-"),
    (re.compile(rb"RSP[0-9a-f]{12}-"), b"RSP<run>-"),
    (re.compile(rb"<CreDtTm>[^<]*</CreDtTm>"), b"<CreDtTm/>"),
)


def masked(data: bytes) -> bytes:
    """The file without what belongs to its run (ids derived from the run id, creation time)."""
    for pattern, repl in MASKS:
        data = pattern.sub(repl, data)
    return data


# -- one run, interrupted or not -------------------------------------------------------------


def run_id_of(b: Bench, db: str, day: date) -> str | None:
    rows = b.sql(db, "SELECT id FROM payment_run WHERE run_date = %s", day)
    return str(rows[0][0]) if rows else None


def prepare(b: Bench, db: str, day: date, kills: int) -> str:
    args = ("pay", "run", "--date", day.isoformat(), "--json", "--actor", PREPARER)
    for _ in range(kills):
        before = run_id_of(b, db, day)
        a = b.cli(db, *args, kill_after=b.rng.uniform(0, b.timing["prepare"] * 1.2))
        if a.rc is None:
            after = run_id_of(b, db, day)
            b.counts["prepare_killed_" + ("after_commit" if after and not before else
                                          "before_commit" if not after else "on_existing")] += 1  # fmt: skip
        elif a.rc != 0:
            raise SystemExit(f"pay run failed ({a.rc}):\n{a.out}")
        else:
            b.counts["prepare_finished_before_kill"] += 1
    out = b.must(db, *args)
    return str(json.loads(out.strip().splitlines()[-1])["run_id"])


def export(b: Bench, db: str, run_id: str, out: Path, kills: int) -> list[str]:
    """Export with ``kills`` SIGKILLs first; every distinct file seen on disk, in order."""
    args = ("pay", "export", run_id, "--out", str(out), "--actor", PREPARER)
    seen: list[str] = []
    for _ in range(kills):
        before = _sha(out)
        if b.rng.random() < 0.5:
            a = b.cli(db, *args, kill_after=b.rng.uniform(0, b.timing["export"] * 1.1))
        else:  # just after the file (or its temporary) appears: before or around the commit
            a = b.cli(db, *args, kill_on=out, jitter=b.timing["export_tail"] * 1.5)
        status = b.sql(db, "SELECT status FROM payment_run WHERE id = %s", run_id)[0][0]
        sha = _sha(out)
        if sha is not None and sha not in seen:
            seen.append(sha)
        if a.rc is None:
            where = ("after_commit" if status == "exported" else
                     "file_written_not_committed" if sha is not None and sha != before else
                     "before_file")  # fmt: skip
            b.counts["export_killed_" + where] += 1
        elif a.rc != 0:
            raise SystemExit(f"pay export failed ({a.rc}):\n{a.out}")
        else:
            b.counts["export_finished_before_kill"] += 1
    b.must(db, *args)
    final = _sha(out)
    assert final is not None
    if final not in seen:
        seen.append(final)
    return seen


def full_run(b: Bench, db: str, day: date, out: Path, kills_p: int = 0, kills_e: int = 0) -> str:
    run_id = prepare(b, db, day, kills_p)
    b.must(db, "pay", "approve", run_id, "--actor", APPROVER)
    seen = export(b, db, run_id, out, kills_e)
    if len(seen) != 1:
        b.counts["differing_files"] += len(seen) - 1
    return run_id


# -- checks ----------------------------------------------------------------------------------


def check(b: Bench, db: str, run_id: str, out: Path, reference: bytes, held: set[str]) -> list[str]:
    problems: list[str] = []
    data = out.read_bytes()
    again = out.with_name("again.xml")
    b.must(db, "pay", "export", run_id, "--out", str(again), "--actor", APPROVER)
    stored = b.sql(db, "SELECT file_sha256, total_cents, transfers FROM payment_run WHERE id = %s",
                   run_id)[0]  # fmt: skip
    if again.read_bytes() != data or hashlib.sha256(data).hexdigest() != stored[0]:
        problems.append("files: re-export or stored SHA-256 differs")
        b.counts["differing_files"] += 1
    if masked(data) != masked(reference):
        problems.append("files: not the reference run's file")
        b.counts["differing_files"] += 1
    e2e = re.findall(rb"<EndToEndId>([^<]+)</EndToEndId>", data)
    ctrl = re.search(rb"<GrpHdr>.*?<CtrlSum>([0-9.]+)</CtrlSum>", data, re.S)
    ctrl_cents = round(float(ctrl.group(1)) * 100) if ctrl else -1
    dup = len(e2e) - len(set(e2e))
    q = b.sql(db, _CHECKS, run_id)[0]
    runs, twice, posted_twice, lost, mismatched, transfers, sent, bank, total, owed_wrong = q
    dup += (runs - 1) + twice + posted_twice
    if dup:
        problems.append(f"duplicated: e2e {len(e2e) - len(set(e2e))}, runs {runs}, "
                        f"invoices in two payments {twice}, postings {posted_twice}")  # fmt: skip
    held_now = {r[0] for r in b.sql(db, _UNPAID_STRUCTURES)}
    unheld = held_now - held
    lost += mismatched + len(unheld)
    if lost:
        problems.append(
            f"lost: {lost} (mismatched payments {mismatched}, unpaid not held {unheld})"
        )
    money_ok = (
        total == 0 and -bank == sent == ctrl_cents == stored[1] and transfers == len(e2e)
        and owed_wrong == 0
    )  # fmt: skip
    if not money_ok:
        problems.append(f"money: balance {total}, bank {bank}, sent {sent}, file {ctrl_cents}, "
                        f"run {stored[1]}, ps owed wrong {owed_wrong}")  # fmt: skip
    b.counts["lost"] += lost
    b.counts["duplicated"] += dup
    b.counts["unbalanced"] += 0 if money_ok else 1
    again.unlink()
    return problems


_CHECKS = """
WITH run AS (SELECT %s::uuid AS id),
legs AS (SELECT debit AS account, amount_cents AS n FROM ledger_posting
         UNION ALL SELECT credit, -amount_cents FROM ledger_posting),
owed AS (SELECT 'ps:' || structure_id AS account, -sum(amc_cents) AS n FROM invoice
         WHERE status = 'accepted' AND amc_cents > 0 GROUP BY structure_id),
bal AS (SELECT account, sum(n) AS n FROM legs WHERE account LIKE 'ps:%%' GROUP BY account)
SELECT
  (SELECT count(*) FROM payment_run),
  (SELECT count(*) - count(DISTINCT invoice_id) FROM remitted_invoice),
  (SELECT count(*) - count(DISTINCT ref) FROM ledger_posting WHERE event = 'payment'),
  (SELECT count(*) FROM invoice i JOIN payment p ON p.id = i.payment_id
     WHERE i.status = 'accepted' AND i.amc_cents > 0 AND p.amount_cents > 0),
  (SELECT count(*) FROM payment p WHERE p.amount_cents <> (SELECT coalesce(sum(amc_cents), 0)
     FROM invoice i WHERE i.payment_id = p.id AND i.status = 'paid')),
  (SELECT count(*) FROM payment WHERE run_id = (SELECT id FROM run) AND amount_cents > 0),
  (SELECT coalesce(sum(amount_cents), 0) FROM payment WHERE status = 'exported'),
  (SELECT coalesce(sum(n), 0) FROM legs WHERE account = 'bank'),
  (SELECT coalesce(sum(n), 0) FROM legs),
  (SELECT count(*) FROM bal FULL JOIN owed USING (account)
     WHERE coalesce(bal.n, 0) <> coalesce(owed.n, 0))
"""

# Structures with accepted invoices not paid: each must be one the run held.
_UNPAID_STRUCTURES = """
SELECT DISTINCT structure_id::text FROM invoice WHERE status = 'accepted' AND amc_cents > 0
"""


# -- the trials ------------------------------------------------------------------------------


def setup(b: Bench, a: argparse.Namespace, master: bytes) -> tuple[set[str], str]:
    t0 = time.perf_counter()
    subprocess.run(
        [REMPART, "demo", "--no-serve", "--beneficiaries", "60"],
        env={**b.env, "REMPART_DATABASE_URL": b.url("seed")},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with psycopg.connect(b.url("seed")) as conn:
        seeded = seed_payable(
            conn, KeyRing(master), structures=a.structures, invoices=a.invoices,
            now=datetime.now(UTC), rejected_every=7, with_holds=True,
        )  # fmt: skip
    held = {str(s) for s in seeded.held}
    cooling = next(str(s) for s, why in seeded.held.items() if why == "iban_cooling_off")
    b.cluster.psql("CHECKPOINT")
    print(f"# seeded {a.invoices:,} invoices over {a.structures} structures "
          f"({seeded.accepted_cents / 100:,.2f} € accepted) in {time.perf_counter() - t0:.0f} s; "
          f"holds {sorted(seeded.held.values())}", flush=True)  # fmt: skip
    return held, cooling


def calibrate(b: Bench) -> bytes:
    """The uninterrupted reference run, which also times each command."""
    b.clone("reference")
    out = b.tmp / "reference.xml"
    args = ("pay", "run", "--date", RUN_DAY.isoformat(), "--json", "--actor", PREPARER)
    a = b.cli("reference", *args)
    run_id = json.loads(a.out.strip().splitlines()[-1])["run_id"]
    b.timing["prepare"] = a.seconds
    b.must("reference", "pay", "approve", run_id, "--actor", APPROVER)
    a = b.cli("reference", "pay", "export", run_id, "--out", str(out), "--actor", PREPARER)
    assert a.rc == 0, a.out
    b.timing["export"] = a.seconds
    b.timing["export_tail"] = a.seconds * 0.3  # about what follows the file: marks, postings
    print(f"# reference run: prepare {b.timing['prepare']:.2f} s, export "
          f"{b.timing['export']:.2f} s per process", flush=True)  # fmt: skip
    b.drop("reference")
    return out.read_bytes()


def trial(b: Bench, k: int, reference: bytes, held: set[str], cooling: str) -> list[str]:
    db = f"trial_{k}"
    b.clone(db)
    d = b.tmp / f"t{k}"
    d.mkdir()
    try:
        run_id = full_run(
            b, db, RUN_DAY, d / "virements.xml", b.rng.randint(1, 2), b.rng.randint(1, 3)
        )
        problems = check(b, db, run_id, d / "virements.xml", reference, held)
        # the next day: the cooling-off of one held structure is over, the run pays it alone
        b.sql(db, "UPDATE bank_account SET pays_from = now() - interval '1 day' "
                  "WHERE structure_id = %s", cooling)  # fmt: skip
        later = full_run(b, db, RUN_DAY + timedelta(days=1), d / "later.xml")
        paid = b.sql(db, "SELECT structure_id::text FROM payment WHERE run_id = %s "
                         "AND amount_cents > 0", later)  # fmt: skip
        if [r[0] for r in paid] != [cooling]:
            problems.append(f"later run paid {paid}, expected only {cooling}")
            b.counts["lost"] += 1
        return problems
    finally:
        b.drop(db)
        shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--structures", type=int, default=300)
    ap.add_argument("--invoices", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--exec", dest="exec_mode", action="store_true")
    a = ap.parse_args(argv)
    master = os.urandom(32)
    tmp = Path(tempfile.mkdtemp(prefix="rempart-pay-crash-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
    env.update(
        REMPART_DATA_DIR=str(tmp / "var"),
        REMPART_MASTER_KEY=base64.urlsafe_b64encode(master).decode(),
        REMPART_LOG_LEVEL="warning",
        REMPART_DB_POOL_SIZE="2",
        COLUMNS="200",
    )
    cluster = Cluster(durable=True, settings=PG_SETTINGS).start()
    b = Bench(cluster, env, tmp, a.exec_mode, random.Random(a.seed))
    failed = 0
    t0 = time.perf_counter()
    try:
        cluster.create_database("seed")
        held, cooling = setup(b, a, master)
        reference = calibrate(b)
        for k in range(1, a.trials + 1):
            problems = trial(b, k, reference, held, cooling)
            if problems:
                failed += 1
                print(f"trial {k}: FAILED {problems}", flush=True)
            if k % 10 == 0 or k == a.trials:
                print(f"# {k} trials, {time.perf_counter() - t0:.0f} s: "
                      f"{dict(sorted(b.counts.items()))}", flush=True)  # fmt: skip
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    c = b.counts
    kills = sum(n for name, n in c.items() if "_killed_" in name)
    print(
        f"payments_crash trials={a.trials} kills={kills} "
        f"prepare_kills={sum(n for k, n in c.items() if k.startswith('prepare_killed_'))} "
        f"export_kills={sum(n for k, n in c.items() if k.startswith('export_killed_'))} "
        f"export_kills_between_file_and_commit={c['export_killed_file_written_not_committed']} "
        f"lost={c['lost']} duplicated={c['duplicated']} differing_files={c['differing_files']} "
        f"unbalanced={c['unbalanced']} failed={failed}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
