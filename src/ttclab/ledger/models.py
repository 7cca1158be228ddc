"""Model sizes and architectures (data, not code): the inputs of the FLOP and memory-traffic formulas.

The built-in file is ``ttclab/ledger/data/models.yaml``; any other YAML file of the same shape can be
loaded by path. Lookups are forgiving about spelling: ``Qwen/Qwen2.5-Math-7B-Instruct``,
``qwen2.5-math-7b`` and ``SmolLM2-135M-Instruct.Q4_1.gguf`` all resolve (see :func:`normalise_name`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ttclab.errors import DataError
from ttclab.io import parse_yaml, read_text

_REQUIRED_INT = ("n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "context")


@dataclass(frozen=True, slots=True)
class ModelArch:
    """One decoder-only transformer, as far as the cost formulas need it."""

    name: str
    n_params: float
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context: int
    vocab_size: int | None = None
    tie_embeddings: bool = True
    sliding_window: int | None = None
    n_local_layers: int = 0

    @property
    def matmul_params(self) -> float:
        """Parameters touched by a matmul per token: all but an untied input embedding (a lookup)."""
        if self.vocab_size is None or self.tie_embeddings:
            return float(self.n_params)
        return float(self.n_params - self.vocab_size * self.hidden_size)

    @property
    def n_global_layers(self) -> int:
        return self.n_layers - self.n_local_layers

    @property
    def attn_width(self) -> int:
        """d_attn = n_heads x head_dim (queries; grouped KV heads do not reduce attention FLOPs)."""
        return self.n_heads * self.head_dim

    @property
    def kv_bytes_per_token_layer_element(self) -> int:
        """Elements of K and V cached per token and layer: 2 x n_kv_heads x head_dim."""
        return 2 * self.n_kv_heads * self.head_dim


@dataclass(frozen=True)
class ArchTable:
    version: str
    models: Mapping[str, ModelArch]
    path: str = ""
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, model: str) -> ModelArch:
        """The architecture of ``model`` (name, alias, hub id or GGUF file name); DataError if unknown."""
        key = normalise_name(model)
        for candidate in (key, _strip_variant(key)):
            if candidate in self._index:
                return self.models[self._index[candidate]]
        known = ", ".join(sorted(self.models)) or "none"
        raise DataError(
            f"no architecture for model {model!r} in {self.path or 'the model file'}; known: {known}; "
            "add it to a models YAML file (n_params, n_layers, hidden_size, n_heads, n_kv_heads, head_dim, context)"
        )

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> ArchTable:
        """A copy with single fields replaced or whole models added (``{"m": {"n_params": 1e9, ...}}``)."""
        models = dict(self.models)
        for name, fields in overrides.items():
            try:
                base = self.get(name)
            except DataError:
                models[name] = _arch(name, dict(fields), f"override for {name}")
                continue
            merged = {f: getattr(base, f) for f in base.__slots__ if f != "name" and getattr(base, f) is not None}
            merged.update(dict(fields))
            models[base.name] = _arch(base.name, merged, f"override for {name}")
        return ArchTable(self.version + "+overrides", models, self.path, self.aliases)

    @property
    def _index(self) -> dict[str, str]:
        index: dict[str, str] = {}
        for name in self.models:
            index[normalise_name(name)] = name
        for name, aliases in self.aliases.items():
            for alias in aliases:
                index.setdefault(normalise_name(alias), name)
        return index


_SUFFIX_FILE = re.compile(r"\.(gguf|bin|safetensors)$")
_SUFFIX_QUANT = re.compile(r"[.\-_](q\d[\w]*|iq\d[\w]*|f16|bf16|fp16|fp8|f32|int4|int8|awq|gptq)$")
_SUFFIX_VARIANT = re.compile(r"-(instruct|it|chat)$")


def normalise_name(model: str) -> str:
    """Lower-case, drop an org prefix / directory, a weight-file suffix and quantisation suffixes."""
    name = str(model).strip().replace("\\", "/").rsplit("/", 1)[-1].lower()
    name = _SUFFIX_FILE.sub("", name)
    previous = None
    while previous != name:
        previous, name = name, _SUFFIX_QUANT.sub("", name)
    return name


def _strip_variant(name: str) -> str:
    return _SUFFIX_VARIANT.sub("", name)


def load_architectures(name_or_path: str | Path = "models") -> ArchTable:
    """Load the built-in architecture file (``"models"``) or any file of the same shape by path."""
    path = Path(name_or_path)
    if path.exists():
        text, where = read_text(path, error=DataError), str(path)
    else:
        candidate = resources.files("ttclab.ledger") / "data" / f"{name_or_path}.yaml"
        if not candidate.is_file():
            raise DataError(f"architecture file {name_or_path!r} not found; give a path or the built-in 'models'")
        text, where = candidate.read_text(), f"ttclab:{name_or_path}"
    data = parse_yaml(text, where, error=DataError)
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise DataError(f"{where}: expected a mapping with a 'models' mapping of model -> architecture fields")
    models: dict[str, ModelArch] = {}
    aliases: dict[str, tuple[str, ...]] = {}
    for name, fields in data["models"].items():
        if not isinstance(fields, Mapping):
            raise DataError(f"{where}: models.{name}: expected a mapping of architecture fields")
        fields = dict(fields)
        aliases[str(name)] = tuple(str(a) for a in fields.pop("aliases", []) or [])
        models[str(name)] = _arch(str(name), fields, f"{where}: models.{name}")
    return ArchTable(str(data.get("version", "unversioned")), models, where, aliases)


def _arch(name: str, fields: Mapping[str, Any], where: str) -> ModelArch:
    values: dict[str, Any] = {}
    for key in ("n_params", *_REQUIRED_INT):
        if key not in fields:
            raise DataError(f"{where}: missing field {key!r}")
        values[key] = _number(fields[key], f"{where}.{key}", integer=key != "n_params")
    for key in ("vocab_size", "sliding_window"):
        if fields.get(key) is not None:
            values[key] = _number(fields[key], f"{where}.{key}", integer=True)
    values["n_local_layers"] = _number(fields.get("n_local_layers", 0), f"{where}.n_local_layers", integer=True, zero=True)
    values["tie_embeddings"] = bool(fields.get("tie_embeddings", True))
    unknown = set(fields) - set(values) - {"aliases", "vocab_size", "sliding_window"}
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if values["n_local_layers"] > values["n_layers"]:
        raise DataError(f"{where}.n_local_layers: {values['n_local_layers']} exceeds n_layers {values['n_layers']}")
    if values["n_local_layers"] and "sliding_window" not in values:
        raise DataError(f"{where}: n_local_layers needs a sliding_window")
    arch = ModelArch(name=name, **values)
    if arch.matmul_params <= 0:
        raise DataError(f"{where}: n_params {arch.n_params:g} is smaller than the embedding; fix n_params/vocab_size")
    return arch


def _number(value: Any, where: str, *, integer: bool, zero: bool = False) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {value!r} is not a number") from None
    if not (number > 0 or (zero and number == 0)):
        raise DataError(f"{where}: must be {'>= 0' if zero else '> 0'}, got {value!r}")
    if integer:
        if number != int(number):
            raise DataError(f"{where}: must be an integer, got {value!r}")
        return int(number)
    return number
