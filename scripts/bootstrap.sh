#!/usr/bin/env bash
# Install what Rempart needs on a fresh Debian machine, then the Python environment.
# Idempotent: installs only what is missing. Used by `make demo`, `make test` and `.ci/run`.
#   scripts/bootstrap.sh          # Python environment (uv, venv from uv.lock)
#   scripts/bootstrap.sh --system # also Debian's postgresql and chromium (needs root)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--system" ]]; then
  missing=()
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
  command -v chromium >/dev/null || missing+=(chromium)
  if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
      echo "missing Debian packages: ${missing[*]} — run: sudo apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if ! command -v uv >/dev/null; then
  echo "installing uv with pip"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
# uv uses the machine's Python 3.11 and never downloads one (pyproject: python-downloads = never).
uv sync --frozen --quiet
