"""Reading YAML and JSON(L) files with one-line errors that name the file, the line and the fix.

The one YAML reader and the one JSONL reader of the package (configs, pipelines, price and model
files, provider tables, prompt templates, task files, imports). A low module: it imports only
:mod:`ttclab.errors`, so every layer can use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from ttclab.errors import ConfigError, DataError, TTCLabError

ErrorType = type[TTCLabError]
#: libyaml's safe loader when PyYAML was built with it (same documents, ~10x faster), else the Python one
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, where: str, *, error: ErrorType = ConfigError) -> Any:
    """``yaml.safe_load(text)``; a syntax error is ``error("<where>:<line>: invalid YAML (<problem>); ...")``."""
    try:
        return yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise error(f"{at}: invalid YAML ({problem}); fix the syntax") from None


def read_text(path: str | Path, *, error: ErrorType = ConfigError, missing: str | None = None) -> str:
    """A UTF-8 text file; a missing file, a folder or bad bytes is one ``error`` line.

    ``missing`` is the fix named when the file does not exist (e.g. "give the path of a price file").
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path}: no such file; {missing or 'check the path'}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; {missing or 'give the path of a file'}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason}); convert the file to UTF-8") from None


def read_yaml(path: str | Path, *, error: ErrorType = ConfigError, missing: str | None = None) -> Any:
    """The parsed content of a YAML file (see :func:`read_text`, :func:`parse_yaml`)."""
    return parse_yaml(read_text(path, error=error, missing=missing), str(path), error=error)


def read_yaml_mapping(path: str | Path, what: str, keys: str, *, error: ErrorType = ConfigError) -> dict[str, Any]:
    """A YAML file's top-level mapping; missing file, bad syntax or a non-mapping is one ``error`` line.

    ``what`` names the kind of file ("sampling", "pipeline", "market") and ``keys`` its main keys.
    """
    data = read_yaml(path, error=error,
                     missing=f"give the path of a {what} YAML config (examples in configs/)")
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of settings ({keys}, ...)")
    return data


def parse_json(text: str, where: str, *, error: ErrorType = DataError) -> Any:
    """``json.loads(text)``; invalid JSON is ``error("<where>:<line>: invalid JSON (<msg>); fix the file")``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where}:{exc.lineno}: invalid JSON ({exc.msg}); fix the file") from None


def iter_jsonl(lines: Iterable[str | bytes], where: str, *, error: ErrorType = DataError) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of JSON Lines text (bytes are decoded as UTF-8).

    Each problem is one ``error`` line ``<where>:<line>: ...``: bytes that are not UTF-8, invalid JSON,
    or a value that is not an object.
    """
    for lineno, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise error(f"{where}:{lineno}: not UTF-8 text ({exc.reason}); convert the file to UTF-8") from None
        else:
            line = raw.removeprefix("\ufeff") if lineno == 1 else raw
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}:{lineno}: invalid JSON ({exc.msg}); fix or remove the line") from None
        if not isinstance(obj, dict):
            raise error(f"{where}:{lineno}: expected a JSON object, got {type(obj).__name__}; one object per line")
        yield lineno, obj


def read_jsonl(
    path: str | Path, *, error: ErrorType = DataError, missing: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` per line of a JSONL file (``.gz`` read transparently); see :func:`iter_jsonl`."""
    import gzip

    path = Path(path)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            yield from iter_jsonl(fh, str(path), error=error)
    except FileNotFoundError:
        raise error(f"{path}: no such file; {missing or 'check the path'}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; {missing or 'give the path of a file'}") from None
    except (OSError, EOFError) as exc:  # a damaged .gz
        raise error(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); the file is damaged or not gzip") from None


__all__ = ["iter_jsonl", "parse_json", "parse_yaml", "read_jsonl", "read_text", "read_yaml", "read_yaml_mapping"]
