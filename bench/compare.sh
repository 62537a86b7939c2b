#!/usr/bin/env bash
# make bench-compare: the bare-service ceiling, then Rempart, on the same machine, one after the
# other; prints both figures at concurrency 64 and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
ceiling=$(ROWS=$ROWS PGBENCH= VARIANTS="raw,1,8,unix" bash ../shared/bench/ceiling/run.sh | tee /dev/stderr | tail -1)
ours=$(uv run --frozen python bench/rights_check.py --rows "$ROWS" | tee /dev/stderr | tail -1)
c=$(sed 's/.*_per_s=\([0-9]*\).*/\1/' <<<"$ceiling"); r=$(sed 's/.*_per_s=\([0-9]*\).*/\1/' <<<"$ours")
echo "$ceiling"; echo "$ours"
python3 -c "print(f'ratio_rempart_to_ceiling={$r / $c:.2f} (concurrency 64)')"
