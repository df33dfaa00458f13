"""The evaluation report: score table of every planner variant, training curves, best/worst scenes
drawn from above. Written as Markdown and HTML with PNGs beside them."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from drivefine_core.metrics.cache import MetricCache
from drivefine_core.reports.scene_plot import draw_curves, draw_scene
from drivefine_core.storage.local import write_file_atomic


@dataclass
class SceneView:
    cache: MetricCache
    trajectories: dict[str, np.ndarray]  # name -> (8, 3) ego frame
    caption: str


def _markdown_table(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, row in table.iterrows():
        cells = [f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out_dir: str | Path, table: pd.DataFrame, curves: dict[str, list[tuple[int, float]]],
                 scenes: list[SceneView], title: str = "drivefine evaluation", notes: list[str] | None = None,
                 more_tables: list[tuple[str, pd.DataFrame]] | None = None) -> Path:
    """Write report.md / report.html (+ PNGs) into out_dir atomically enough for a stage output:
    files are written under temp names and renamed. Returns the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, str]] = []
    if curves:
        images.append((draw_curves(curves, out / "training_curves.png").name, "training curves"))
    for i, view in enumerate(scenes):
        png = draw_scene(view.cache, view.trajectories, out / f"scene_{i:02d}.png", title=view.caption)
        images.append((png.name, view.caption))

    md = [f"# {title}", "", "## Scores (split means; v1 = PDMS, v2 = EPDMS)", "", _markdown_table(table), ""]
    for caption, extra in more_tables or []:
        md += [f"## {caption}", "", _markdown_table(extra), ""]
    md += [f"- {n}" for n in notes or []]
    md += ["", "## Pictures", ""]
    md += [f"### {cap}\n\n![{cap}]({name})\n" for name, cap in images]

    tables = "".join(f"<h2>{html.escape(cap)}</h2>{_html_table(t)}" for cap, t in more_tables or [])
    page = (f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif} td,th{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right}"
            f"</style></head><body><h1>{html.escape(title)}</h1>{_html_table(table)}{tables}"
            + "".join(f"<p>{html.escape(n)}</p>" for n in notes or [])
            + "".join(f"<h3>{html.escape(c)}</h3><img src='{n}'>" for n, c in images) + "</body></html>")
    for name, text in (("report.md", "\n".join(md)), ("report.html", page)):
        write_file_atomic(out / name, text.encode())
    return out / "report.md"


def _html_table(table: pd.DataFrame) -> str:
    rows = "".join("<tr><th>" + html.escape(str(n)) + "</th>" + "".join(
        f"<td>{v:.3f}</td>" if isinstance(v, (float, np.floating)) else f"<td>{html.escape(str(v))}</td>" for v in r)
        + "</tr>" for n, r in table.iterrows())
    head = "<tr><th>variant</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in table.columns) + "</tr>"
    return f"<table>{head}{rows}</table>"
