"""``report.html``: the study report as one self-contained page (styles inline, pictures as
base64 PNG data), readable offline and safe to open: every text from the study is escaped."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timezone

import jinja2
import pandas as pd
from markupsafe import Markup


@dataclass(frozen=True)
class Picture:
    """One PNG of the report: its file name (in the figures folder), caption and bytes."""

    name: str
    caption: str
    data: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.data).decode("ascii")


@dataclass
class ReportContent:
    """What the page shows, section by section (tables as DataFrames of text, pictures as PNG bytes)."""

    name: str
    plan: list[str]
    spec_yaml: str
    accuracy: pd.DataFrame
    accuracy_note: str
    comparisons: list[tuple[str, bool]]  # (sentence, significant)
    comparison_notes: list[str]
    comparison_table: pd.DataFrame
    agreement: str
    stability: pd.DataFrame
    stability_note: str
    cost: pd.DataFrame
    genotypes: pd.DataFrame
    failed: pd.DataFrame
    overview: list[Picture] = field(default_factory=list)
    agreement_pictures: list[Picture] = field(default_factory=list)
    cost_pictures: list[Picture] = field(default_factory=list)
    cell_pictures: list[Picture] = field(default_factory=list)
    arch_pictures: list[Picture] = field(default_factory=list)
    arch_missing: list[str] = field(default_factory=list)
    run_info: list[str] = field(default_factory=list)


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Study {{ c.name }}: report</title>
<style>
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0 auto; max-width: 1240px;
       padding: 1.2em 2em 4em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
p.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.88em; }
th, td { border: 1px solid #d5d5d5; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } tr:nth-child(even) td { background: #fafafa; }
td.genotype, table.genotypes td:last-child { font-family: monospace; font-size: 0.82em; word-break: break-all; max-width: 480px; }
.note { color: #555; font-size: 0.9em; }
ul.comparisons li { margin: 0.35em 0; } li.significant { font-weight: 600; }
figure { margin: 1em 0 1.6em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.88em; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.warning { background: #fff4e0; border-left: 4px solid #f0a020; padding: 0.4em 0.8em; }
</style>
</head>
<body>
<h1>Study {{ c.name }}</h1>
<p class="meta">Report written {{ written }}.{% for line in c.run_info %} {{ line }}{% endfor %}</p>

<h2 id="run">What was run</h2>
<ul>{% for line in c.plan %}<li>{{ line }}</li>{% endfor %}</ul>
<details><summary>The spec as run (<code>spec.yaml</code>)</summary><pre>{{ c.spec_yaml }}</pre></details>

<h2 id="accuracy">Accuracy per setting</h2>
<p class="note">{{ c.accuracy_note }}</p>
{{ table(c.accuracy, "accuracy") }}
{% for p in c.overview %}{{ picture(p) }}{% endfor %}

<h2 id="comparisons">Comparisons</h2>
{% for note in c.comparison_notes %}<p class="warning">{{ note }}</p>{% endfor %}
{% if c.comparisons %}<ul class="comparisons">{% for sentence, significant in c.comparisons %}
<li{% if significant %} class="significant"{% endif %}>{{ sentence }}</li>{% endfor %}
</ul>
<p class="note">Difference of means in accuracy points, with its 95% confidence interval and two-sided p-value:
Welch's t-test when both groups have two or more values; where one group is a single value x*, the single-case
t-test of Crawford and Howell, which takes x* as one more draw from the other group (n values, mean x̄, standard
deviation s): t = (x* − x̄) / (s·√((n+1)/n)) with n − 1 degrees of freedom, for the interval and p. Retrain
accuracy counts each retrained genotype once (the mean over its seeds); a genotype found by both settings of a
comparison is left out of both groups, so that they are independent. With fewer than 4 values per group the
numbers are a hint, not evidence. No correction for multiple comparisons: with many comparisons, some small p-values
are expected by chance.</p>
<details><summary>The comparisons as numbers</summary>{{ table(c.comparison_table, "comparison-numbers") }}</details>
{% else %}<p>No comparison could be made (a reference setting or the random baseline is missing, or has no values).</p>{% endif %}
<h3>Search-to-retrain agreement</h3>
<p>{{ c.agreement }}</p>
{% for p in c.agreement_pictures %}{{ picture(p) }}{% endfor %}

<h2 id="stability">Stability of the searches</h2>
<p class="note">{{ c.stability_note }}</p>
{{ table(c.stability, "stability") }}

<h2 id="cost">Cost</h2>
{{ table(c.cost, "cost") }}
{% for p in c.cost_pictures %}{{ picture(p) }}{% endfor %}

<h2 id="genotypes">Retrained genotypes</h2>
{{ table(c.genotypes, "genotypes") }}
{% for p in c.cell_pictures %}{{ picture(p) }}{% endfor %}

<h2 id="architecture">Architecture weights of each search</h2>
{% if c.arch_pictures %}<p class="note">Softmaxed α of every edge (one line per operation) and, with edge normalisation,
β of every node's incoming edges, after each epoch; the grey band marks the warm-up epochs, in which the
architecture was not trained.</p>{% endif %}
{% for line in c.arch_missing %}<p class="warning">{{ line }}</p>{% endfor %}
{% for p in c.arch_pictures %}{{ picture(p) }}{% endfor %}

{% if not c.failed.empty %}<h2 id="failed">Trials that did not finish</h2>
{{ table(c.failed, "failed") }}{% endif %}
</body>
</html>
"""


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

    template = environment.from_string(TEMPLATE)
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return template.render(c=content, table=table, picture=picture, written=written)
