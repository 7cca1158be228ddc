"""Check in a subprocess that the built llama.cpp engine runs on this CPU before loading it here.

A llama.cpp build that uses instructions this CPU lacks (or the AMX kernels, which crash upstream)
dies with SIGSEGV/SIGILL inside the first matrix multiply; in-process that kills the interpreter
with no message. So the first embedded-model load of a process first generates a few tokens in a
child process. A pass is remembered per *engine key* (the llama.cpp libraries' names, sizes and
modification times plus the CPU's instruction sets), so it costs nothing after the first time and
a rebuilt wheel or another CPU (a shared home directory) is probed again.

``python -m ttclab.backends.probe [--force] [MODEL]`` runs the probe and prints one line;
``scripts/install.sh`` runs it with ``--install`` as the smoke test after building.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ttclab.backends.cpu import isa_signature
from ttclab.errors import BackendError

PROBE_TIMEOUT_S = 300.0
_FIX = (
    "rebuild the engine for this machine with `bash scripts/install.sh --rebuild` "
    "(or `--portable`; README: 'Installing on other CPUs')"
)
_checked: set[str] = set()
_lock = threading.Lock()


def cache_dir() -> Path:
    """A writable folder for ttclab's machine-local state (never assumes a home directory)."""
    candidates = [os.environ.get("TTCLAB_CACHE"), os.environ.get("XDG_CACHE_HOME")]
    home = os.environ.get("HOME")
    if home:
        candidates.append(str(Path(home) / ".cache"))
    for i, base in enumerate(candidates):
        if not base:
            continue
        path = Path(base) if i == 0 else Path(base) / "ttclab"
        try:
            path.mkdir(parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    path = Path(tempfile.gettempdir()) / f"ttclab-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def engine_libraries() -> list[Path]:
    """The shared libraries of the installed llama-cpp-python (empty when it is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(p for p in root.rglob("*") if p.is_file() and (".so" in p.name or p.suffix in {".dylib", ".dll"}))


def engine_key() -> str:
    """Identity of (installed engine build, this CPU): a probe result is valid for one key only."""
    parts = [isa_signature(), sys.executable]
    for lib in engine_libraries():
        st = lib.stat()
        parts.append(f"{lib.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def run_probe(model: str = "smollm2-135m", *, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Generate a few tokens in a child process; (ok, one-line description)."""
    env = dict(os.environ, TTCLAB_ENGINE_PROBE="child")
    cmd = [sys.executable, "-m", "ttclab.backends.probe", "--child", model]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"the llama.cpp probe did not finish within {timeout_s:.0f} s"
    if proc.returncode == 0 and "probe ok" in proc.stdout:
        return True, proc.stdout.strip().splitlines()[-1]
    tail = (proc.stderr.strip().splitlines() or [""])[-1][:200]
    detail = f" ({tail})" if tail and proc.returncode > 0 else ""
    return False, f"the llama.cpp engine {_describe_exit(proc.returncode)} while generating a few tokens{detail}"


def ensure_engine_works(model: str = "smollm2-135m", *, force: bool = False) -> None:
    """Raise a one-line BackendError if the engine crashes on this CPU (probed once per key)."""
    if os.environ.get("TTCLAB_ENGINE_PROBE") in {"child", "off"}:
        return
    key = engine_key()
    with _lock:
        if key in _checked and not force:
            return
        marker = cache_dir() / "engine-probe" / f"{key}.ok"
        if marker.exists() and not force:
            _checked.add(key)
            return
        ok, message = run_probe(model)
        if not ok:
            raise BackendError(f"{message}; it would crash this process on this CPU: {_FIX}")
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(message + "\n")
        os.replace(tmp, marker)
        _checked.add(key)


def _child(model: str) -> int:
    fault = os.environ.get("TTCLAB_PROBE_SELFTEST")  # tests: make the child crash like a bad build
    if fault:
        os.kill(os.getpid(), getattr(signal, fault))
    from llama_cpp import Llama

    from ttclab.backends.models import resolve_model_path

    llama = Llama(model_path=str(resolve_model_path(model)), n_ctx=256, n_threads=1, verbose=False)
    out: Any = llama.create_completion("The capital of France is", max_tokens=4, temperature=0.0)
    n = int(out["usage"]["completion_tokens"])
    print(f"probe ok: {model} generated {n} tokens")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        return _child(argv[1] if len(argv) > 1 else "smollm2-135m")
    force = "--force" in argv
    models = [a for a in argv if not a.startswith("--")]
    model = models[0] if models else "smollm2-135m"
    if "--install" in argv:  # the install's smoke test: it decides what to do next
        ok, message = run_probe(model)
        print(f"ttclab: smoke test {'passed' if ok else 'failed'}: {message}", file=sys.stdout if ok else sys.stderr)
        if ok:
            ensure_engine_works(model)  # remember the pass for this engine key
        return 0 if ok else 1
    try:
        ensure_engine_works(model, force=force)
    except BackendError as exc:
        print(f"ttclab: error: {exc}", file=sys.stderr)
        return 1
    print(f"ttclab: the llama.cpp engine runs on this CPU (engine key {engine_key()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
