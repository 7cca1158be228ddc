"""The one YAML reader and the one JSONL reader: one-line errors naming the file, the line and the fix."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

import ttclab
from ttclab.errors import ConfigError, DataError
from ttclab.io import iter_jsonl, parse_json, read_jsonl, read_yaml, read_yaml_mapping

SRC = Path(ttclab.__file__).parent


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError) as exc:
        read_yaml(path)
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: invalid YAML \(.+\); fix the syntax", _one_line(exc))
    with pytest.raises(DataError):
        read_yaml(path, error=DataError)


def test_yaml_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="no such file; give the path of a market YAML config"):
        read_yaml_mapping(tmp_path / "none.yaml", "market", "providers")
    with pytest.raises(ConfigError, match="is a folder"):
        read_yaml_mapping(tmp_path, "market", "providers")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"expected a mapping of settings \(providers, ...\)"):
        read_yaml_mapping(tmp_path / "list.yaml", "market", "providers")
    (tmp_path / "latin.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        read_yaml(tmp_path / "latin.yaml")
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert read_yaml(tmp_path / "bom.yaml") == {"a": 1}


def test_jsonl_errors_are_line_numbered(tmp_path):
    good = '{"a": 1}\n\n{"a": 2}\n'
    assert [r for r in iter_jsonl(good.splitlines(), "x")] == [(1, {"a": 1}), (3, {"a": 2})]
    with pytest.raises(DataError) as exc:
        list(iter_jsonl(['{"a": 1}', '{"a": 2,}'], "f.jsonl"))
    assert _one_line(exc).startswith("f.jsonl:2: invalid JSON (")
    with pytest.raises(DataError, match=r"f.jsonl:1: expected a JSON object, got list; one object per line"):
        list(iter_jsonl(["[1]"], "f.jsonl"))
    with pytest.raises(DataError, match=r"f.jsonl:2: not UTF-8 text"):
        list(iter_jsonl([b'{"a": 1}\n', b'{"a": "\xff"}\n'], "f.jsonl"))
    assert list(iter_jsonl([b'\xef\xbb\xbf{"a": 1}\n'], "f")) == [(1, {"a": 1})]


def test_read_jsonl_plain_gzip_and_damaged(tmp_path):
    plain = tmp_path / "p.jsonl"
    plain.write_text('{"q": 1}\n{"q": 2}\n')
    packed = tmp_path / "p.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert list(read_jsonl(plain)) == list(read_jsonl(packed)) == [(1, {"q": 1}), (2, {"q": 2})]
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="bad.jsonl.gz: cannot read"):
        list(read_jsonl(tmp_path / "bad.jsonl.gz"))
    with pytest.raises(DataError, match="no such file; give X"):
        list(read_jsonl(tmp_path / "none.jsonl", missing="give X"))


def test_parse_json_names_the_line():
    with pytest.raises(DataError, match=r"t.json:3: invalid JSON"):
        parse_json('{\n"a": 1,\n}', "t.json")


def test_no_other_module_parses_yaml_files_itself():
    """yaml.safe_load lives in ttclab/io.py (the CLI's one-value overrides in online/runner.py excepted)."""
    users = sorted(p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if "yaml.safe_load(" in p.read_text())
    assert users == ["io.py", "online/runner.py"]
