"""Key rotation of N beneficiaries while a rights-check load runs, on PostgreSQL.

    uv run python bench/key_rotation.py [--rows 1000000] [--conns 8]

Seeds a durable throwaway PostgreSQL with ``rempart demo --no-serve --beneficiaries ROWS``,
serves it (``rempart serve --workers 1 --no-worker``), starts wrk on ``POST
/api/v1/rights-checks`` (the rights-check bench's bodies and load-test client) and, while it
runs, ``rempart keys rotate``. Prints the rotation's time and rows/s, the load's requests/s and
its failed reads (connection errors + non-2xx answers: the acceptance wants 0), and counts the
beneficiaries left with a ciphertext or ``key_version`` under the old version (0 expected).
Nothing is written in clear by construction (``access.reencrypt_batch`` re-encrypts in memory);
``tests/web/test_key_rotation.py`` checks that, and that values read back, on a small base.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rights_check import PG_SETTINGS, REMPART, bench_token, bodies, free_port, serve, wrk

from rempart.testing.postgres import Cluster


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--conns", type=int, default=8)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rempart-rotation-bench-"))
    cluster = Cluster(durable=True, settings=PG_SETTINGS).start()
    server = None
    try:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
        env.update(
            REMPART_DATA_DIR=str(tmp),
            REMPART_DATABASE_URL=cluster.create_database("rempart"),
            REMPART_LOG_LEVEL="warning",
            REMPART_TOKEN_TTL_SECONDS="7200",
        )
        t0 = time.perf_counter()
        subprocess.run(
            [REMPART, "demo", "--no-serve", "--beneficiaries", str(a.rows),
             "--export-fixtures", str(tmp / "fx")],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        print(f"# seeded {a.rows:,} in {time.perf_counter() - t0:.0f} s; nproc={os.cpu_count()}")
        bodies(tmp / "fx" / "cards.csv", tmp / "bodies.jsonl")
        server = serve(env, port, 1, tmp / "serve.log")
        url = f"http://127.0.0.1:{port}"
        token = bench_token(url, tmp / "fx")
        load: dict[str, float] = {}
        started = time.perf_counter()
        rotation = subprocess.Popen(
            [REMPART, "keys", "rotate", "--actor", "securite.bernard"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip

        def drive() -> None:  # wrk in slices of 10 s until the rotation is over
            total = {"requests": 0.0, "errors": 0.0, "seconds": 0.0}
            while rotation.poll() is None:
                r = wrk(url, a.conns, 10, tmp / "bodies.jsonl", token)
                total["requests"] += r["rps"] * 10
                total["errors"] += r["errors"]
                total["seconds"] += 10
            load.update(total)

        thread = threading.Thread(target=drive)
        thread.start()
        out, _ = rotation.communicate()
        seconds = time.perf_counter() - started
        thread.join()
        print(out.strip())
        if rotation.returncode != 0:
            raise SystemExit("rotation failed")
        older = cluster.psql(
            "SELECT count(*) FROM beneficiary WHERE key_version < 2 "
            "OR get_byte(nir_enc, 1) <> 2 OR get_byte(last_name_enc, 1) <> 2",
            "rempart",
        ).strip()
        print(
            f"# rotation of {a.rows:,} beneficiaries (+ accounts, bank details): {seconds:.1f} s "
            f"({a.rows / seconds:,.0f} rows/s) under a rights-check load of "
            f"{load['requests'] / max(load['seconds'], 1):.0f} req/s at c={a.conns}; "
            f"failed reads (errors + non-2xx): {load['errors']:.0f}; rows left under an old "
            f"version: {older}"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
