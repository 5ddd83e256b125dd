"""The report's findings: a few plain sentences at the top of ``summary.md`` and ``report.html``,
each derived from the tables the report already has (``summary.csv``, ``comparisons.csv``, the
search-to-retrain agreement), with its numbers and caveats. Nothing here computes a new statistic:
significance is the comparisons' own (comparisons.csv's ``significant``, Holm-adjusted), and so is
the number of seeds a confirmation would take (its ``n_for_80pct_power``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from ..trial import RANDOM, is_baseline, published_name
from .comparisons import PAIRED_TEST
from .screening import ScreenSummary, screen_sentence
from .statistics import CONFIDENCE, FEW, NAN, POWER, Agreement
from .text import p_text, percent

#: A final normalised α entropy at or above this: α barely moved, the search did not decide.
FLAT_ENTROPY = 0.95
#: This many skip connections per normal cell or more: DARTS's known collapse.
MANY_SKIPS = 3.0
RETRAIN = "retrain_test_acc"
#: The summary columns a finding needs from the reference, in words.
NEEDS = {"search_time_s_mean": "search time", f"{RETRAIN}_mean": "retrained genotype"}


@dataclass(frozen=True)
class FindingsInput:
    """What the findings are computed from: the report's tables and the study's reference."""

    #: summary.csv (one row per setting, then the baselines: ``published:NAME`` rows, ``random``)
    summary: pd.DataFrame
    #: comparisons.csv
    comparisons: pd.DataFrame
    agreement: Agreement
    #: the reference setting (None: none, for ``reference_note``'s reason) and how the sentences name it
    reference: str | None
    reference_label: str = ""
    reference_note: str = ""
    #: the planned search epochs of each setting
    search_epochs: Mapping[str, int] = field(default_factory=dict)
    #: the screen stage's summary (``select.by: screen``), else None
    screen: ScreenSummary | None = None


def findings(data: FindingsInput) -> list[str]:
    """The findings, one sentence (or two) per item: cost, best setting, agreement, stability."""
    rows = {str(row["setting"]): row for row in data.summary.to_dict("records")}
    return [
        _cost(data, rows),
        _best(data, rows),
        _agreement(data.agreement),
        *([screen_sentence(data.screen)] if data.screen is not None else []),
        *_stability(rows),
    ]


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and value == value


def _count(value: object) -> int:
    return int(value) if _finite(value) else 0


def _many(n: int, word: str) -> str:
    """``1 search``, ``3 searches``, ``2 genotypes``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("h") else f"{n} {word}s"


def _searched(rows: Mapping[str, dict]) -> list[str]:
    return [setting for setting in rows if not is_baseline(setting)]


def _missing_reference(data: FindingsInput, rows: Mapping[str, dict], need: str) -> str | None:
    """Why the reference cannot anchor a comparison of ``need`` (a summary column), or None when it can."""
    if data.reference is None:
        return f"there is no reference setting ({data.reference_note or 'none in the grid'})"
    row = rows.get(data.reference)
    if row is None or not _count(row.get("search_valid_acc_n")):
        return f"the reference {data.reference_label} is missing: none of its searches finished"
    if not _finite(row.get(need)):
        return f"the reference {data.reference_label} is missing: it has no {NEEDS.get(need, need)}"
    return None


def _label(data: FindingsInput) -> str:
    return data.reference_label or str(data.reference)


# --- cost -------------------------------------------------------------------------------------


def _memory_measure(row: dict) -> str:
    if _finite(row.get("search_gpu_hours")) and row["search_gpu_hours"] > 0:
        return "the CUDA peak of allocated memory"
    return "the peak resident size of the search's whole Python process on the CPU"


def _ratios(rows: Mapping[str, dict], settings: list[str], column: str, base: float) -> str:
    shown = [s for s in settings if _finite(rows[s].get(column))]
    return "; ".join(f"{s} {rows[s][column] / base:.2f}×" for s in shown) or "no other value"


def _activations(data: FindingsInput, rows: Mapping[str, dict], others: list[str]) -> str:
    """Saved-activation memory per image relative to the reference: the memory PC-DARTS saves."""
    base = rows[data.reference].get("activation_mib_per_image")
    if not (_finite(base) and base > 0):
        return ""
    return (
        f" Activation memory per image (what autograd saves for backward in the supernet, the same on every "
        f"device) relative to {_label(data)}, {base:.2f} MiB: "
        + _ratios(rows, others, "activation_mib_per_image", base)
        + "."
    )


def _peak_memory(data: FindingsInput, rows: Mapping[str, dict], others: list[str]) -> str:
    """Peak memory relative to the reference; on a CPU only when there is no activation memory to give."""
    ref = rows[data.reference]
    memory = ref.get("peak_memory_mib")
    on_gpu = _finite(ref.get("search_gpu_hours")) and ref["search_gpu_hours"] > 0
    has_activations = _finite(ref.get("activation_mib_per_image"))
    if not (_finite(memory) and memory > 0) or (has_activations and not on_gpu):
        return ""
    text = (
        f" Peak memory relative to {_label(data)}, {memory:.0f} MiB at most over its searches: "
        + _ratios(rows, others, "peak_memory_mib", memory)
        + f". This is {_memory_measure(ref)}"
    )
    return text + ("." if has_activations else ", not the activation memory per image that PC-DARTS saves.")


def _cost(data: FindingsInput, rows: Mapping[str, dict]) -> str:
    """Search time per epoch and activation (or peak) memory of each setting relative to the reference."""
    why = _missing_reference(data, rows, "search_time_s_mean")
    if why:
        return f"Cost: no relative search time or memory, since {why}."
    ref = rows[data.reference]
    others = [s for s in _searched(rows) if s != data.reference and _finite(rows[s].get("search_time_s_mean"))]

    def per_epoch(setting: str) -> float:
        return rows[setting]["search_time_s_mean"] / max(data.search_epochs.get(setting, 1), 1)

    base = per_epoch(data.reference)
    unit = "s per epoch" if data.search_epochs else "s per search"
    n = _count(ref.get("search_valid_acc_n"))
    text = (
        f"Search time per epoch relative to {_label(data)}, which took {base:.2f} {unit} (mean of {_many(n, 'search')})"
    )
    text += ": " + ("; ".join(f"{s} {per_epoch(s) / base:.2f}×" for s in others) or "no other setting has a time")
    text += " (ratios of means, without an interval; the wall time of each search over its epochs, warm-up included)."
    text += _activations(data, rows, others) + _peak_memory(data, rows, others)
    if n == 1:
        text += " One search per setting: no spread, a hint at most."
    return text


# --- the best setting -------------------------------------------------------------------------


def _lead(data: FindingsInput, rows: Mapping[str, dict], best: str, versus: str | None, label: str) -> str:
    """The best setting's difference with ``versus`` from comparisons.csv, with its verdict."""
    if versus == best:
        return f"it is {label} itself"
    if versus is None:
        return f"no comparison with a reference ({data.reference_note or 'no reference setting'})"
    table = data.comparisons
    match = table[(table["setting"] == best) & (table["versus"] == versus) & (table["metric"] == RETRAIN)]
    if match.empty:
        row = rows.get(versus)
        if row is None:
            why = "no random cells were retrained" if versus == RANDOM else "it is not in the study"
        elif not _count(row.get(f"{RETRAIN}_n")):
            why = "none of its genotypes was retrained"
        else:
            why = "the comparison could not be made"
        return f"no comparison with {label}: {why}"
    c = match.iloc[0]
    n = f"n = {int(c['n'])}" if c["n"] == c["n_versus"] else f"n = {int(c['n'])} vs {int(c['n_versus'])}"
    if c["difference"] != c["difference"]:
        return f"no comparison with {label} ({c['note']})"
    word = "lead" if c["difference"] >= 0 else "difference"
    text = f"its {word} over {label} is {100 * c['difference']:+.1f} points"
    if c["ci_low"] == c["ci_low"]:
        text += f" [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]"
    p = _deciding_p(c)
    if p != p:
        text += f", {n}: not testable ({c['note']})"
    else:
        verdict = f"significant at the {1 - CONFIDENCE:.0%} level" if bool(c["significant"]) else "not significant"
        adjusted = _number(c.get("p_holm"))
        if adjusted == adjusted:
            m = _holm_count(table)
            verdict += f" (Holm-adjusted {p_text(adjusted)} over {m} comparison{'' if m == 1 else 's'})"
        text += f", {p_text(p)}, {n}: {verdict}"
    if min(c["n"], c["n_versus"]) < FEW:
        text += ", a hint at most"
    return text


def _number(value: object) -> float:
    """A number from a comparisons.csv cell; NaN for a missing column or cell (hand-made tables)."""
    return float(value) if _finite(value) else NAN


def _deciding_p(c: Mapping) -> float:
    """The p that the comparison's verdict rests on: the paired one where the row was paired."""
    return _number(c.get("p_paired")) if c.get("test") == PAIRED_TEST else _number(c.get("p_value"))


def _holm_count(table: pd.DataFrame) -> int:
    """How many comparisons the Holm adjustment ran over (those with a p)."""
    return int(table["p_holm"].notna().sum()) if "p_holm" in table else 0


def _seeds_needed(data: FindingsInput, best: str) -> str:
    """How many retrained genotypes per setting would confirm the best setting's lead over the
    reference at 80% power (comparisons.csv's ``n_for_80pct_power``), or why that is not known."""
    head = "Seeds needed"
    if data.reference is None or best == data.reference:
        why = "the best setting is the reference itself" if best == data.reference else "there is no reference"
        return f"{head}: no power figure, since {why}."
    table = data.comparisons
    match = table[(table["setting"] == best) & (table["versus"] == data.reference) & (table["metric"] == RETRAIN)]
    if match.empty:
        return f"{head}: no power figure for {best} vs {_label(data)}, since they have no retrain comparison."
    c = match.iloc[0]
    difference, needed = _number(c.get("difference")), _number(c.get("n_for_80pct_power"))
    n = f"n = {int(c['n'])}" if c["n"] == c["n_versus"] else f"n = {int(c['n'])} vs {int(c['n_versus'])}"
    if needed != needed:
        if difference != difference:
            why = "there is no difference to plan from"
        elif difference == 0:
            why = "the observed difference is zero"
        elif c["n"] + c["n_versus"] <= 2:
            why = "one genotype per setting shows no spread"
        else:
            why = "the observed spread is zero or unknown"
        return f"{head}: not computable for {best} vs {_label(data)} in retrain test accuracy, since {why} ({n} now)."
    word = "lead" if difference >= 0 else "difference"
    return (
        f"{head}: to confirm {best}'s {word} of {100 * difference:+.1f} points over {_label(data)} in retrain test "
        f"accuracy at {100 * POWER:.0f}% power and the {1 - CONFIDENCE:.0%} level (two-sided, before any Holm "
        f"adjustment), about {int(needed)} retrained genotypes per setting, each from its own search seed, would "
        f"be needed (from the observed spread; {n} now)."
    )


def _best(data: FindingsInput, rows: Mapping[str, dict]) -> str:
    """The best setting by retrain test accuracy, whether its lead is significant, and the seeds
    (retrained genotypes) per setting that would confirm its lead over the reference."""
    candidates = [s for s in _searched(rows) if _finite(rows[s].get(f"{RETRAIN}_mean"))]
    if not candidates:
        return "Best setting by retrain test accuracy: none, since no searched genotype was retrained."
    best = max(candidates, key=lambda s: rows[s][f"{RETRAIN}_mean"])
    row = rows[best]
    n = _count(row.get(f"{RETRAIN}_n"))
    spread = f" ± {percent(row[f'{RETRAIN}_std'], 2)}" if n > 1 and _finite(row.get(f"{RETRAIN}_std")) else ""
    text = (
        f"Best setting by retrain test accuracy: {best}, {percent(row[f'{RETRAIN}_mean'], 2)}{spread} % "
        f"over {_many(n, 'retrained genotype')}"
    )
    if n == 1:
        text += " (one genotype: no spread)"
    if data.reference is not None and data.reference not in candidates:
        reference = f"no comparison with the reference: {_missing_reference(data, rows, f'{RETRAIN}_mean')}"
    else:
        reference = _lead(data, rows, best, data.reference, _label(data))
    anchors = [_lead(data, rows, best, s, f"the published {published_name(s)}") for s in rows if published_name(s)]
    text = "; ".join([text, reference, *anchors, _lead(data, rows, best, RANDOM, "the random cells")]) + "."
    return f"{text} {_seeds_needed(data, best)}"


# --- agreement and stability ------------------------------------------------------------------


def _agreement(agreement: Agreement) -> str:
    if agreement.tau != agreement.tau:
        return (
            f"Search-vs-retrain agreement: not measurable over n = {agreement.n} retrained searched genotypes "
            "(Kendall's tau needs at least two, with different accuracies)."
        )
    if agreement.p_value < 1 - CONFIDENCE and agreement.tau > 0:
        verdict = "a better search accuracy went with a better retrained network"
    else:
        verdict = "no evidence that a better search accuracy means a better retrained network"
    text = (
        f"Search-vs-retrain agreement: Kendall's tau = {agreement.tau:+.2f} over n = {agreement.n} retrained "
        f"searched genotypes ({p_text(agreement.p_value)}): {verdict}"
    )
    return text + (", a hint at most." if agreement.n < FEW else ".")


def _stability(rows: Mapping[str, dict]) -> list[str]:
    """The α entropy (did the search decide?) and the skip connections per cell."""
    settings = _searched(rows)
    out = []
    entropies = {s: rows[s] for s in settings if _finite(rows[s].get("alpha_entropy_normal"))}
    if not entropies:
        out.append("α entropy: unknown, since no search's α history was saved.")
    else:
        values = "; ".join(
            f"{s} {r['alpha_entropy_normal']:.2f} / {r['alpha_entropy_reduce']:.2f}" for s, r in entropies.items()
        )
        text = f"Final α entropy, normal / reduce cell (1 = undecided, 0 = every edge chose): {values}."
        flat = [s for s, r in entropies.items() if r["alpha_entropy_normal"] >= FLAT_ENTROPY]
        if flat and len(flat) == len(entropies):
            text += (
                f" α barely moved: a normal-cell entropy of {FLAT_ENTROPY:.2f} or more in every setting means the "
                "searches did not decide, so the cells they found are close to the initialisation noise."
            )
        elif flat:
            text += f" α barely moved in {', '.join(flat)}: those searches did not decide."
        out.append(text)
    skips = {s: rows[s] for s in settings if _finite(rows[s].get("skip_connect_normal"))}
    if skips:
        text = "Skip connections per normal / reduce cell: " + "; ".join(
            f"{s} {r['skip_connect_normal']:.1f} / {r['skip_connect_reduce']:.1f}" for s, r in skips.items()
        )
        chance = rows.get(RANDOM)
        if chance is not None and _finite(chance.get("skip_connect_normal")):
            text += f" (random cells, the chance level: {chance['skip_connect_normal']:.1f} / "
            text += f"{chance['skip_connect_reduce']:.1f})"
        many = [s for s, r in skips.items() if r["skip_connect_normal"] >= MANY_SKIPS]
        text += (
            f"; {', '.join(many)}: {MANY_SKIPS:.0f} or more per normal cell, DARTS's known collapse."
            if many
            else "; none near DARTS's collapse into skip connections."
        )
        out.append(text)
    return out
