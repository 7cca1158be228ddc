"""Build-flag choice for the CPU and the subprocess probe that turns a crashing engine into an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttclab.backends import cpu, probe
from ttclab.errors import BackendError

REPO = Path(__file__).resolve().parents[2]
SPR = {"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw",
       "avx512_vnni", "avx512_bf16", "avx512vbmi", "amx_tile", "amx_int8", "amx_bf16"}
OLD = {"sse4_2", "avx"}


def _opts(args: str) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in args.split())


@pytest.mark.skipif(not cpu.is_x86(), reason="x86-64 flag selection")
def test_amx_cpu_builds_without_amx_unless_opted_in() -> None:
    chosen = _opts(cpu.choose_flags(flags=SPR, env={}))
    assert chosen["GGML_NATIVE"] == "OFF"
    assert chosen["GGML_AVX512"] == "ON" and chosen["GGML_AVX512_VNNI"] == "ON"
    assert {chosen[k] for k in ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")} == {"OFF"}
    opted = _opts(cpu.choose_flags(flags=SPR, env={"TTCLAB_LLAMA_AMX": "1"}))
    assert opted["GGML_AMX_TILE"] == "ON"


@pytest.mark.skipif(not cpu.is_x86(), reason="x86-64 flag selection")
def test_flags_follow_the_cpu_and_portable_is_avx2_level() -> None:
    old = _opts(cpu.choose_flags(flags=OLD, env={}))
    assert old["GGML_AVX"] == "ON" and old["GGML_AVX2"] == "OFF" and old["GGML_FMA"] == "OFF"
    portable = _opts(cpu.choose_flags(portable=True, flags=SPR, env={"TTCLAB_LLAMA_AMX": "1"}))
    assert portable["GGML_AVX2"] == "ON" and portable["GGML_FMA"] == "ON"
    assert portable["GGML_AVX512"] == "OFF" and portable["GGML_AMX_TILE"] == "OFF"


def test_override_replaces_the_choice() -> None:
    assert cpu.choose_flags(flags=SPR, env={"TTCLAB_LLAMA_CMAKE_ARGS": "-DGGML_NATIVE=ON"}) == "-DGGML_NATIVE=ON"


def test_cache_key_depends_on_version_flags_and_cpu() -> None:
    flags = cpu.choose_flags(flags=SPR, env={})
    base = cpu.cache_key("0.3.36", flags, SPR)
    assert base == cpu.cache_key("0.3.36", flags, SPR)
    assert base != cpu.cache_key("0.3.37", flags, SPR)
    assert base != cpu.cache_key("0.3.36", cpu.choose_flags(portable=True, flags=SPR, env={}), SPR)
    if cpu.is_x86():
        assert base != cpu.cache_key("0.3.36", flags, SPR - {"amx_tile"})
        # flags that do not affect the build do not change the key
        assert base == cpu.cache_key("0.3.36", flags, SPR | {"hypervisor", "rdrand"})


def test_cpu_script_runs_without_the_package(tmp_path: Path) -> None:
    """install.sh runs it with the system Python before .venv exists: stdlib only."""
    out = subprocess.run([sys.executable, "-S", "-I", str(REPO / "src/ttclab/backends/cpu.py"), "flags"],
                         capture_output=True, text=True, cwd=tmp_path, check=True)
    assert "GGML_NATIVE" in out.stdout


@pytest.fixture
def fresh_probe_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TTCLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TTCLAB_ENGINE_PROBE", raising=False)
    monkeypatch.setattr(probe, "_checked", set())
    return tmp_path / "cache"


@pytest.mark.slow
def test_crashing_engine_becomes_one_line_error(fresh_probe_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp")
    monkeypatch.setenv("TTCLAB_PROBE_SELFTEST", "SIGSEGV")
    with pytest.raises(BackendError) as info:
        probe.ensure_engine_works()
    message = str(info.value)
    assert "SIGSEGV" in message and "scripts/install.sh" in message and "\n" not in message
    assert not list(fresh_probe_cache.rglob("*.ok")), "a failed probe must not be remembered as a pass"


@pytest.mark.slow
def test_probe_pass_is_cached_per_engine_key(fresh_probe_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp")
    probe.ensure_engine_works()
    markers = list(fresh_probe_cache.rglob("*.ok"))
    assert [m.stem for m in markers] == [probe.engine_key()]
    assert "probe ok" in markers[0].read_text()
    # A new process with the same engine and CPU does not probe again (a crashing child would fail).
    monkeypatch.setattr(probe, "_checked", set())
    monkeypatch.setenv("TTCLAB_PROBE_SELFTEST", "SIGSEGV")
    probe.ensure_engine_works()
    # ... but a forced probe does.
    with pytest.raises(BackendError):
        probe.ensure_engine_works(force=True)


@pytest.mark.slow
def test_sample_with_crashing_engine_exits_cleanly(tmp_path: Path) -> None:
    """The user sees one line and a non-zero exit, not a dead interpreter."""
    pytest.importorskip("llama_cpp")
    config = tmp_path / "c.yaml"
    config.write_text(
        "models: [{backend: llamacpp, name: smollm2-135m}]\n"
        "task: {source: gym, name: syllogism, size: 2, seed: 0}\n"
        "samples: 1\nsampling: {temperature: 0.7, max_tokens: 4, seed: 0}\n"
    )
    env = dict(os.environ, TTCLAB_CACHE=str(tmp_path / "cache"), TTCLAB_PROBE_SELFTEST="SIGSEGV")
    env.pop("TTCLAB_ENGINE_PROBE", None)
    proc = subprocess.run([sys.executable, "-m", "ttclab.cli", "sample", str(config), "--store", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0 and proc.returncode > 0
    assert "Traceback" not in proc.stderr
    assert "SIGSEGV" in proc.stderr and "install.sh" in proc.stderr


@pytest.mark.slow
def test_install_falls_back_to_portable_then_stops_with_one_line(tmp_path: Path) -> None:
    """install.sh on a CPU where every build crashes: one portable retry, then a clear stop.

    The crash is the probe child killing itself with SIGSEGV (a real signal, as a bad build gives);
    both wheels come from a prepared cache so nothing is compiled.
    """
    pytest.importorskip("llama_cpp")
    wheels = sorted(Path.home().glob(".cache/ttclab/wheels/llama-cpp-python-0.3.36-*/llama_cpp_python-*.whl"))
    if not wheels:
        pytest.skip("no cached llama-cpp-python wheel to install from")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("scripts", "src"):
        subprocess.run(["cp", "-r", str(REPO / name), str(project / name)], check=True)
    for name in ("pyproject.toml", "README.md"):
        (project / name).write_bytes((REPO / name).read_bytes())
    cache = tmp_path / "cache"
    script = str(project / "src/ttclab/backends/cpu.py")
    for portable in ([], ["--portable"]):
        flags = subprocess.run([sys.executable, script, "flags", *portable], capture_output=True, text=True,
                               check=True, env={}).stdout.strip()
        key = subprocess.run([sys.executable, script, "key", "0.3.36", flags], capture_output=True, text=True,
                             check=True).stdout.strip()
        folder = cache / f"llama-cpp-python-0.3.36-{key}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / wheels[0].name).write_bytes(wheels[0].read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TTCLAB_", "VIRTUAL_ENV"))}
    env.update(TTCLAB_WHEEL_CACHE=str(cache), TTCLAB_PROBE_SELFTEST="SIGSEGV", TTCLAB_CACHE=str(tmp_path / "state"))
    proc = subprocess.run(["bash", "scripts/install.sh"], cwd=project, capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "rebuilding once at the portable" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ttclab: error:")]
    assert len(errors) == 1 and "both as built for it and at the portable AVX2 level" in errors[0]
    assert "Traceback" not in proc.stderr
    assert len(list(cache.glob("*/PROBE_FAILED"))) == 2
    assert not (project / ".venv/.installed").exists()
