"""Synthetic question + 7-section approach pairs of realistic, varied lengths for the training benchmark.

Deterministic (seeded) and offline, so the benchmark runs on a fresh clone without a data lake.
"""

from __future__ import annotations

import random

import pandas as pd

from research_tuner.lib.shared.sections import SECTIONS, assemble_markdown
from research_tuner.lib.shared.taxonomy import load_taxonomy

_OPENINGS = ("How does", "To what extent does", "Why does", "What explains how", "Under which conditions does")
_SUBJECTS = ("community participation", "sensor drift", "sampling frequency", "policy framing", "funding cycles",
             "peer feedback", "soil moisture", "archival coverage", "model calibration", "teacher turnover")
_OBJECTS = ("long-term outcomes", "measurement validity", "public trust", "replication rates", "yield stability",
            "citation patterns", "learning gains", "error propagation", "resource allocation", "adoption speed")
_SENTENCES = (
    "We expect {s} to shape {o} through a mechanism that earlier studies in {d} only partly describe.",
    "The design compares matched groups over three waves so that changes in {o} can be traced to {s}.",
    "A pilot with a small sample checks the instruments before the main round of data collection in {d}.",
    "Data come from structured interviews, administrative records and a survey of practitioners in {d}.",
    "Mixed-effects models estimate the association between {s} and {o}, with site as a random effect.",
    "Missing responses are handled with multiple imputation, and every model is refitted without them.",
    "Pre-registration of the hypotheses and the analysis plan limits the freedom to choose results later.",
    "Confounding by unmeasured context is the main threat, so a sensitivity analysis bounds its effect.",
    "Participants give informed consent, identifiers are removed, and raw records stay on secured servers.",
    "Results are compared with the published baselines in {d} and shared together with the analysis code.",
    "Key steps: define the variables, recruit sites, collect baseline data, run the follow-up, analyse.",
    "Effect sizes with confidence intervals are reported instead of p-values alone, for each subgroup.",
)


def synthetic_pairs(n: int, seed: int = 0, max_sentences: int = 4,
                    sentences_per_section: tuple[int, int] | None = None) -> pd.DataFrame:
    """`n` rows of question and approach. Each example draws a verbosity k in 1..`max_sentences`, and each
    section gets 1..k sentences (the first section shortened to a clause when k is 1), so with the SmolLM2
    tokenizer and chat template the examples run from ~150 to ~600 tokens. With `sentences_per_section`
    (lo, hi) each section gets lo..hi sentences instead (the paper's lengths: see bench_training_gpu.py)."""
    rng = random.Random(seed)
    subdomains = [s for field in load_taxonomy() for s in field.subdomains]
    rows = []
    for i in range(n):
        domain = rng.choice(subdomains)
        s, o = rng.choice(_SUBJECTS), rng.choice(_OBJECTS)
        question = f"{rng.choice(_OPENINGS)} {s} affect {o} in {domain}?"
        verbosity = rng.randint(1, max_sentences)
        lo, hi = sentences_per_section or (1, verbosity)
        bodies = {
            name: " ".join(rng.choice(_SENTENCES).format(s=s, o=o, d=domain)
                           for _ in range(rng.randint(lo, hi)))
            for name in SECTIONS
        }
        if verbosity == 1 and sentences_per_section is None:
            bodies = {name: body.split(",")[0].rstrip(".") + "." for name, body in bodies.items()}
        rows.append({"question": question, "approach": assemble_markdown(bodies)})
    return pd.DataFrame(rows)
