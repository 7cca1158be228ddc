"""Versioned prompt templates for pipeline steps (data files in ``online/prompts/``), and the chat
formats that turn messages into one completion string for continuing a partial answer.

A template file has ``name``, ``version``, an optional ``system`` and a ``user`` string. Only the
placeholders in :data:`PLACEHOLDERS` are replaced; every other brace is kept, so ``\\boxed{}``
needs no escaping. A pipeline file overrides a template per step (``template: {user: "..."}``,
``template: other_name`` or ``template: path/to/file.yaml``); the template's hash (of its strings)
is stored with every call, so a changed prompt never replays an old call.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from ttclab.errors import ConfigError
from ttclab.io import parse_yaml, read_yaml
from ttclab.tasks.prompts import check_placeholders

ChatMessage = dict[str, str]
Prompt = str | tuple[ChatMessage, ...]

PLACEHOLDERS = ("question", "solution", "feedback", "candidates", "n", "solution_a", "solution_b", "answer",
                "verdict", "report")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
#: What a step's call works on: a custom template that drops one of these where the default has it
#: would call the model without the problem or the solution (e.g. ``user: "Solve it"``).
REQUIRED_PLACEHOLDERS = ("question", "solution", "candidates", "solution_a", "solution_b")
TEMPLATE_FIELDS = ("name", "version", "system", "user", "description")


@dataclass(frozen=True)
class Template:
    """One versioned prompt template."""

    name: str
    version: int
    user: str
    system: str | None = None

    @cached_property
    def hash(self) -> str:
        """Hash of what the model sees (the strings), 12 hex digits (computed once)."""
        return hashlib.sha256(json.dumps([self.system, self.user]).encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"

    def messages(self, **values: Any) -> tuple[ChatMessage, ...]:
        """Chat messages with the placeholders filled from ``values``."""
        out: list[ChatMessage] = []
        if self.system:
            out.append({"role": "system", "content": fill(self.system, values)})
        out.append({"role": "user", "content": fill(self.user, values)})
        return tuple(out)

    def text(self, **values: Any) -> str:
        """The user string filled in (feedback templates that make no model call)."""
        return fill(self.user, values)


def fill(text: str, values: Mapping[str, Any]) -> str:
    """Replace the known placeholders present in ``values``; everything else stays as written."""
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def _check(text: str | None, where: str) -> None:
    check_placeholders(text, where, PLACEHOLDERS)


def _from_mapping(data: Mapping[str, Any], where: str, default_name: str) -> Template:
    unknown = [k for k in data if k not in TEMPLATE_FIELDS]
    if unknown:
        raise ConfigError(f"{where}: unknown template field {unknown[0]!r}; use {', '.join(TEMPLATE_FIELDS)}")
    user = data.get("user")
    if not isinstance(user, str) or not user.strip():
        raise ConfigError(f"{where}.user: a template needs a non-empty 'user' string")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise ConfigError(f"{where}.system: must be a string")
    try:
        version = int(data.get("version", 1))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.version: must be an integer (got {data.get('version')!r})") from None
    _check(system, f"{where}.system")
    _check(user, f"{where}.user")
    return Template(name=str(data.get("name") or default_name), version=version, user=user, system=system)


def builtin_template_names() -> list[str]:
    folder = resources.files("ttclab.online") / "prompts"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                  if p.name.endswith(".yaml") and p.name != "formats.yaml")


@cache
def builtin_template(name: str) -> Template:
    """A shipped template by name (``solve``, ``critique_self``, ``revise``, ``pick``, ...)."""
    file = resources.files("ttclab.online") / "prompts" / f"{name}.yaml"
    if name == "formats" or not file.is_file():
        names = builtin_template_names()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"unknown prompt template {name!r}; {hint}built-in: {', '.join(names)}")
    return _from_mapping(parse_yaml(file.read_text(), f"ttclab:{name}"), f"template {name}", name)


def resolve_template(spec: Any, default: str, where: str, base_dir: Path | None = None) -> Template:
    """The template of a step: its default, a built-in name, a file path, or overrides of the default.

    ``spec``: ``None`` (the default), ``"name"``, ``"file.yaml"``, or a mapping of fields that replace
    the default's (``{user: "..."}``) or name another base (``{name: revise, system: "..."}``).
    """
    if spec is None:
        return builtin_template(default)
    if isinstance(spec, str):
        if spec.endswith((".yaml", ".yml")):
            path = Path(spec) if base_dir is None or Path(spec).is_absolute() else base_dir / spec
            if not path.is_file():
                raise ConfigError(f"{where}: template file {path} not found")
            data = read_yaml(path)
            if not isinstance(data, dict):
                raise ConfigError(f"{where}: template file {path} must be a mapping with a 'user' string")
            return _require_inputs(_from_mapping(data, f"{where} ({path.name})", path.stem), default,
                                   f"{where} ({path.name})")
        try:
            return builtin_template(spec)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if isinstance(spec, Mapping):
        base_name = str(spec.get("name") or default)
        try:
            base = builtin_template(base_name)
        except ConfigError:
            base = None
        merged: dict[str, Any] = {"name": base_name, "version": base.version if base else 1,
                                  "system": base.system if base else None, "user": base.user if base else None}
        merged.update(dict(spec))
        template = _require_inputs(_from_mapping(merged, where, base_name), base.name if base else default, where)
        if base is not None and (template.user, template.system) != (base.user, base.system) and "version" not in spec:
            template = replace(template, name=f"{base_name}+custom")
        return template
    raise ConfigError(f"{where}: template must be a name, a .yaml path or a mapping of fields (got {spec!r})")


def _require_inputs(template: Template, default: str, where: str) -> Template:
    """``template`` when it keeps every :data:`REQUIRED_PLACEHOLDERS` the built-in ``default`` has; else ConfigError."""
    try:
        base = builtin_template(default)
    except ConfigError:
        return template
    have = set(_PLACEHOLDER.findall(f"{template.system or ''}\n{template.user}"))
    need = list(dict.fromkeys(_PLACEHOLDER.findall(f"{base.system or ''}\n{base.user}")))
    missing = [p for p in REQUIRED_PLACEHOLDERS if p in need and p not in have]
    if missing:
        shown = " and ".join("{" + p + "}" for p in missing)
        raise ConfigError(f"{where}.user: no {shown}: the model would not see {'them' if len(missing) > 1 else 'it'}; "
                          f"add {shown} where {'they go' if len(missing) > 1 else 'it goes'} (the built-in {default!r} "
                          f"template uses {', '.join('{' + p + '}' for p in need)})")
    return template


# --------------------------------------------------------------------------------------------------
# chat formats for continuation


@dataclass(frozen=True)
class ChatFormat:
    """Renders chat messages as one string ending where the model's turn begins."""

    name: str
    system: str
    user: str
    assistant: str
    generation: str
    stop: tuple[str, ...]

    def render(self, messages: tuple[ChatMessage, ...], partial: str = "") -> str:
        parts = []
        for m in messages:
            pattern = {"system": self.system, "user": self.user, "assistant": self.assistant}.get(m["role"])
            if pattern is None:
                raise ConfigError(f"chat format {self.name}: unknown message role {m['role']!r}")
            parts.append(pattern.replace("{content}", m["content"]))
        return "".join(parts) + self.generation + partial


@cache
def _formats() -> dict[str, Any]:
    return parse_yaml((resources.files("ttclab.online") / "prompts" / "formats.yaml").read_text(), "ttclab:formats")


def chat_format(name: str) -> ChatFormat:
    """A continuation format by name (``chatml``, ``gemma``, ``llama3``, ``plain``)."""
    formats = _formats()["formats"]
    if name not in formats:
        raise ConfigError(f"format: unknown chat format {name!r}; choose one of: {', '.join(formats)}")
    f = formats[name]
    return ChatFormat(name, f["system"], f["user"], f["assistant"], f["generation"], tuple(f.get("stop") or ()))


def default_format(model: str) -> str | None:
    """The continuation format of a built-in model (None when unknown)."""
    return _formats()["models"].get(model)
