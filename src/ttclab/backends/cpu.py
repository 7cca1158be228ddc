"""Choose llama-cpp-python build flags for this CPU and the cache key of the wheel they give.

Stdlib only: runs with the system Python before the virtual environment exists.

    python src/ttclab/backends/cpu.py flags [--portable]   # one line: the CMAKE_ARGS to build with
    python src/ttclab/backends/cpu.py key VERSION CMAKE_ARGS  # one line: the wheel cache key
    python src/ttclab/backends/cpu.py describe [--portable] # what was detected and chosen, for humans

Rules (see the README, "Installing on other CPUs"):
- x86-64: never ``-march=native``; the instruction sets the CPU reports are enabled one by one and
  AMX is always off (llama.cpp's AMX kernels crash with SIGSEGV at ``ldtilecfg``, upstream issue
  #20824) unless ``TTCLAB_LLAMA_AMX=1`` asks to try it. ``--portable`` is the AVX2 level
  (AVX, AVX2, FMA, F16C, BMI2), for wheels meant for other machines.
- other architectures: llama.cpp's native detection (no AMX exists there).
- ``TTCLAB_LLAMA_CMAKE_ARGS`` replaces the choice entirely.
The cache key covers the llama-cpp-python version, the flags and the CPU's instruction sets, so a
home directory shared by machines with different CPUs never reuses a wheel built for another.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys

# CPU flag (as /proc/cpuinfo spells it) -> the ggml option it enables.
X86_OPTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GGML_SSE42", ("sse4_2",)),
    ("GGML_AVX", ("avx",)),
    ("GGML_AVX2", ("avx2",)),
    ("GGML_FMA", ("fma",)),
    ("GGML_F16C", ("f16c",)),
    ("GGML_BMI2", ("bmi2",)),
    ("GGML_AVX_VNNI", ("avx_vnni",)),
    ("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")),
    ("GGML_AVX512_VBMI", ("avx512vbmi",)),
    ("GGML_AVX512_VNNI", ("avx512_vnni",)),
    ("GGML_AVX512_BF16", ("avx512_bf16",)),
)
AMX_OPTIONS: tuple[tuple[str, str], ...] = (
    ("GGML_AMX_TILE", "amx_tile"), ("GGML_AMX_INT8", "amx_int8"), ("GGML_AMX_BF16", "amx_bf16"),
)
PORTABLE = ("GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2")
# Flags that matter for which instructions a build may use (the key ignores the rest of cpuinfo).
RELEVANT = {f for _, fs in X86_OPTIONS for f in fs} | {f for _, f in AMX_OPTIONS}


def is_x86() -> bool:
    return platform.machine().lower() in {"x86_64", "amd64", "i686", "i386"}


def cpu_flags() -> set[str]:
    """Instruction-set flags the CPU reports (Linux /proc/cpuinfo, macOS sysctl)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in {"flags", "Features"}:
                    return set(value.split())
    except OSError:
        pass
    if sys.platform == "darwin":
        out = []
        for name in ("machdep.cpu.features", "machdep.cpu.leaf7_features", "machdep.cpu.brand_string"):
            try:
                out.append(subprocess.run(["sysctl", "-n", name], capture_output=True, text=True).stdout)
            except OSError:
                pass
        return {w.lower().replace(".", "_") for w in " ".join(out).split()}
    return set()


def isa_signature(flags: set[str] | None = None) -> str:
    """A stable description of the CPU's instruction sets, for the cache key."""
    flags = cpu_flags() if flags is None else flags
    kept = sorted(flags & RELEVANT) if is_x86() else sorted(flags)
    return f"{platform.machine()}:{','.join(kept)}"


def choose_flags(portable: bool = False, flags: set[str] | None = None, env: dict[str, str] | None = None) -> str:
    """The CMAKE_ARGS for this machine (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    override = env.get("TTCLAB_LLAMA_CMAKE_ARGS", "").strip()
    if override:
        return override
    if not is_x86():
        return "-DGGML_NATIVE=ON"
    flags = cpu_flags() if flags is None else flags
    args = ["-DGGML_NATIVE=OFF"]
    for option, needed in X86_OPTIONS:
        on = option in PORTABLE if portable else all(f in flags for f in needed)
        args.append(f"-D{option}={'ON' if on else 'OFF'}")
    amx = env.get("TTCLAB_LLAMA_AMX", "") == "1" and not portable
    for option, flag in AMX_OPTIONS:
        args.append(f"-D{option}={'ON' if amx and flag in flags else 'OFF'}")
    return " ".join(args)


def cache_key(version: str, cmake_args: str, flags: set[str] | None = None) -> str:
    text = f"llama-cpp-python=={version}\n{' '.join(cmake_args.split())}\n{isa_signature(flags)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    portable = "--portable" in rest
    if cmd == "flags":
        print(choose_flags(portable))
    elif cmd == "key" and len(rest) == 2:
        print(cache_key(rest[0], rest[1]))
    elif cmd == "describe":
        flags = cpu_flags()
        amx = sorted(f for f in flags if f.startswith("amx"))
        print(f"cpu: {isa_signature(flags)}")
        if amx:
            print(f"cpu reports AMX ({' '.join(amx)}): built without AMX kernels (set TTCLAB_LLAMA_AMX=1 to try them)")
        print(f"cmake args: {choose_flags(portable, flags)}")
    else:
        print(f"usage: cpu.py flags|key|describe (got {' '.join(argv)})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
