"""``kill -9`` of the intake server and of the workers at random moments, on PostgreSQL.

    uv run python bench/claims_crash.py [--trials 100] [--senders 4] [--workers 2] [--kills 3]
                                        [--seed 1]

The acceptance item of the claims issue: with concurrent senders that retry with the same
Idempotency-Key, **0 lost, 0 duplicated, 0 decided twice**. One durable throwaway PostgreSQL
(``fsync`` on), seeded once with ``rempart demo --no-serve``; ``rempart serve --no-worker`` and
``rempart worker`` (several) as subprocesses; the real rights check first, so that invoices
carry engagement numbers and are accepted. Then, per trial:

- senders (asyncio + httpx, one task each, on three pharmacies) send invoices — single ones
  with their own ``Idempotency-Key``, one sender in batches of five with a batch key — and
  retry on any connection error, 5xx or 429 with the same key and body until they get a 202;
  they record every invoice whose 202 they saw. About one in eight invoices bills again a care
  already billed under another number (a duplicate: R10); one request in eight leaves twice at
  once (a double click), and one 202 in six is asked for again, as a client that did not trust
  its answer would: every answer must name the invoices of the first;
- a chaos task kills (``SIGKILL``) the server, a worker, or both, at random moments (at least
  one server and one worker per trial; half of the worker kills wait until PostgreSQL shows
  that worker inside a transaction) and restarts them at once;
- at the end every process is running again; the workers drain the queue; the database is
  checked for this trial's invoices:

  lost            a 202 seen, but no invoice with that id, number and key
  duplicated      two invoices for one number or one key, an invoice nobody sent, or a replay
                  naming another invoice than the first 202
  decided twice   more than one 'adjudication' audit row, or more invoice_line rows than lines
  undecided       still 'received', no audit row, or fewer invoice_line rows than lines
  paid twice      one care accepted on more than one line (duplicates must be rejected)

and, to show what the trial went through: ``refused`` (4xx answers: none expected),
``http_5xx`` (5xx answers, retried: none expected either), ``answer_lost`` (a retry answered
as a replay: the server died after its commit, before its 202 left), ``server_in_tx`` and
``worker_in_tx`` (PostgreSQL's log of clients gone with a transaction open: kills that landed
inside a unit of work). After the last trial, ``rempart audit verify`` checks the audit log
the workers sealed while being killed.

Prints one row per trial and a total line ``claims_crash trials=… lost=0 duplicated=0
decided_twice=0 …``; exits 1 when any check is not 0. ``run()`` is what the 10-trial test in
``make test`` calls (tests/bench/test_claims_crash.py); ``make bench-claims-crash`` runs 100.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rempart.testing.postgres import Cluster

REMPART = str(Path(sys.executable).with_name("rempart"))
PERSONS_PER_STRUCTURE = 12
BATCH_SIZE = 5
CHECKS = ("lost", "duplicated", "decided_twice", "undecided", "paid_twice")
WORKER_ROLE = "rempart_worker"  # worker i connects as rempart_worker<i>
AIMED = 0.5  # share of worker kills aimed at a moment the worker is inside a transaction
PG_SETTINGS = {"log_line_prefix": "%u:"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cip13(n: int) -> str:
    """A valid CIP13 (EAN-13) code, one per ``n`` < 10⁸: every care is distinct unless reused."""
    body = f"3400{n:08d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


# -- processes -----------------------------------------------------------------------------


class Proc:
    """One ``rempart`` subprocess that the chaos task kills and restarts."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log: Path, role: str = "postgres"
    ) -> None:
        self.name, self.args, self.env, self.role = name, args, env, role
        self.log = log.open("ab")
        self.popen: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        self.popen = subprocess.Popen(
            [REMPART, *self.args], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.kills += 1
        self.popen.wait()

    def stop(self) -> None:
        if self.running():
            assert self.popen is not None
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


async def wait_healthy(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the server at {url} did not come up in {timeout_s} s")


# -- the world the senders bill in ----------------------------------------------------------


@dataclass
class Pharmacy:
    structure_id: str
    token: str
    persons: list[tuple[dict[str, Any], str]]  # (card as the invoice quotes it, engagement)


async def prepare(url: str, fx: Path, care_date: str) -> list[Pharmacy]:
    """A token per pharmacy and, through the real rights check, engagement numbers for a few
    covered people each (which also opens the care relationships)."""
    clients = [
        c
        for c in json.loads((fx / "clients.json").read_text())
        if c["profession"] == "pharmacy" and not c.get("bench")
    ]
    cards = list(csv.DictReader((fx / "cards.csv").read_text().splitlines()))
    out = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for i, c in enumerate(clients):
            r = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": c["client_id"],
                    "client_secret": c["client_secret"],
                },
            )
            r.raise_for_status()
            token = r.json()["access_token"]
            persons: list[tuple[dict[str, Any], str]] = []
            for card in cards[i * 50 :]:
                who = {
                    "amc_number": card["amc_number"],
                    "adherent_number": card["adherent_number"],
                    "birth_date": card["birth_date"],
                    "rank": int(card["rank"]),
                }
                r = await http.post(
                    "/api/v1/rights-checks",
                    json={**who, "domain": "PHAR", "care_date": care_date},
                    headers={"Authorization": f"Bearer {token}"},
                )
                r.raise_for_status()
                if r.json()["status"] == "covered":
                    persons.append((who, r.json()["engagement_number"]))
                if len(persons) == PERSONS_PER_STRUCTURE:
                    break
            out.append(Pharmacy(c["structure_id"], token, persons))
    return out


# -- one trial ------------------------------------------------------------------------------


@dataclass
class Sent:
    structure_id: str
    number: str
    key: str | None
    lines: int
    care: tuple[str, ...]  # the care of each line (duplicates share it)
    invoice_id: str | None = None  # from the first 202


@dataclass
class Trial:
    n: int
    rng: random.Random
    sent: dict[tuple[str, str], Sent] = field(default_factory=dict)  # (structure, number)
    replay_mismatches: int = 0
    answer_lost: int = 0  # retries answered as replays: the server died after its commit
    aimed: int = 0  # worker kills sent while PostgreSQL showed the worker in a transaction
    refused: Counter[str] = field(default_factory=Counter)  # 4xx other than 429: a bug
    http_5xx: int = 0  # answers retried because the server failed (not because it died)
    retries: int = 0
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # by invoice number
    counter: int = 0  # codes drawn so far in this trial

    def invoice(
        self, ph: Pharmacy, sender: int, i: int, care_date: str
    ) -> tuple[Sent, dict[str, Any]]:
        who, engagement = self.rng.choice(ph.persons)
        earlier = [s for s in self.sent.values() if s.structure_id == ph.structure_id]
        number = f"T{self.n:03d}-S{sender}-{i:04d}"
        if earlier and self.rng.random() < 0.125:  # the same care again, under a new number
            prior = self.rng.choice(earlier)
            body = dict(self.bodies[prior.number], invoice_number=number)
        else:
            lines = []
            for _ in range(self.rng.choice((1, 1, 2, 3))):
                self.counter += 1
                qty = self.rng.choice((1, 1, 2))
                price = self.rng.randrange(200, 5000)
                amo = (price * qty * 65 + 50) // 100
                lines.append(
                    {
                        "domain": "PHAR",
                        "code_system": "CIP13",
                        "code": cip13(self.n * 100_000 + self.counter),
                        "quantity": qty,
                        "unit_price": f"{price / 100:.2f}",
                        "brss": f"{price / 100:.2f}",
                        "amo_rate": 65,
                        "amo_amount": f"{amo / 100:.2f}",
                        "amc_amount_claimed": f"{(price * qty - amo) / 100:.2f}",
                    }
                )
            body = {
                "invoice_number": number,
                "care_date": care_date,
                "engagement_number": engagement,
                "beneficiary": who,
                "lines": lines,
            }
        self.bodies[number] = body
        care = tuple(
            f"{json.dumps(body['beneficiary'], sort_keys=True)}|{ln['code']}|{ln['quantity']}|{ln['unit_price']}"
            for ln in body["lines"]
        )
        s = Sent(ph.structure_id, number, None, len(body["lines"]), care)
        return s, body


async def post_until_202(
    http: httpx.AsyncClient,
    trial: Trial,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    alone: bool = True,
) -> dict[str, Any] | None:
    """The sender's rule: the same request again on any transport error, 5xx or 429."""
    pause = 0.02
    for attempt in range(2000):
        try:
            r = await http.post(path, json=body, headers=headers)
        except httpx.TransportError:
            r = None
        if r is not None and r.status_code == 202:
            if alone and attempt and r.headers.get("idempotent-replayed") == "true":
                trial.answer_lost += 1  # stored, but the first 202 never reached us
            return r.json()  # type: ignore[no-any-return]
        if r is not None and r.status_code < 500 and r.status_code != 429:
            trial.refused[f"{r.status_code} {r.json().get('code')}"] += 1
            return None
        if r is not None and r.status_code >= 500:
            trial.http_5xx += 1
        trial.retries += 1
        await asyncio.sleep(pause * (0.5 + trial.rng.random()))
        pause = min(pause * 2, 0.4)
    trial.refused["gave up"] += 1
    return None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two answers for one request name the same invoices (a receipt, or an ARL)."""
    ids = [a.get("invoice_id")] + [i["invoice_id"] for i in a.get("invoices", [])]
    return ids == [b.get("invoice_id")] + [i["invoice_id"] for i in b.get("invoices", [])]


async def deliver(
    http: httpx.AsyncClient, trial: Trial, path: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any] | None:
    """Send until a 202. One time in eight the request leaves twice at once (a double click);
    one time in six the client asks again after its 202. Every answer must be the first."""
    if trial.rng.random() < 1 / 8:
        answers = await asyncio.gather(
            post_until_202(http, trial, path, body, headers, alone=False),
            post_until_202(http, trial, path, body, headers, alone=False),
        )
    else:
        answers = [await post_until_202(http, trial, path, body, headers)]
    first = answers[0]
    if first is not None and trial.rng.random() < 1 / 6:
        answers.append(await post_until_202(http, trial, path, body, headers, alone=False))
    if first is not None and not all(a is not None and _same(first, a) for a in answers):
        trial.replay_mismatches += 1
    return first


async def sender(
    url: str, trial: Trial, ph: Pharmacy, k: int, stop: asyncio.Event, care_date: str, batch: bool
) -> None:
    """Single invoices each under its own key, or (``batch``) batches of five under a key."""
    auth = {"Authorization": f"Bearer {ph.token}"}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        i = 0
        while not stop.is_set():
            size = BATCH_SIZE if batch else 1
            group = [trial.invoice(ph, k, i + j, care_date) for j in range(size)]
            i += size
            key = f"t{trial.n:03d}-s{k}-{'b' if batch else ''}{i:04d}"
            for s, _ in group:
                s.key = None if batch else key
                trial.sent[(s.structure_id, s.number)] = s
            headers = {**auth, "Idempotency-Key": key}
            if batch:
                body = {"invoices": [b for _, b in group]}
                arl = await deliver(http, trial, "/api/v1/invoice-batches", body, headers)
                for got in (arl or {}).get("invoices", []):
                    group[got["index"]][0].invoice_id = got["invoice_id"]
                for bad in (arl or {}).get("rejected", []):
                    trial.refused[f"batch {bad['code']}"] += 1
            else:
                got = await deliver(http, trial, "/api/v1/invoices", group[0][1], headers)
                group[0][0].invoice_id = got["invoice_id"] if got else None
            await asyncio.sleep(trial.rng.random() * 0.02)


async def in_transaction(pg: psycopg.AsyncConnection[Any], role: str, timeout_s: float) -> bool:
    """Wait until PostgreSQL shows this role inside a transaction (a worker deciding)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cur = await pg.execute(
            "SELECT 1 FROM pg_stat_activity WHERE usename = %s AND xact_start IS NOT NULL",
            (role,),
        )
        if await cur.fetchone():
            return True
        await asyncio.sleep(0.002)
    return False


async def chaos(
    url: str,
    db: str,
    trial: Trial,
    server: Proc,
    workers: list[Proc],
    kills: int,
    stop: asyncio.Event,
) -> None:
    """``kills`` events at random moments; the first two hit the server and a worker (in a
    random order), the others either or both. Half of the worker kills wait, after the random
    pause, for the worker to be inside a transaction. A killed process restarts at once."""
    victims = ["server", "worker"]
    trial.rng.shuffle(victims)
    victims += [trial.rng.choice(("server", "worker", "both")) for _ in range(kills - 2)]
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as pg:
        for victim in victims:
            await asyncio.sleep(trial.rng.uniform(0.2, 1.0))
            hit = []
            if victim in ("server", "both"):
                hit.append(server)
            if victim in ("worker", "both"):
                worker = trial.rng.choice(workers)
                if trial.rng.random() < AIMED:
                    trial.aimed += await in_transaction(pg, worker.role, timeout_s=2.0)
                hit.append(worker)
            for p in hit:
                p.kill()
            for p in hit:
                p.start()
            if server in hit:
                await wait_healthy(url)
    await asyncio.sleep(trial.rng.uniform(0.1, 0.5))
    stop.set()


class PgLog:
    """Kills that interrupted an open transaction, from PostgreSQL's own log: a backend whose
    client vanished inside a transaction logs it (``log_line_prefix`` names the role; worker
    ``i`` connects as ``rempart_worker<i>``, the server as ``postgres``)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def since_last(self) -> Counter[str]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
            self.offset = f.tell()
        found: Counter[str] = Counter()
        for line in text.splitlines():
            if "unexpected EOF on client connection with an open transaction" in line:
                found["worker" if line.startswith(WORKER_ROLE) else "server"] += 1
        return found


def reasons(db: str) -> str:
    """The coded reasons on every line decided, to show what the rejections were."""
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT r ->> 'code', r ->> 'kind', count(*) FROM invoice_line l, "
            "jsonb_array_elements(l.reasons::jsonb) r GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    return ", ".join(f"{code} ({kind}) {n}" for code, kind, n in rows) or "none"


def pending(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM invoice WHERE status = 'received'").fetchone()
        assert row is not None
        return int(row[0])


async def drain(db: str, timeout_s: float = 120) -> None:
    """Wait for the workers to decide every received invoice (``check`` counts what is left)."""
    for _ in range(int(timeout_s / 0.1)):
        if not pending(db):
            return
        await asyncio.sleep(0.1)


def check(db: str, trial: Trial) -> dict[str, int]:
    """What the database holds for this trial's invoices, against what the senders saw."""
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT i.id::text, i.structure_id::text, i.invoice_number, i.idempotency_key, "
            "i.status, (SELECT count(*) FROM invoice_line l WHERE l.invoice_id = i.id), "
            "(SELECT count(*) FROM invoice_line l WHERE l.invoice_id = i.id "
            "                                       AND l.status = 'accepted') "
            "FROM invoice i WHERE i.invoice_number LIKE %s",
            (f"T{trial.n:03d}-%",),
        ).fetchall()
        audits = Counter(
            r[0]
            for r in conn.execute(
                "SELECT detail::jsonb ->> 'invoice_id' FROM audit_event "
                "WHERE purpose = 'adjudication' AND detail::jsonb ->> 'invoice_id' = ANY(%s)",
                ([r[0] for r in rows],),
            )
        )
        accepted_lines = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT invoice_id::text, line_no FROM invoice_line "
                "WHERE status = 'accepted' AND invoice_id = ANY(%s::uuid[])",
                ([r[0] for r in rows],),
            )
        }
    by_id = {r[0]: r for r in rows}
    per_number = Counter((r[1], r[2]) for r in rows)
    per_key = Counter((r[1], r[3]) for r in rows if r[3] is not None)
    lost = 0
    for s in trial.sent.values():
        if s.invoice_id is None:
            continue
        r = by_id.get(s.invoice_id)
        if r is None or (r[1], r[2], r[3]) != (s.structure_id, s.number, s.key):
            lost += 1
    duplicated = (
        sum(n - 1 for n in per_number.values())
        + sum(n - 1 for n in per_key.values())
        + sum((r[1], r[2]) not in trial.sent for r in rows)
        + trial.replay_mismatches
    )
    twice = undecided = 0
    cares: Counter[str] = Counter()
    for r in rows:
        s = trial.sent.get((r[1], r[2]))
        lines = s.lines if s is not None else 0
        if audits[r[0]] > 1 or r[5] > lines:
            twice += 1
        if r[4] not in ("accepted", "rejected") or audits[r[0]] == 0 or r[5] < lines:
            undecided += 1
        if s is not None:
            for line_no, care in enumerate(s.care):
                if (r[0], line_no) in accepted_lines:
                    cares[care] += 1
    statuses = Counter(r[4] for r in rows)
    return {
        "sent": len(trial.sent),
        "acked": sum(s.invoice_id is not None for s in trial.sent.values()),
        "lost": lost,
        "duplicated": duplicated,
        "decided_twice": twice,
        "undecided": undecided,
        "paid_twice": sum(n - 1 for n in cares.values() if n > 1),
        "accepted": statuses["accepted"],
        "rejected": statuses["rejected"],
        "refused": sum(trial.refused.values()),
        "http_5xx": trial.http_5xx,
        "retries": trial.retries,
        "answer_lost": trial.answer_lost,
        "aimed": trial.aimed,
    }


async def one_trial(
    n: int,
    rng: random.Random,
    url: str,
    db: str,
    pharmacies: list[Pharmacy],
    server: Proc,
    workers: list[Proc],
    pglog: PgLog,
    *,
    senders: int,
    kills: int,
    care_date: str,
) -> dict[str, int]:
    trial = Trial(n, random.Random(rng.getrandbits(64)))
    before = server.kills, sum(w.kills for w in workers)
    stop = asyncio.Event()
    tasks = [
        sender(url, trial, pharmacies[k % len(pharmacies)], k, stop, care_date, batch=(k == 0))
        for k in range(senders)
    ]
    await asyncio.gather(chaos(url, db, trial, server, workers, kills, stop), *tasks)
    for p in (server, *workers):  # everything runs again, then the workers drain the queue
        if not p.running():
            p.start()
    await drain(db)
    counts = check(db, trial)
    counts["server_kills"] = server.kills - before[0]
    counts["worker_kills"] = sum(w.kills for w in workers) - before[1]
    in_tx = pglog.since_last()
    counts["server_in_tx"], counts["worker_in_tx"] = in_tx["server"], in_tx["worker"]
    if trial.refused:
        print(f"#   trial {n}: refused {dict(trial.refused)}", flush=True)
    return counts


# -- the whole run --------------------------------------------------------------------------

COLUMNS = (
    "sent",
    "acked",
    *CHECKS,
    "accepted",
    "rejected",
    "refused",
    "http_5xx",
    "retries",
    "answer_lost",
    "server_kills",
    "worker_kills",
    "aimed",
    "server_in_tx",
    "worker_in_tx",
)


def run(
    *,
    trials: int = 100,
    senders: int = 4,
    workers: int = 2,
    kills: int = 3,
    seed: int = 1,
    beneficiaries: int = 300,
    keep: bool = False,
    out: Callable[[str], None] = print,
) -> dict[str, int]:
    """The whole bench; returns the totals (``CHECKS`` must all be 0)."""
    tmp = Path(tempfile.mkdtemp(prefix="rempart-claims-crash-"))
    cluster = Cluster(durable=True, settings=PG_SETTINGS).start()
    procs: list[Proc] = []
    try:
        port = free_port()
        db = cluster.create_database("rempart")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(
            REMPART_DATA_DIR=str(tmp),
            REMPART_DATABASE_URL=db,
            REMPART_PORT=str(port),
            REMPART_LOG_LEVEL="warning",
            REMPART_TOKEN_TTL_SECONDS="86400",
            REMPART_WORKER_INTERVAL_SECONDS="0.5",
            # a restart should cost what it costs in production, where bytecode is compiled:
            # here PYTHONDONTWRITEBYTECODE is set and the venv has none, so every start would
            # compile SQLAlchemy again (~3 s). The cache lives in the bench's directory.
            PYTHONPYCACHEPREFIX=str(tmp / "pycache"),
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        t0 = time.perf_counter()
        subprocess.run(
            [
                REMPART,
                "demo",
                "--no-serve",
                "--beneficiaries",
                str(beneficiaries),
                "--export-fixtures",
                str(tmp / "fx"),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        server = Proc("server", ["serve", "--port", str(port), "--no-worker"], env, tmp / "s.log")
        pool = []
        for i in range(workers):
            role = f"{WORKER_ROLE}{i}"
            cluster.psql(f"CREATE ROLE {role} LOGIN SUPERUSER")
            worker_env = {**env, "REMPART_DATABASE_URL": db.replace("postgres@", f"{role}@")}
            pool.append(Proc(f"worker{i}", ["worker"], worker_env, tmp / f"w{i}.log", role))
        procs = [server, *pool]
        for p in procs:
            p.start()
        url = f"http://127.0.0.1:{port}"
        care_date = datetime.now(UTC).date().isoformat()
        total: Counter[str] = Counter()

        async def main() -> None:
            await wait_healthy(url)
            pharmacies = await prepare(url, tmp / "fx", care_date)
            out(
                f"# seeded and checked rights in {time.perf_counter() - t0:.0f} s; nproc="
                f"{os.cpu_count()}, {senders} senders, {workers} workers, {kills} kills a trial"
            )
            out("| trial | " + " | ".join(COLUMNS) + " | s |")
            out("|---" * (len(COLUMNS) + 2) + "|")
            rng = random.Random(seed)
            pglog = PgLog(cluster.root / "server.log")
            pglog.since_last()
            for n in range(1, trials + 1):
                t = time.perf_counter()
                counts = await one_trial(
                    n,
                    rng,
                    url,
                    db,
                    pharmacies,
                    server,
                    pool,
                    pglog,
                    senders=senders,
                    kills=kills,
                    care_date=care_date,
                )
                total.update(counts)
                out(
                    f"| {n} | "
                    + " | ".join(str(counts[c]) for c in COLUMNS)
                    + f" | {time.perf_counter() - t:.1f} |"
                )

        asyncio.run(main())
        out(f"# reasons on the lines decided: {reasons(db)}")
        verify = subprocess.run(
            [REMPART, "audit", "verify"], env=env, capture_output=True, text=True, check=False
        )
        out(f"# rempart audit verify: {(verify.stdout + verify.stderr).strip()}")
        total["audit_problems"] = int(verify.returncode != 0)
        seconds = time.perf_counter() - t0
        out(
            f"claims_crash trials={trials} "
            + " ".join(f"{c}={total[c]}" for c in (*COLUMNS, "audit_problems"))
            + f" seconds={seconds:.0f}"
        )
        return {c: total[c] for c in (*COLUMNS, "audit_problems")}
    finally:
        for p in procs:
            p.stop()
        if keep:
            shutil.copy(cluster.root / "server.log", tmp / "postgresql.log")
            out(f"# logs kept in {tmp}")
        cluster.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kills", type=int, default=3, help="kill events a trial (at least 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the logs (printed at the end)")
    a = ap.parse_args()
    total = run(
        trials=a.trials,
        senders=a.senders,
        workers=a.workers,
        kills=max(a.kills, 2),
        seed=a.seed,
        keep=a.keep,
    )
    failed = any(total[c] for c in (*CHECKS, "refused", "http_5xx", "audit_problems"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
