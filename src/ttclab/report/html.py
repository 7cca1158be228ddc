"""Self-contained HTML pages: sections of text, tables and figures (SVG inlined, PNG/SVG saved too).

One stylesheet (:data:`CSS`) for every page ttclab writes -- the main report, the per-question
drill-down and the market page -- so they look like one product. Tables come from
:class:`ttclab.tables.Table` (one number format per column) and are collapsed in ``<details>`` unless
asked otherwise.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ttclab import __version__
from ttclab.tables import Table

CSS = """
:root{--ink:#1d2330;--muted:#5b6475;--line:#e3e7ef;--soft:#f5f7fb;--accent:#1f5fa8}
*{box-sizing:border-box}
body{font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1120px;margin:0 auto;
  padding:1.5rem 1.2rem 4rem;color:var(--ink);background:#fff}
h1{font-size:1.75rem;margin:.2rem 0}h2{margin-top:2.4rem;border-bottom:2px solid var(--line);padding-bottom:.25rem}
h3{margin-top:1.6rem;font-size:1.05rem}
a{color:var(--accent)}.meta{color:var(--muted);font-size:.85rem}
nav{position:sticky;top:0;background:rgba(255,255,255,.96);padding:.45rem 0;border-bottom:1px solid var(--line);
  z-index:5;font-size:.9rem;display:flex;flex-wrap:wrap;gap:.3rem 1.1rem}
p.lead{font-size:1rem;color:#333}
.note{background:var(--soft);border-left:3px solid #9bb3dd;padding:.45rem .8rem;margin:.6rem 0;font-size:.9rem}
.warn{background:#fff7e8;border-left:3px solid #e0a030;padding:.45rem .8rem;margin:.6rem 0;font-size:.9rem}
ul.notes{font-size:.88rem;color:#333;padding-left:1.2rem}
.tablewrap{max-width:100%;overflow-x:auto;margin:.6rem 0}
table{border-collapse:collapse;font-size:.86rem;min-width:40%}
p.caption{color:var(--muted);font-size:.85rem;margin:.8rem 0 .1rem}
th,td{padding:.28rem .6rem;border-bottom:1px solid #e9ecf2;text-align:left;vertical-align:top}
td{overflow-wrap:break-word;max-width:24rem}td>div.w{min-width:14rem}td.n,td.s{white-space:nowrap}
th{background:var(--soft);font-weight:600;position:sticky;top:0}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:hover{background:#fafbfe}
details{margin:.6rem 0;border:1px solid var(--line);border-radius:6px;padding:.2rem .7rem}
details>summary{cursor:pointer;color:var(--accent);padding:.3rem 0;font-size:.92rem}
details[open]>summary{border-bottom:1px solid var(--line);margin-bottom:.3rem}
figure{margin:1rem 0}figcaption{color:var(--muted);font-size:.86rem;margin-top:.3rem;max-width:60rem}
.fig svg{max-width:100%;height:auto;display:block}
.fig img{max-width:100%;height:auto}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;font-size:.88rem}
dl.legend dt{font-weight:600}
"""


@dataclass
class Section:
    """One ``<h2>`` section: blocks of HTML appended in order."""

    title: str
    blocks: list[str] = field(default_factory=list)
    figure_dir: Path | None = None

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")

    def text(self, paragraph: str, note: bool = False, warn: bool = False) -> Section:
        cls = ' class="warn"' if warn else (' class="note"' if note else "")
        self.blocks.append(f"<p{cls}>{html.escape(paragraph)}</p>")
        return self

    def notes(self, items: list[str]) -> Section:
        if items:
            self.blocks.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in items) + "</ul>")
        return self

    def raw(self, fragment: str) -> Section:
        self.blocks.append(fragment)
        return self

    def table(self, table: Table, summary: str | None = None, caption: str = "", open_: bool = False) -> Section:
        """A table; with ``summary`` it is collapsed in a ``<details>`` (open when ``open_``)."""
        block = table.html(caption=caption, collapsed=summary)
        if summary is not None and open_:
            block = block.replace("<details>", "<details open>", 1)
        self.blocks.append(block)
        return self

    def figure(self, fig: Any, name: str, caption: str = "") -> Section:
        """Inline a matplotlib figure as SVG; also save ``name``.png and ``name``.svg in the figure folder."""
        self.blocks.append(figure_html(fig, name, caption, self.figure_dir))
        return self


def figure_html(fig: Any, name: str, caption: str = "", figure_dir: Path | None = None) -> str:
    """A ``<figure>`` with the figure inlined as SVG (and PNG + SVG files written to ``figure_dir``)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    if figure_dir is not None:
        figure_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(figure_dir / f"{name}.png", dpi=150, bbox_inches="tight")
        (figure_dir / f"{name}.svg").write_text(svg)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return svg_figure(svg, caption, name)


def svg_figure(svg: str, caption: str = "", name: str = "") -> str:
    """An SVG document as an inline, width-limited ``<figure>``."""
    svg = svg[svg.find("<svg"):]  # drop the XML prolog and doctype
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    ident = f' id="fig-{html.escape(name)}"' if name else ""
    return f'<figure class="fig"{ident}>{svg}{cap}</figure>'


class Report:
    """Build a page section by section, then ``write(path)`` one self-contained HTML file."""

    def __init__(self, title: str, figure_dir: str | Path | None = None, subtitle: str = "",
                 meta: list[str] | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self.meta = meta or []
        self.figure_dir = Path(figure_dir) if figure_dir is not None else None
        self.sections: list[Section] = []
        self.head: list[str] = []
        self.scripts: list[str] = []

    def section(self, title: str) -> Section:
        sec = Section(title, figure_dir=self.figure_dir)
        self.sections.append(sec)
        return sec

    def render(self) -> str:
        nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in self.sections)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        meta = " · ".join([f"ttclab {__version__}", stamp, *map(html.escape, self.meta)])
        body = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{"".join(s.blocks)}</section>'
                       for s in self.sections)
        sub = f'<p class="lead">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        scripts = "".join(f"<script>{s}</script>" for s in self.scripts)
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style>{''.join(self.head)}</head><body>"
            f"<header><h1>{html.escape(self.title)}</h1><div class='meta'>{meta}</div>{sub}</header>"
            f"<nav>{nav}</nav>{body}{scripts}</body></html>"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path


__all__ = ["CSS", "Report", "Section", "figure_html", "svg_figure"]
