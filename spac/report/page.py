"""The page of `spac report`: PNG plots (matplotlib, Agg backend) and one self-contained HTML file.

The page links only files of its own assets folder (``<page stem>_files/``: the plots and the contact-sheet
thumbnails, which are the corpus JPEGs as stored), by relative path, so the pair can be moved or served
anywhere. No script or style is fetched from the network. A small inline script marks an image that failed
to load (class ``broken``) and counts them in ``<body data-broken-images>``.
"""

from __future__ import annotations

import functools
import html
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from shards.sample import GROUPS  # noqa: E402

TOP_VALUES = 12
_DPI = 96


_Plot = TypeVar("_Plot", bound=Callable[..., str])


def _literal_text(plot: _Plot) -> _Plot:
    """Draw every text of ``plot`` as it is: labels are data (an imported attribute value may read
    ``$\\undefinedmacro{x}$ shirt``), and mathtext would parse a pair of ``$`` in them, failing the page."""

    @functools.wraps(plot)
    def drawn(*args: Any, **kwargs: Any) -> str:
        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return plot(*args, **kwargs)

    return drawn  # type: ignore[return-value]


def _save(figure: Figure, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=_DPI, metadata={"Software": None})
    return path.name


def _barh(axes: Any, counter: Counter, title: str, top: int = TOP_VALUES) -> None:
    items = counter.most_common()
    if len(items) > top:
        items = items[: top - 1] + [(f"({len(items) - top + 1} others)", sum(n for _, n in items[top - 1 :]))]
    labels = [str(k) for k, _ in items][::-1]
    values = [n for _, n in items][::-1]
    axes.barh(range(len(values)), values, color="#4c72b0")
    axes.set_yticks(range(len(values)), labels, fontsize=8)
    axes.set_title(title, fontsize=10)
    axes.tick_params(axis="x", labelsize=8)


@_literal_text
def plot_attributes(attributes: Mapping[str, Counter], path: Path) -> str:
    figure = Figure(figsize=(13, 8))
    for position, group in enumerate(GROUPS):
        axes = figure.add_subplot(2, 3, position + 1)
        _barh(axes, attributes.get(group, Counter()), f"{group} ({len(attributes.get(group, {}))} values)")
    return _save(figure, path)


@_literal_text
def plot_counts(
    counter: Mapping[int, int],
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    by: Mapping[str, Counter] | None = None,
) -> str:
    """Bars of an integer distribution (stacked per ``by`` series when given)."""
    figure = Figure(figsize=(6.4, 3.6))
    axes = figure.add_subplot(1, 1, 1)
    if by:
        bottom: Counter = Counter()
        xs = sorted({x for series in by.values() for x in series})
        for name, series in sorted(by.items()):
            heights = [series.get(x, 0) for x in xs]
            axes.bar(xs, heights, bottom=[bottom[x] for x in xs], label=name, width=0.9)
            bottom.update(dict(zip(xs, heights)))
        axes.legend(fontsize=7)
    else:
        xs = sorted(counter)
        axes.bar(xs, [counter[x] for x in xs], color="#4c72b0", width=0.9)
    xs = sorted({x for series in (by or {"": counter}).values() for x in series})
    if xs and len(xs) <= 20:
        axes.set_xticks(xs)
        axes.set_xlim(xs[0] - 1, xs[-1] + 1)
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel(ylabel, fontsize=9)
    return _save(figure, path)


@_literal_text
def plot_shares(shares: Mapping[str, float], path: Path, title: str) -> str:
    figure = Figure(figsize=(6.4, 3.6))
    axes = figure.add_subplot(1, 1, 1)
    names = list(shares)[::-1]
    axes.barh(range(len(names)), [100 * shares[n] for n in names], color="#55a868")
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set_xlabel("% of texts", fontsize=9)
    axes.set_title(title, fontsize=10)
    return _save(figure, path)


@_literal_text
def plot_histogram(values: Sequence[float], path: Path, title: str, xlabel: str) -> str:
    figure = Figure(figsize=(6.4, 3.6))
    axes = figure.add_subplot(1, 1, 1)
    axes.hist(list(values), bins=20, range=(0.0, 1.0), color="#c44e52")
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel("images", fontsize=9)
    return _save(figure, path)


@_literal_text
def plot_accuracy(per_group: Mapping[str, Mapping[str, Any]], path: Path) -> str:
    figure = Figure(figsize=(6.4, 3.6))
    axes = figure.add_subplot(1, 1, 1)
    xs = range(len(GROUPS))
    axes.bar(
        [x - 0.2 for x in xs],
        [100 * (per_group[g]["accuracy"] or 0) for g in GROUPS],
        width=0.4,
        label="all labelled images",
    )
    axes.bar(
        [x + 0.2 for x in xs],
        [100 * (per_group[g]["accuracy_known"] or 0) for g in GROUPS],
        width=0.4,
        label="label not unknown",
    )
    axes.set_xticks(list(xs), GROUPS, fontsize=8)
    axes.set_ylim(0, 100)
    axes.set_ylabel("% equal to the label", fontsize=9)
    axes.set_title("corpus attributes against the labels", fontsize=10)
    axes.legend(fontsize=7)
    return _save(figure, path)


# ---- HTML ------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#666;font-size:13px} .plots{display:flex;flex-wrap:wrap;gap:8px}
.plots img{max-width:calc(50% - 8px);border:1px solid #eee} .plots img.wide{max-width:100%}
.sheet{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;display:flex;gap:8px;font-size:12px;background:#fafafa}
.card img{width:64px;height:128px;flex:none;border:1px solid #ccc}
.card table{font-size:11px;margin:2px 0} .card td{padding:1px 4px}
.style{display:inline-block;background:#e3ecf7;border-radius:3px;padding:0 4px;margin-right:4px;font-size:10px}
.key{font-family:monospace;font-size:11px;color:#555} .conf{color:#777} .problem{color:#b00}
img.broken{outline:3px solid red}
"""
_SCRIPT = """
window.addEventListener("load", function () {
  var broken = Array.prototype.filter.call(document.images, function (i) {
    return !i.complete || i.naturalWidth === 0;
  });
  broken.forEach(function (i) { i.classList.add("broken"); });
  document.body.setAttribute("data-broken-images", String(broken.length));
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return esc(value)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for cell in row:
            numeric = isinstance(cell, (int, float)) or cell is None
            cells.append(f'<td class="n">{number(cell)}</td>' if numeric else f"<td>{esc(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def flat_settings(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``job.json`` as (dotted name, JSON value) rows."""
    rows = []
    for name in sorted(settings):
        value = settings[name]
        if isinstance(value, dict) and value:
            rows += flat_settings(value, f"{prefix}{name}.")
        else:
            rows.append((prefix + name, json.dumps(value, ensure_ascii=False)))
    return rows


def image(assets: str, name: str, alt: str, wide: bool = False) -> str:
    css = ' class="wide"' if wide else ""
    return f'<img src="{esc(assets)}/{esc(name)}" alt="{esc(alt)}"{css}>'


def sheet_card(sample: Any, assets: str, thumbnail: str) -> str:
    record = sample.record
    rows = []
    for group in GROUPS:
        entry = record["attributes"][group]
        confidence = entry.get("confidence")
        conf = (
            f'<span class="conf">{confidence:.2f}</span>' if confidence is not None else '<span class="conf">—</span>'
        )
        flag = " *" if entry.get("in_schema") is False else ""
        rows.append(f"<tr><td>{esc(group)}</td><td>{esc(entry['value'])}{flag}</td><td>{conf}</td></tr>")
    texts = [(c, s) for c, s in zip(record["captions"], record["styles"])]
    texts += [(c, "template") for c in record["prompt_caption"]]
    captions = "".join(f'<li><span class="style">{esc(style)}</span>{esc(text)}</li>' for text, style in texts)
    return (
        f'<div class="card">{image(assets, thumbnail, sample.key)}<div>'
        f'<div class="key">{esc(sample.key)} · id {esc(record["id"])} · {esc(record["file_path"])}</div>'
        f'<table>{"".join(rows)}</table><ol style="margin:2px 0;padding-left:16px">{captions}</ol></div></div>'
    )


@dataclass
class Page:
    title: str
    sections: list[tuple[str, str]] = field(default_factory=list)  # (heading, html)

    def add(self, heading: str, body: str) -> None:
        self.sections.append((heading, body))

    def render(self, subtitle: str) -> str:
        toc = " · ".join(f'<a href="#s{i}">{esc(h)}</a>' for i, (h, _) in enumerate(self.sections))
        body = "".join(f'<h2 id="s{i}">{esc(h)}</h2>{b}' for i, (h, b) in enumerate(self.sections))
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{esc(self.title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script></head>"
            f'<body><h1>{esc(self.title)}</h1><p class="note">{subtitle}</p><p>{toc}</p>{body}</body></html>\n'
        )
