"""Helpers shared by the online pipeline tests (imported by name: a conftest is not importable
when several test folders are collected together)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
PIPELINES = REPO / "configs" / "pipelines"

SMOLLM = {"backend": "llamacpp", "name": "smollm2-135m", "options": {"n_ctx": 2048}}


def scripted_model(url: str, **options: Any) -> dict[str, Any]:
    return {"backend": "openai", "name": "scripted", "options": {"base_urls": [url], "max_concurrency": 32, **options}}


def load_yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load((PIPELINES / f"{name}.yaml").read_text())


_SMALL = {
    "generate": {"n": 2, "first": 1},
    "copy": {"k": 2},
    "repeat": {"times": 1},
    "select": {"subsets": [2], "opponents": 1},
    "fuse": {"n": 1},
    "beam_search": {"beam_width": 2, "expansion": 1, "depth": 2},
    "dvts": {"n": 2, "beam_width": 1, "depth": 2},
    "budget_force": {"n": 1, "budget": 10, "answer_tokens": 4},
    "deepconf": {"warmup": 2, "traces": 2, "chunk": 5, "window": 4},
}


def shrink(data: dict[str, Any], max_tokens: int = 10, times: int = 1) -> dict[str, Any]:
    """The same pipeline with every width, count and token budget made small (structure kept)."""
    out = copy.deepcopy(data)

    def walk(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            for key, value in _SMALL.get(step["op"], {}).items():
                if key in step:
                    step[key] = value if key != "times" else min(step[key], times)
            if step["op"] == "select" and "subsets" in step:
                step["subsets"] = [2]
            if step["op"] == "repeat":
                step["times"] = min(step["times"], times if "until" not in step else 2)
                walk(step["steps"])
    walk(out["steps"])
    out["sampling"] = {**out.get("sampling", {}), "max_tokens": max_tokens}
    return out


def write_pipeline(tmp_path: Path, data: dict[str, Any], name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
