"""The study report's pictures, as PNG bytes: matplotlib with the Agg backend (no display, no
system graphviz).

* :func:`cell_figure`: a genotype's normal and reduction cell (inputs, nodes, output; each edge
  labelled with its operation).
* :func:`arch_weights_figure`: one search's softmaxed α (per edge, one line per operation) and β
  (per node, one line per incoming edge) over its epochs, the warm-up epochs shaded.
* :func:`accuracy_figure`: per setting, the searches' validation accuracy and the retrained
  genotypes' test accuracy as boxes with every value as a point, the baselines (published, random) included.
* :func:`cost_figure`: activation (or peak) memory and time per epoch of the searches against K.
* :func:`agreement_figure`: search validation against retrain test accuracy of the retrained genotypes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch  # noqa: E402

from pcdarts_core import Genotype  # noqa: E402
from pcdarts_core.search_space import PRIMITIVES  # noqa: E402

from ..trial import RANDOM, is_baseline  # noqa: E402

DPI = 80
#: One colour per operation, the same in every picture.
OP_COLORS = dict(
    zip(PRIMITIVES, ("#9e9e9e", "#1f77b4", "#17becf", "#d62728", "#2ca02c", "#006400", "#9467bd", "#8c564b"))
)
CELL_NAMES = {"normal": "normal cell", "reduce": "reduction cell"}


def png(figure: Figure, tight: bool = True) -> bytes:
    """The figure as PNG bytes (``tight``: cropped to what is drawn, which costs a second drawing);
    the figure is closed."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight" if tight else None, facecolor="white")
    finally:
        plt.close(figure)
    return buffer.getvalue()


# --- cells -------------------------------------------------------------------------------


def _draw_cell(ax: Any, genotype: Genotype, cell: str) -> None:
    """An arc diagram: the states on one line in order (the two inputs, the nodes, the output),
    each edge an arc labelled at its top with its operation: edges from the cell's inputs below
    the line, edges between nodes above it, so no edge passes through a state."""
    steps = genotype.steps
    concat = getattr(genotype, f"{cell}_concat")
    output = steps + 2
    gap = 1.5
    places = {state: np.array([gap * state, 0.0]) for state in range(output + 1)}
    names = {0: "c[k-2]", 1: "c[k-1]", output: "c[k]", **{n + 2: str(n) for n in range(steps)}}
    colors = {0: "#cfe8cf", 1: "#cfe8cf", output: "#f6e3b4"}
    circles = {}
    for state, (x, y) in places.items():
        circle = Circle(
            (x, y), 0.38, facecolor=colors.get(state, "#d6e4f5"), edgecolor="#333333", linewidth=1.2, zorder=3
        )
        ax.add_patch(circle)
        ax.text(x, y, names[state], ha="center", va="center", fontsize=8, zorder=4, fontweight="bold")
        circles[state] = circle
    for state in concat:
        ax.add_patch(
            FancyArrowPatch(
                tuple(places[state]),
                tuple(places[output]),
                connectionstyle="arc3,rad=-0.12",
                arrowstyle="-|>",
                mutation_scale=9,
                color="#b8b8b8",
                linestyle="--",
                linewidth=0.9,
                patchA=circles[state],
                patchB=circles[output],
                zorder=1,
            )
        )
    lowest = highest = 0.0
    for node, pair in enumerate(genotype.nodes(cell)):
        twice = pair[0][1] == pair[1][1]
        for index, (op, source) in enumerate(pair):
            start, end = places[source], places[node + 2]
            below = source < 2 if not twice else index == 0
            rad = 0.5 if below else -0.5  # left to right: a positive rad bends the arc below the line
            color = OP_COLORS.get(op, "black")
            ax.add_patch(
                FancyArrowPatch(
                    tuple(start),
                    tuple(end),
                    connectionstyle=f"arc3,rad={rad}",
                    arrowstyle="-|>",
                    mutation_scale=11,
                    color=color,
                    linewidth=1.6,
                    patchA=circles[source],
                    patchB=circles[node + 2],
                    zorder=2,
                )
            )
            # the top of the arc: arc3 is a quadratic Bézier whose middle lies half the control offset away
            delta = end - start
            label = (start + end) / 2 + rad / 2 * np.array([delta[1], -delta[0]])
            lowest, highest = min(lowest, label[1]), max(highest, label[1])
            ax.text(
                label[0],
                label[1],
                op,
                ha="center",
                va="center",
                fontsize=7,
                color=color,
                zorder=5,
                bbox={"boxstyle": "round,pad=0.12", "facecolor": "white", "edgecolor": color, "linewidth": 0.6},
            )
    ax.set_xlim(-0.6, gap * output + 0.6)
    ax.set_ylim(lowest - 0.45, max(highest, 0.5) + 0.45)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(CELL_NAMES[cell], fontsize=10)


def cell_figure(genotype: Genotype, title: str) -> bytes:
    """Both cells of ``genotype`` side by side, with ``title`` above them."""
    figure, axes = plt.subplots(1, 2, figsize=(13.5, 3.9))
    for ax, cell in zip(axes, ("normal", "reduce")):
        _draw_cell(ax, genotype, cell)
    figure.suptitle(title, fontsize=11)
    figure.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.01, wspace=0.05)
    return png(figure)


# --- α and β over the epochs ---------------------------------------------------------------


def _warmup_span(ax: Any, frozen: Sequence[int]) -> None:
    if frozen:
        ax.axvspan(min(frozen) - 0.5, max(frozen) + 0.5, color="#e8e8e8", zorder=0, linewidth=0)


def arch_weights_figure(epochs: list[dict[str, Any]], primitives: Sequence[str], title: str) -> bytes:
    """One panel per edge (rows: nodes; columns: the node's inputs) for each cell, lines over the
    epochs per operation; with edge normalisation, one more panel per node with its β."""
    numbers = [e["epoch"] for e in epochs]
    frozen = [e["epoch"] for e in epochs if e.get("arch_frozen")]
    with_beta = epochs[-1].get("betas_normal") is not None
    edges = len(epochs[-1]["alphas_normal"])
    steps = int(round((-3 + math.sqrt(9 + 8 * edges)) / 2))  # edges = steps * (steps + 3) / 2
    per_cell = steps + 1 + (1 if with_beta else 0)
    # one y range for every panel, zoomed to the largest weight (α of a short search stays near uniform)
    largest = max(max(max(row) for row in e[f"alphas_{cell}"]) for e in epochs for cell in ("normal", "reduce"))
    if with_beta:
        largest = max(largest, max(max(e["betas_normal"]) for e in epochs), max(max(e["betas_reduce"]) for e in epochs))
    top = min(1.0, math.ceil(largest * 1.15 * 20) / 20)
    figure, axes = plt.subplots(
        steps, 2 * per_cell, figsize=(1.45 * 2 * per_cell + 1.8, 1.25 * steps + 0.9), squeeze=False
    )
    for c, cell in enumerate(("normal", "reduce")):
        alphas = np.array([e[f"alphas_{cell}"] for e in epochs])  # epochs x edges x ops
        betas = np.array([e[f"betas_{cell}"] for e in epochs]) if with_beta else None
        start = 0
        for node in range(steps):
            for source in range(per_cell):
                ax = axes[node, c * per_cell + source]
                if source < node + 2:
                    _warmup_span(ax, frozen)
                    for o, op in enumerate(primitives):
                        ax.plot(numbers, alphas[:, start + source, o], color=OP_COLORS.get(op, "black"), linewidth=1.3)
                    if node == max(0, source - 1):  # the first row where this input appears
                        name = ("c[k-2]", "c[k-1]")[source] if source < 2 else f"node {source - 2}"
                        ax.set_title(f"{cell} · from {name}", fontsize=7.5)
                    if source == 0 and c == 0:
                        ax.set_ylabel(f"node {node}", fontsize=8)
                elif with_beta and source == per_cell - 1:
                    _warmup_span(ax, frozen)
                    for j in range(node + 2):
                        ax.plot(
                            numbers,
                            betas[:, start + j],
                            linewidth=1.3,
                            color=plt.cm.viridis(j / max(1, node + 1)),
                            label=f"in {j}",
                        )
                    ax.set_title(f"{cell} · β node {node}", fontsize=7.5)
                    ax.legend(fontsize=5.5, loc="upper left", frameon=False, ncol=2, handlelength=1)
                else:
                    ax.axis("off")
                    continue
                # tick labels only on the outer panels: drawing them is most of the picture's cost
                ax.set_ylim(0, top)
                ax.set_xlim(numbers[0] - 0.5, numbers[-1] + 0.5)
                ax.set_yticks([0, round(top / 2, 2), top] if source == 0 and c == 0 else [])
                ax.set_xticks([numbers[0], numbers[-1]] if node == steps - 1 or source == node + 1 else [])
                ax.tick_params(labelsize=6.5, length=2, pad=1)
            start += node + 2
    handles = [plt.Line2D([], [], color=OP_COLORS.get(op, "black"), linewidth=2, label=op) for op in primitives]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#e8e8e8", label="warm-up (α frozen)"))
    figure.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    figure.suptitle(
        f"{title}: softmaxed α per edge" + (" and β per node" if with_beta else "") + " over the epochs (x: epoch)",
        fontsize=10,
    )
    figure.subplots_adjust(left=0.04, right=0.86, top=0.86, bottom=0.08, wspace=0.12, hspace=0.25)
    return png(figure, tight=False)


# --- accuracy, cost, agreement ----------------------------------------------------------------


def _strip(ax: Any, groups: list[tuple[str, list[float]]], seeds: dict[str, list[float]] | None = None) -> None:
    """Boxes (where a group has two values or more) with every value as a point."""
    rng = np.random.default_rng(0)
    positions = np.arange(len(groups))
    boxed = [(p, v) for p, (_, v) in zip(positions, groups) if len(v) > 1]
    if boxed:
        ax.boxplot(
            [v for _, v in boxed],
            positions=[p for p, _ in boxed],
            widths=0.5,
            showfliers=False,
            medianprops={"color": "#444444"},
            boxprops={"color": "#888888"},
            whiskerprops={"color": "#888888"},
            capprops={"color": "#888888"},
        )
    for position, (label, values) in zip(positions, groups):
        color = "#7f7f7f" if label == RANDOM else "#ff7f0e" if is_baseline(label) else "#1f77b4"
        if seeds and seeds.get(label):
            ax.scatter(
                position + 0.28 + rng.uniform(-0.04, 0.04, len(seeds[label])),
                seeds[label],
                s=12,
                facecolors="none",
                edgecolors="#999999",
                linewidths=0.8,
                zorder=3,
            )
        if values:
            ax.scatter(
                position + rng.uniform(-0.1, 0.1, len(values)), values, s=30, color=color, zorder=4, edgecolors="white"
            )
            ax.plot([position - 0.25, position + 0.25], [np.mean(values)] * 2, color="#d62728", linewidth=1.5, zorder=5)
    ax.set_xticks(positions)
    ax.set_xticklabels([label for label, _ in groups], rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.grid(axis="y", color="#eeeeee")


def accuracy_figure(
    search: list[tuple[str, list[float]]], retrain: list[tuple[str, list[float]]], retrain_seeds: dict[str, list[float]]
) -> bytes:
    """Left: each setting's searches' validation accuracy. Right: each setting's retrained genotypes'
    test accuracy (mean over seeds; the seeds' own values as hollow points), the baselines last."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(8.0, 1.3 * len(retrain) + 4), 4.2))
    percent = lambda groups: [(label, [100 * v for v in values]) for label, values in groups]  # noqa: E731
    _strip(left, percent(search))
    left.set_title("search: final validation accuracy (one point per search)", fontsize=9)
    left.set_ylabel("accuracy (%)")
    _strip(right, percent(retrain), {k: [100 * v for v in vals] for k, vals in retrain_seeds.items()})
    right.set_title(
        "retrain: test accuracy per genotype (mean over seeds;\nhollow: single seeds; red line: mean)", fontsize=9
    )
    return png(figure)


#: The memory columns a cost figure can show, with their axis labels.
MEMORY_AXES = {
    "activation_bytes_per_image": "saved activations per image (MiB)",
    "peak_memory_bytes": "peak memory (MiB)",
}


def cost_figure(searches: pd.DataFrame, memory_column: str = "activation_bytes_per_image") -> bytes:
    """Memory (``memory_column``, a key of :data:`MEMORY_AXES`, in MiB) and seconds per epoch of each
    finished search against K, one series per value of the other swept settings (e.g. edge_norm=on/off),
    the series' means joined."""
    figure, (memory, time) = plt.subplots(1, 2, figsize=(9, 3.6))
    rows = searches.copy()
    rows["rest"] = [" ".join(p for p in str(s).split() if not p.startswith("k=")) or "all" for s in rows["setting"]]
    rows["memory_mib"] = pd.to_numeric(rows[memory_column], errors="coerce") / 2**20
    rows["s_per_epoch"] = rows["time_s"].astype(float) / rows["epochs"].astype(float).where(rows["epochs"] > 0)
    ks = sorted(rows["k"].dropna().unique())
    where = {k: i for i, k in enumerate(ks)}
    series = list(dict.fromkeys(rows["rest"]))
    for number, rest in enumerate(series):
        own = rows[rows["rest"] == rest]
        shift = (number - (len(series) - 1) / 2) * 0.12
        color = plt.cm.tab10(number % 10)
        for ax, column in ((memory, "memory_mib"), (time, "s_per_epoch")):
            x = own["k"].map(where) + shift
            ax.scatter(x, own[column], s=22, color=color, alpha=0.7, label=rest)
            means = own.groupby("k")[column].mean()
            ax.plot([where[k] + shift for k in means.index], means.values, color=color, linewidth=1.2)
    for ax, label in ((memory, MEMORY_AXES[memory_column]), (time, "search time per epoch (s)")):
        ax.set_xticks(range(len(ks)))
        ax.set_xticklabels([f"K={int(k) if float(k).is_integer() else k}" for k in ks])
        ax.set_ylabel(label)
        ax.grid(axis="y", color="#eeeeee")
    handles, labels = memory.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    memory.legend(unique.values(), unique.keys(), fontsize=8, frameon=False)
    figure.suptitle("search cost per K (one point per search, lines join the means)", fontsize=10)
    figure.tight_layout()
    return png(figure)


def agreement_figure(genotypes: pd.DataFrame, tau_text: str) -> bytes:
    """Search validation accuracy (x) against retrain test accuracy (y) of each retrained searched genotype."""
    figure, ax = plt.subplots(figsize=(5.2, 4.0))
    x, y = 100 * genotypes["search_valid_acc"].astype(float), 100 * genotypes["retrain_test_acc_mean"].astype(float)
    ax.scatter(x, y, s=36, color="#1f77b4", zorder=3)
    for gid, a, b in zip(genotypes["genotype_id"], x, y):
        ax.annotate(gid, (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("search: final validation accuracy (%)")
    ax.set_ylabel("retrain: test accuracy, mean over seeds (%)")
    ax.set_title(tau_text, fontsize=9)
    ax.grid(color="#eeeeee")
    figure.tight_layout()
    return png(figure)
