"""The comparison over all fields: paired deltas with bootstrap intervals per field and metric, the paper's
Figures 1 and 2 (grouped bars per field, base beside fine-tuned, with 95% intervals) for every metric that has
a figure in the registry, and the figure of the pairwise win rates."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from research_tuner.lib.evaluation import metrics  # noqa: E402
from research_tuner.lib.evaluation.metrics import Metric  # noqa: E402
from research_tuner.lib.evaluation.scoring import judged  # noqa: E402
from research_tuner.lib.evaluation.stats import paired_bootstrap_ci, relative_improvement  # noqa: E402


def reported_metrics(scores: pd.DataFrame) -> tuple[Metric, ...]:
    """The registry's metrics (read when called), and the judge's grade when the judge ran."""
    return metrics.METRICS + ((metrics.JUDGE_SCORE,) if judged(scores) else ())


def comparison_table(scores: pd.DataFrame, names: tuple[str, ...] | None = None, seed: int = 0) -> pd.DataFrame:
    """Per field and over all fields: both means, the paired delta with its 95% CI, the gain in %.

    Only questions with a score for both models count (a failed judgement leaves a gap, never a zero);
    n says how many there were.
    """
    names = names if names is not None else tuple(m.name for m in reported_metrics(scores))
    rows = []
    groups = [(field, g) for field, g in scores.groupby("field", sort=True)] + [("all", scores)]
    for field, group in groups:
        for name in names:
            paired = group.pivot(index="question_id", columns="model", values=name)
            paired = paired.reindex(columns=["base", "fine_tuned"]).dropna()
            base = paired["base"].to_numpy(dtype=float)
            tuned = paired["fine_tuned"].to_numpy(dtype=float)
            delta, low, high = paired_bootstrap_ci(base, tuned, seed=seed)
            rows.append({
                "field": field, "metric": name, "n": len(base),
                "base": _mean(base), "fine_tuned": _mean(tuned),
                "delta": delta, "delta_ci_low": low, "delta_ci_high": high,
                "improvement_pct": relative_improvement(_mean(base), _mean(tuned)),
            })
    return pd.DataFrame(rows)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def _mean_ci(values: np.ndarray, seed: int) -> tuple[float, float]:
    """95% bootstrap interval of a mean (the bar's error bar): the paired helper against zeros."""
    _, low, high = paired_bootstrap_ci(np.zeros_like(values), values, seed=seed)
    return low, high


def grouped_bars(scores: pd.DataFrame, name: str, path: Path, seed: int = 0) -> Path:
    """A bar per field and model of the mean of metric `name`, with its 95% bootstrap interval."""
    title = metrics.metric(name).title
    fields = sorted(scores["field"].unique())
    x = np.arange(len(fields))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(fields) + 2), 4.2))
    for offset, (model, colour) in zip((-0.2, 0.2), (("base", "#9aa5b1"), ("fine_tuned", "#2f6db5"))):
        means, lows, highs = [], [], []
        for field in fields:
            chosen = (scores["field"] == field) & (scores["model"] == model)
            values = scores.loc[chosen, name].dropna().to_numpy()  # a failed judgement is no zero
            mean = float(values.mean()) if len(values) else float("nan")
            low, high = _mean_ci(values, seed) if len(values) > 1 else (mean, mean)
            means.append(mean)
            lows.append(mean - low)
            highs.append(high - mean)
        ax.bar(x + offset, means, width=0.4, color=colour, label=model.replace("_", "-"),
               yerr=[np.nan_to_num(lows), np.nan_to_num(highs)], capsize=3)
    ax.set_xticks(x, [f.replace("_", "\n") for f in fields], fontsize=8)
    ax.set_ylabel(f"mean {title}")
    ax.set_title(f"{title} per field, base vs fine-tuned (95% bootstrap CI)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: eval_report's figure of the pairwise win rates, beside Figures 1 and 2.
WIN_RATE_FIGURE = "figure4_win_rate.png"


def win_rate_bars(table: pd.DataFrame, path: Path) -> Path:
    """Per field (and over all fields), the fine-tuned model's win rate against each opponent with its 95% Wilson
    interval, the length-controlled rate as a diamond, and the no-preference line at 0.5 (win_rate.py's table)."""
    fields = [f for f in sorted(table["field"].unique()) if f != "all"] + ["all"]
    x = np.arange(len(fields))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(fields) + 2), 4.2))
    styles = {"base": (-0.2, "#2f6db5", "vs base"), "reference": (0.2, "#d08c2f", "vs teacher (ceiling)")}
    for opponent, (offset, colour, label) in styles.items():
        rows = table[table["opponent"] == opponent].set_index("field").reindex(fields)
        if rows["win_rate"].isna().all():
            continue
        rate = rows["win_rate"].to_numpy(dtype=float)
        err = [np.nan_to_num(rate - rows["win_rate_ci_low"].to_numpy(dtype=float)),
               np.nan_to_num(rows["win_rate_ci_high"].to_numpy(dtype=float) - rate)]
        ax.bar(x + offset, rate, width=0.4, color=colour, label=label, yerr=err, capsize=3)
        ax.scatter(x + offset, rows["lc_win_rate"], marker="D", color="black", s=18, zorder=3,
                   label="length-controlled" if opponent == "base" else None)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1)
    ax.set_xticks(x, [f.replace("_", "\n") for f in fields], fontsize=8)
    ax.set_ylabel("fine-tuned win rate (ties as half)")
    ax.set_title("Pairwise preference per field, both orders judged (95% Wilson CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
