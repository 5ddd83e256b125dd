"""``report.html``: the study report as one self-contained page (styles inline, pictures as base64
PNG data), readable offline and safe to open: every text from the study is escaped.

The page is ``report.html.j2``; it shows the findings first, then the summary tables by section,
the pictures by section (:data:`~orchestrator.report.pictures.PICTURES`) and the statistics method
(``method.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from .folder import write_if_changed
from .pictures import Picture

TEMPLATE = "report.html.j2"
METHOD = "method.md"


@dataclass
class ReportContent:
    """What the page shows, section by section (tables as DataFrames of text, pictures as PNG bytes)."""

    name: str
    #: the findings' sentences (:mod:`~orchestrator.report.findings`), shown first
    findings: list[str]
    plan: list[str]
    spec_yaml: str
    #: the summary's tables by section (accuracy, stability, cost)
    summary_tables: dict[str, pd.DataFrame]
    accuracy_note: str
    stability_note: str
    comparisons: list[tuple[str, bool]]  # (sentence, significant)
    comparison_notes: list[str]
    comparison_table: pd.DataFrame
    #: the paragraphs of method.md, shown under the comparisons
    method: list[str]
    agreement: str
    genotypes: pd.DataFrame
    failed: pd.DataFrame
    #: the pictures by section (see PICTURES)
    pictures: dict[str, list[Picture]] = field(default_factory=dict)
    arch_missing: list[str] = field(default_factory=list)
    run_info: list[str] = field(default_factory=list)
    #: time, slots and slot occupancy per stage (see tables.stage_time_table)
    stage_times: pd.DataFrame = field(default_factory=pd.DataFrame)
    stage_time_note: str = ""
    #: the folder of the picture files, next to the page (the linked pictures are there)
    figures_dir: str = "report_figures"


def _package_text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def method_paragraphs() -> list[str]:
    """The paragraphs of ``method.md``, as plain text: its title (a ``#`` line) left out, each
    paragraph's lines joined. The file is plain prose paragraphs, so it reads the same on the page."""
    text = "\n".join(line for line in _package_text(METHOD).splitlines() if not line.startswith("#"))
    return [" ".join(block.split()) for block in text.split("\n\n") if block.strip()]


def _table(frame: pd.DataFrame, css: str) -> str:
    """An escaped HTML table of a DataFrame of values (pandas escapes every cell)."""
    return frame.to_html(index=False, escape=True, na_rep="–", classes=css, border=0)


def render_report(content: ReportContent) -> str:
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)

    def table(frame: pd.DataFrame, css: str) -> Markup:
        return Markup(_table(frame, css))

    def picture(p: Picture) -> Markup:
        return Markup('<figure><img src="{}" alt="{}"><figcaption>{}</figcaption></figure>').format(
            Markup(p.data_uri), p.caption, p.caption
        )

    def pictures(section: str) -> list[Picture]:
        return [p for p in content.pictures.get(section, []) if p.in_page]

    def linked(section: str) -> list[Picture]:
        return [p for p in content.pictures.get(section, []) if not p.in_page]

    template = environment.from_string(_package_text(TEMPLATE))
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return template.render(c=content, table=table, picture=picture, pictures=pictures, linked=linked, written=written)


def write_report(path: Path, content: ReportContent) -> bool:
    """Write the page unless the one at ``path`` shows the same (then it keeps its time); whether it was written."""
    return write_if_changed(path, render_report(content))
