"""A self-contained HTML report: sections of text, tables and figures (SVG inlined, PNG/SVG saved too)."""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ttclab import __version__

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #e3e7ef;padding-bottom:.2rem}
.meta{color:#667;font-size:.85rem}table{border-collapse:collapse;margin:.8rem 0;font-size:.88rem}
th,td{padding:.28rem .6rem;border-bottom:1px solid #e6e8ee;text-align:left}th{background:#f4f6fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1rem 0}figcaption{color:#556;font-size:.85rem}
.fig svg{max-width:100%;height:auto}.note{background:#f7f9fc;border-left:3px solid #9bb3dd;padding:.4rem .8rem}
nav a{margin-right:1rem}
"""


def _cell(value: Any, digits: int) -> tuple[str, bool]:
    if isinstance(value, bool) or value is None:
        return ("–" if value is None else str(value)), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a", True
        if value != 0 and (abs(value) < 10**-digits or abs(value) >= 1e7):
            return f"{value:.{digits}g}", True
        return f"{value:.{digits}f}", True
    return html.escape(str(value)), False


@dataclass
class Section:
    title: str
    blocks: list[str] = field(default_factory=list)
    figure_dir: Path | None = None

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")

    def text(self, paragraph: str, note: bool = False) -> "Section":
        cls = ' class="note"' if note else ""
        self.blocks.append(f"<p{cls}>{html.escape(paragraph)}</p>")
        return self

    def table(self, rows: list[list[Any]], headers: list[str], caption: str = "", digits: int = 4) -> "Section":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = []
        for row in rows:
            cells = []
            for v in row:
                text, numeric = _cell(v, digits)
                cells.append(f'<td class="n">{text}</td>' if numeric else f"<td>{text}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.blocks.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        return self

    def figure(self, fig: Any, name: str, caption: str = "") -> "Section":
        """Inline a matplotlib figure as SVG; also save ``name``.png and ``name``.svg in the figure folder."""
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight")
        svg = buf.getvalue()
        svg = svg[svg.find("<svg"):]  # drop the XML prolog and doctype
        if self.figure_dir is not None:
            self.figure_dir.mkdir(parents=True, exist_ok=True)
            fig.savefig(self.figure_dir / f"{name}.png", dpi=150, bbox_inches="tight")
            (self.figure_dir / f"{name}.svg").write_text(buf.getvalue())
        import matplotlib.pyplot as plt

        plt.close(fig)
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.blocks.append(f'<figure class="fig">{svg}{cap}</figure>')
        return self


class Report:
    """Build a report section by section, then ``write(path)`` one self-contained HTML file."""

    def __init__(self, title: str, figure_dir: str | Path | None = None, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.figure_dir = Path(figure_dir) if figure_dir is not None else None
        self.sections: list[Section] = []

    def section(self, title: str) -> Section:
        sec = Section(title, figure_dir=self.figure_dir)
        self.sections.append(sec)
        return sec

    def render(self) -> str:
        nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in self.sections)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        body = "".join(f'<h2 id="{s.anchor}">{html.escape(s.title)}</h2>' + "".join(s.blocks) for s in self.sections)
        sub = f"<p>{html.escape(self.subtitle)}</p>" if self.subtitle else ""
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
            f"<div class='meta'>ttclab {__version__} · {stamp}</div>{sub}<nav>{nav}</nav>{body}</body></html>"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path
