#!/usr/bin/env bash
# Create .venv and install ttclab with everything `make demo` / `make test` need.
#
#   bash scripts/install.sh              # build llama.cpp for this CPU (cached), install, smoke-test
#   bash scripts/install.sh --portable   # build at the AVX2 level (a wheel for other x86-64 machines)
#   bash scripts/install.sh --rebuild    # ignore the cached wheel and build again
#
# llama-cpp-python compiles from source (about 5 minutes on 2 cores). The flags come from the CPU's
# reported instruction sets, never -march=native and never AMX (llama.cpp's AMX kernels segfault:
# upstream issue #20824; TTCLAB_LLAMA_AMX=1 opts in). TTCLAB_LLAMA_CMAKE_ARGS replaces the flags.
# The wheel is cached in $TTCLAB_WHEEL_CACHE (default ~/.cache/ttclab/wheels) under a key of
# (version, flags, CPU instruction sets), so machines sharing a home never load each other's build.
# After installing, a subprocess generates a few tokens; if it crashes the install rebuilds once at
# the portable level, and if that crashes too it stops with one line saying what to try.
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA_VERSION=0.3.36
PORTABLE=0
REBUILD=0
for arg in "$@"; do
  case "$arg" in
    --portable) PORTABLE=1 ;;
    --rebuild) REBUILD=1 ;;
    *) echo "install.sh: unknown option $arg (use --portable or --rebuild)" >&2; exit 2 ;;
  esac
done
if [ -n "${HOME:-}" ] && mkdir -p "$HOME/.cache/ttclab" 2>/dev/null; then
  DEFAULT_CACHE="$HOME/.cache/ttclab/wheels"
else
  DEFAULT_CACHE="${TMPDIR:-/tmp}/ttclab-cache-$(id -u)/wheels"
fi
CACHE="${TTCLAB_WHEEL_CACHE:-$DEFAULT_CACHE}"
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
CPU=src/ttclab/backends/cpu.py
WHEEL_DIR=""

# build_wheel FLAGS: sets WHEEL_DIR to a cache folder holding the wheel built with FLAGS.
build_wheel() {
  local flags="$1" key dir tmp
  key=$("$PY" "$CPU" key "$LLAMA_VERSION" "$flags")
  dir="$CACHE/llama-cpp-python-$LLAMA_VERSION-$key"
  if [ "$REBUILD" = 1 ] || ! ls "$dir"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    echo "ttclab: building llama-cpp-python $LLAMA_VERSION from source (about 5 minutes, once; cached in $dir)"
    echo "ttclab: CMAKE_ARGS=$flags"
    tmp="$dir.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    # --no-cache-dir: pip's own wheel cache is keyed by the sdist only and would return a build
    # made with other CMAKE_ARGS.
    if ! CMAKE_ARGS="$flags" .venv/bin/python -m pip wheel -q --no-cache-dir --no-deps -w "$tmp" \
        "llama-cpp-python==$LLAMA_VERSION"; then
      rm -rf "$tmp"
      echo "ttclab: error: building llama-cpp-python failed (CMAKE_ARGS=$flags); a C/C++ compiler and cmake are needed, or set TTCLAB_LLAMA_CMAKE_ARGS" >&2
      exit 1
    fi
    printf 'llama-cpp-python==%s\nCMAKE_ARGS=%s\n%s\n' "$LLAMA_VERSION" "$flags" "$("$PY" "$CPU" describe | sed -n 1p)" >"$tmp/BUILD"
    rm -rf "$dir" && mv "$tmp" "$dir"
  else
    echo "ttclab: llama-cpp-python $LLAMA_VERSION built for these flags before: reusing $dir"
  fi
  WHEEL_DIR="$dir"
}

install_wheel() {
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
}

smoke_test() {
  .venv/bin/python -m ttclab.backends.probe --install
}

if [ "$PORTABLE" = 1 ]; then FLAGS=$("$PY" "$CPU" flags --portable); else FLAGS=$("$PY" "$CPU" flags); fi
"$PY" "$CPU" describe $([ "$PORTABLE" = 1 ] && echo --portable) | sed 's/^/ttclab: /'
build_wheel "$FLAGS"
if [ -e "$WHEEL_DIR/PROBE_FAILED" ] && [ "$PORTABLE" = 0 ] && [ -z "${TTCLAB_LLAMA_CMAKE_ARGS:-}" ]; then
  echo "ttclab: the build for this CPU crashed here before; using the portable (AVX2-level) build"
  PORTABLE=1
  build_wheel "$("$PY" "$CPU" flags --portable)"
fi
install_wheel
.venv/bin/python -m pip install -q --find-links "$WHEEL_DIR" -e ".[llamacpp,openai,server,serve,dev,code]"
if ! smoke_test; then
  touch "$WHEEL_DIR/PROBE_FAILED"
  if [ "$PORTABLE" = 1 ] || [ -n "${TTCLAB_LLAMA_CMAKE_ARGS:-}" ]; then
    echo "ttclab: error: the llama.cpp engine built with CMAKE_ARGS='$FLAGS' crashes on this CPU; try TTCLAB_LLAMA_CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF' bash scripts/install.sh --rebuild, and report the CPU (lscpu) if it still fails" >&2
    exit 1
  fi
  echo "ttclab: the engine built for this CPU crashed in the smoke test; rebuilding once at the portable (AVX2) level"
  FLAGS=$("$PY" "$CPU" flags --portable)
  build_wheel "$FLAGS"
  install_wheel
  if ! smoke_test; then
    touch "$WHEEL_DIR/PROBE_FAILED"
    echo "ttclab: error: the llama.cpp engine crashes on this CPU both as built for it and at the portable AVX2 level; try TTCLAB_LLAMA_CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF' bash scripts/install.sh --rebuild, and report the CPU (lscpu)" >&2
    exit 1
  fi
fi
touch .venv/.installed
