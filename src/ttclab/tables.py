"""Tables and number formatting: one module for the terminal, CSV/JSON output and the HTML report.

A :class:`Table` holds raw values (numbers stay numbers). Rendering formats each *column* once, so
a column never mixes fixed and scientific notation and shows the same number of significant
digits in every row:

* integers (and floats that are all whole numbers, such as budgets): as they are (``1,234`` in HTML);
* floats: a column within [-1, 1] (accuracies, shares, their differences) with ``digits``
  decimals; otherwise fixed-point with enough decimals for ``digits`` significant digits of the
  column's smallest non-zero magnitude (at most 6 decimals), or scientific notation for the whole
  column when its magnitudes span beyond that (below 1e-3 or at/above 1e7);
* a column with ``floor`` shows values in (0, floor) as ``< floor`` (market shares: ``< 0.0001``, not a
  ``0.0000`` that reads as exactly zero);
* missing values (None, NaN) as ``-`` in text and ``–`` in HTML (never the word "nan").

``Table.render(fmt)`` gives ``table`` (aligned text), ``csv`` or ``json`` (raw values, NaN as null):
every CLI verb that prints a table accepts ``--format table|csv|json`` and calls it.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS: tuple[str, ...] = ("table", "csv", "json")
MISSING_TEXT = "-"
MISSING_HTML = "–"
#: HTML cells of at most this many characters do not wrap (a difficulty label, "medium (pass rate 0.44–0.50)", fits).
SHORT_CELL = 28


def is_number(value: Any) -> bool:
    """A real number (bools and None excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) or _is_numpy_number(value)


def _is_numpy_number(value: Any) -> bool:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return False
    return isinstance(value, (np.integer, np.floating))


def _is_integer(value: Any) -> bool:
    if isinstance(value, int):
        return True
    return _is_numpy_number(value) and "int" in type(value).__name__


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        _is_numpy_number(value) and math.isnan(float(value)))


def plain(value: Any) -> Any:
    """A JSON/CSV-safe Python value: numpy scalars unwrapped, NaN/inf as None."""
    if _is_numpy_number(value):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class NumberFormat:
    """How one column's floats are written (chosen once per column by :func:`column_format`)."""

    style: str = "fixed"  # fixed | sci | int
    decimals: int = 3
    floor: float | None = None
    thousands: bool = False

    def __call__(self, value: Any, missing: str = MISSING_TEXT) -> str:
        if _missing(value):
            return missing
        v = float(value)
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if self.floor is not None and 0 < abs(v) < self.floor:
            if self.style == "fixed" and self.floor >= 10 ** -self.decimals:  # "< 0.0001" beside 0.0417
                return f"< {self.floor:.{self.decimals}f}"
            return f"< {self.floor:.0e}".replace("e-0", "e-")
        if self.style == "int":
            return f"{int(round(v)):,}" if self.thousands else str(int(round(v)))
        if self.style == "fixed" and abs(v) < 0.5 * 10 ** -self.decimals:
            v = 0.0  # no "-0.000"
        if self.style == "sci":
            return f"{v:.{self.decimals}e}"
        return f"{v:,.{self.decimals}f}" if self.thousands else f"{v:.{self.decimals}f}"


def column_format(values: Sequence[Any], digits: int = 3, *, floor: float | None = None,
                  thousands: bool = False) -> NumberFormat:
    """One format for a whole numeric column (see the module docstring)."""
    nums = [float(v) for v in values if is_number(v) and not _missing(v) and math.isfinite(float(v))]
    if floor is not None:
        nums = [v for v in nums if not 0 < abs(v) < floor]
    present = [v for v in values if is_number(v) and not _missing(v)]
    if present and all(_is_integer(v) for v in present):
        return NumberFormat("int", 0, floor, thousands)
    if nums and all(v.is_integer() for v in nums) and max(abs(v) for v in nums) >= 2 and max(abs(v) for v in nums) < 1e15:
        return NumberFormat("int", 0, floor, thousands)  # whole numbers stored as floats (budgets, β)
    scale = max((abs(v) for v in nums), default=0.0)
    nonzero = [abs(v) for v in nums if abs(v) > 1e-12 * scale]  # rounding noise (3e-16) is zero
    if not nonzero:
        return NumberFormat("fixed", min(digits, 3), floor, thousands)
    lo, hi = min(nonzero), max(nonzero)
    if lo < 1e-3 or hi >= 1e7:
        return NumberFormat("sci", max(digits - 1, 0), floor, thousands)
    if hi <= 1.0:  # probabilities and their differences: the same decimals in every row
        return NumberFormat("fixed", digits, floor, thousands)
    decimals = max(0, digits - 1 - math.floor(math.log10(lo)))
    return NumberFormat("fixed", min(decimals, 6), floor, thousands)


def fmt(value: Any, digits: int = 3) -> str:
    """One value on its own (inline text): the column rules applied to a column of one."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_number(value) or _missing(value):
        return column_format([value], digits)(value)
    return str(value)


@dataclass
class Table:
    """Rows of raw values under headers; formats per column when rendered.

    ``digits`` is the significant digits of float columns (per-column overrides in
    ``column_digits``, fixed decimals in ``decimals``); ``floors`` maps a header to its ``< floor``
    threshold. ``notes`` are printed
    under the text table (and kept out of CSV/JSON).
    """

    headers: list[str]
    rows: list[list[Any]]
    title: str = ""
    digits: int = 3
    column_digits: Mapping[str, int] = field(default_factory=dict)
    floors: Mapping[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    decimals: Mapping[str, int] = field(default_factory=dict)  # fixed decimals for these headers (e.g. percentages)

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                     headers: Sequence[str] | None = None, **options: Any) -> Table:
        """From dicts: ``columns`` picks and orders keys, ``headers`` renames them."""
        cols = list(columns) if columns is not None else (list(records[0]) if records else [])
        heads = list(headers) if headers is not None else cols
        return cls(heads, [[r.get(c) for c in cols] for r in records], **options)

    # -- cells --------------------------------------------------------------------------------
    def _numeric(self, i: int) -> bool:
        vals = [r[i] for r in self.rows if not _missing(r[i])]
        return bool(vals) and all(is_number(v) for v in vals)

    def formatted(self, *, missing: str = MISSING_TEXT, thousands: bool = False) -> list[list[str]]:
        """Every cell as text, each numeric column with one :class:`NumberFormat`."""
        out = [[""] * len(self.headers) for _ in self.rows]
        for i, h in enumerate(self.headers):
            col = [r[i] for r in self.rows]
            if self._numeric(i) and h in self.decimals:
                f = NumberFormat("fixed", self.decimals[h], self.floors.get(h), thousands)
                cells = [f(v, missing) for v in col]
            elif self._numeric(i):
                f = column_format(col, self.column_digits.get(h, self.digits), floor=self.floors.get(h),
                                  thousands=thousands)
                cells = [f(v, missing) for v in col]
            else:
                cells = [missing if _missing(v) else fmt(v) for v in col]
            for r, c in zip(out, cells):
                r[i] = c
        return out

    # -- renderers ----------------------------------------------------------------------------
    def text(self) -> str:
        cells = self.formatted(thousands=True)
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(self.headers)]
        numeric = [self._numeric(i) for i in range(len(self.headers))]

        def line(values: Sequence[str]) -> str:
            return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

        lines = ([self.title] if self.title else []) + [line(self.headers), line(["-" * w for w in widths])]
        lines += [line(r) for r in cells]
        return "\n".join(lines + [f"  {n}" for n in self.notes])

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.headers)
        for r in self.rows:
            writer.writerow(["" if _missing(v) else plain(v) for v in r])
        return buf.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [{h: plain(v) for h, v in zip(self.headers, r)} for r in self.rows]

    def json(self) -> str:
        return json.dumps(self.records(), indent=1, default=str)

    def html(self, *, caption: str = "", collapsed: str | None = None, first: int = 0) -> str:
        """An HTML table (numbers right-aligned, thousands separators); ``collapsed`` wraps it in a
        ``<details>`` whose summary is that text (closed by default)."""
        cells = self.formatted(missing=MISSING_HTML, thousands=True)
        numeric = [self._numeric(i) for i in range(len(self.headers))]
        head = "".join(('<th class="n">' if n else "<th>") + f"{html.escape(h)}</th>" for h, n in zip(self.headers, numeric))
        def td(text: str, num: bool) -> str:
            cls = "n" if num else ("s" if len(text) <= SHORT_CELL else "")  # short text stays on one line
            if cls:
                return f'<td class="{cls}">{html.escape(text)}</td>'
            return f'<td><div class="w">{html.escape(text)}</div></td>'  # long text wraps, but not into a sliver

        body = "".join("<tr>" + "".join(td(c, n) for c, n in zip(row, numeric)) + "</tr>" for row in cells)
        cap = f'<p class="caption">{html.escape(caption)}</p>' if caption else ""
        table = (f'{cap}<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
                 "</table></div>")
        if collapsed is None:
            return table
        return f"<details><summary>{html.escape(collapsed)}</summary>{table}</details>"

    def render(self, fmt: str = "table") -> str:
        """``table`` | ``csv`` | ``json``."""
        if fmt == "table":
            return self.text()
        if fmt == "csv":
            return self.csv().rstrip("\n")
        if fmt == "json":
            return self.json()
        from ttclab.errors import ConfigError

        raise ConfigError(f"--format: unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], digits: int = 3) -> str:
    """Aligned text of rows under headers (shorthand for ``Table(...).text()``)."""
    return Table(list(headers), [list(r) for r in rows], digits=digits).text()


def write_csv(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Records (dicts with the same keys) as a CSV file; NaN/None as empty cells."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not records:
        path.write_text("")
        return path
    path.write_text(Table.from_records(records).csv())
    return path


__all__ = ["FORMATS", "NumberFormat", "Table", "column_format", "fmt", "format_table", "is_number", "plain",
           "write_csv"]
