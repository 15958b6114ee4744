#!/usr/bin/env bash
# Creates .venv with Python 3.10 and installs the lock with uv.
# Python: $PYTHON if set, else pyenv's 3.10, else a python3.10 on PATH, else uv's own.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv" >&2
  python3 -m pip install --quiet uv
fi
UV="$(command -v uv || echo "$(python3 -m site --user-base)/bin/uv")"

find_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local root; root="$(pyenv root)"
    local candidate
    candidate="$(ls -d "$root"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V | tail -1 || true)"
    if [[ -n "$candidate" && -x "$candidate" ]]; then echo "$candidate"; return; fi
  fi
  if python3.10 -c 'import sys' >/dev/null 2>&1; then command -v python3.10; return; fi
  echo ""
}

PY="$(find_python)"
if [[ ! -x .venv/bin/python ]]; then
  if [[ -n "$PY" ]]; then
    UV_PYTHON_DOWNLOADS=never "$UV" venv --python "$PY" .venv
  else
    "$UV" venv --python 3.10 .venv   # may download a Python where that is allowed
  fi
fi
VIRTUAL_ENV=.venv "$UV" pip sync requirements.txt
VIRTUAL_ENV=.venv "$UV" pip install --no-deps -e .
