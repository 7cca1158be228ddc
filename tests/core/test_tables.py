"""Number formatting per column (terminal, CSV/JSON, HTML): one notation per column, floors, missing values."""

from __future__ import annotations

import json
import math

from ttclab.tables import SHORT_CELL, Table, column_format


def test_a_floor_reads_as_below_it_in_the_column_notation():
    t = Table(["share"], [[0.0417], [3e-7], [0.0], [None]], decimals={"share": 4}, floors={"share": 1e-4})
    assert [r[0] for r in t.formatted()] == ["0.0417", "< 0.0001", "0.0000", "-"]
    sci = column_format([2e-8, 5e-4, 3.0], 3, floor=1e-6)  # a column that needs scientific notation keeps it
    assert sci(2e-8) == "< 1e-6" and sci(5e-4) == "5.00e-04"
    assert column_format([2e-8, 5e-3], 3, floor=1e-6)(5e-3) == "0.005"  # values below the floor set no scale


def test_one_notation_per_column_and_raw_values_in_json():
    t = Table(["acc", "tokens", "tiny"], [[0.5, 1200.0, 1e-5], [0.25, 80.0, 2e-3], [math.nan, None, 3e-4]])
    rows = t.formatted()
    assert [r[0] for r in rows] == ["0.500", "0.250", "-"]  # accuracies: the same decimals in every row
    assert [r[1] for r in rows] == ["1200", "80", "-"]  # whole numbers stored as floats
    assert all("e" in r[2] for r in rows)  # spans beyond fixed point: scientific for the whole column
    records = json.loads(t.render("json"))
    assert records[0] == {"acc": 0.5, "tokens": 1200.0, "tiny": 1e-05} and records[2]["acc"] is None


def test_short_html_cells_do_not_wrap_and_long_ones_wrap_in_a_column():
    label = "medium (pass rate 0.44–0.50)"
    assert len(label) <= SHORT_CELL
    html = Table(["difficulty", "within error"], [[label, "a, " * 20 + "b"]]).html()
    assert f'<td class="s">{label}</td>' in html
    assert '<td><div class="w">a, a,' in html


def test_text_tables_group_thousands_like_titles_and_html_but_csv_and_json_stay_raw():
    t = Table(["β", "tokens", "acc"], [[200.0, 1234567, 0.5], [100000.0, 98, 0.25]])
    text = t.text()
    assert "100,000" in text and "1,234,567" in text and "0.500" in text
    assert t.csv().splitlines()[1:] == ["200.0,1234567,0.5", "100000.0,98,0.25"]
    assert t.records()[1]["β"] == 100000.0
