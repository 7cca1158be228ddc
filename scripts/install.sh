#!/usr/bin/env bash
# Create .venv and install ttclab with everything `make demo` / `make test` need.
# llama-cpp-python compiles from source (about 5 minutes): the built wheel is cached in
# $TTCLAB_WHEEL_CACHE (default ~/.cache/ttclab/wheels) and reused on the next install.
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA_VERSION=0.3.36
CACHE="${TTCLAB_WHEEL_CACHE:-$HOME/.cache/ttclab/wheels}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import sys; sys.exit(sys.version_info < (3, 11))" 2>/dev/null; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "ttclab needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
mkdir -p "$CACHE"
if ! ls "$CACHE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "ttclab: building llama-cpp-python $LLAMA_VERSION from source (about 5 minutes, once; cached in $CACHE)"
  .venv/bin/python -m pip wheel -q --no-deps -w "$CACHE" "llama-cpp-python==$LLAMA_VERSION"
fi
.venv/bin/python -m pip install -q --find-links "$CACHE" -e ".[llamacpp,openai,server,dev]"
touch .venv/.installed
