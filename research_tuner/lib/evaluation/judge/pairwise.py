"""Pairwise preference: the judge compares the fine-tuned answer with an opponent's (the base model's, and the
teacher's reference: the ceiling), in both orders, and each pair gets one outcome from the fine-tuned side.

Every pair is asked twice, once with the fine-tuned answer first and once second (FastChat's MT-Bench
pairwise judging; AlpacaEval and TRL's WinRateCallback randomise the order instead). A verdict that changes
with the order is a tie and is flagged `inconsistent`: position bias made visible, and never a win. An answer
that cannot be read is asked again with a reminder (`judge.max_retries`); a pair still missing a verdict in
either order is recorded as `failed`, with the reason, and counts as neither a tie nor a loss.

Requests go through the teacher cache like every other LLM call (the key holds the judge's endpoint, model,
messages and seed), so a rerun sends only what was not answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.evaluation.judge.pairwise_prompts import pairwise_messages
from research_tuner.lib.evaluation.judge.verdict import VERDICT_SCHEMA, UnreadableVerdict, parse_verdict
from research_tuner.lib.shared.ids import stable_seed
from research_tuner.lib.shared.schema import RowSchema
from research_tuner.lib.teacher.base import Teacher, TeacherFailure, TeacherRequest, TeacherResponse, Usage

if TYPE_CHECKING:
    from research_tuner.settings import JudgeSettings

#: Whom the fine-tuned answer is compared with: the base model's answer, and the teacher's reference (the ceiling).
OPPONENTS: tuple[str, ...] = ("base", "reference")
#: The two orders every pair is judged in.
ORDERS: tuple[str, ...] = ("fine_tuned_first", "fine_tuned_second")
#: Outcomes from the fine-tuned answer's side, and what each counts in a win rate (ties as half).
OUTCOME_SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}

#: The `eval_preferences` table: one row per (question, opponent), both orders' verdicts and the outcome.
PREFERENCES = RowSchema("eval_preferences", {
    "question_id": "object", "field": "object", "subdomain": "object", "opponent": "object", "judge_model": "object",
    "outcome": "object", "inconsistent": "bool", "verdict_fine_tuned_first": "object",
    "verdict_fine_tuned_second": "object", "reason_fine_tuned_first": "object", "reason_fine_tuned_second": "object",
    "attempts": "int64", "error": "object", "words_fine_tuned": "int64", "words_opponent": "int64",
})


def words(text: str) -> int:
    """An answer's length, in whitespace-separated words (the same count for a model's answer and the reference)."""
    return len(str(text).split())


def pairs(generations: pd.DataFrame) -> list[dict]:
    """One record per (question, opponent) with both answers; questions lacking the fine-tuned answer are skipped."""
    by_model = {m: g.set_index("question_id") for m, g in generations.groupby("model")}
    tuned = by_model.get("fine_tuned")
    if tuned is None:
        return []
    records = []
    for qid, row in tuned.iterrows():
        opponents = {"reference": row["reference"]}
        if "base" in by_model and qid in by_model["base"].index:
            opponents["base"] = by_model["base"].at[qid, "response"]
        for opponent in OPPONENTS:
            if opponent in opponents:
                records.append({"question_id": qid, "field": row["field"], "subdomain": row["subdomain"],
                                "question": row["question"], "opponent": opponent,
                                "fine_tuned": row["response"], "other": opponents[opponent]})
    return records


def pairwise_request(pair: dict, order: str, cfg: JudgeSettings, attempt: int = 0) -> TeacherRequest:
    """Temperature 0: a verdict should depend on the answers, not on the draw."""
    first, second = (pair["fine_tuned"], pair["other"]) if order == ORDERS[0] else (pair["other"], pair["fine_tuned"])
    return TeacherRequest(
        pairwise_messages(pair["question"], first, second, attempt),
        max_tokens=cfg.pairwise_max_tokens,
        temperature=0.0,
        top_p=1.0,
        seed=stable_seed(pair["question_id"], pair["opponent"], order, "pairwise", attempt),
        json_schema=VERDICT_SCHEMA,
    )


def _read(response: TeacherResponse | TeacherFailure) -> tuple[str | None, tuple[str, str] | None]:
    if isinstance(response, TeacherFailure):
        return f"transport: {response.reason}", None
    if response.finish_reason == "refusal":
        return "refused", None
    try:
        return None, parse_verdict(response.text)
    except UnreadableVerdict as exc:
        cut = " (cut at the token limit)" if response.finish_reason == "length" else ""
        return f"unreadable: {exc}{cut}", None


def fine_tuned_score(verdict: str, order: str) -> float:
    """What a verdict gives the fine-tuned answer: 1 if it was preferred, 0.5 for a tie, 0 if the other was."""
    if verdict == "tie":
        return 0.5
    return 1.0 if (verdict == "first") == (order == ORDERS[0]) else 0.0


def combine(first: str, second: str) -> tuple[str, bool]:
    """(outcome, inconsistent) from the verdicts with the fine-tuned answer first and second: the same outcome in
    both orders stands; any change with the order is a tie, flagged inconsistent."""
    a, b = fine_tuned_score(first, ORDERS[0]), fine_tuned_score(second, ORDERS[1])
    if a != b:
        return "tie", True
    return {1.0: "win", 0.5: "tie", 0.0: "loss"}[a], False


def empty_preferences() -> pd.DataFrame:
    """The preferences table with no rows: what a partition holds when the pairwise judge is off."""
    return PREFERENCES.empty()


def judge_preferences(
    judge: Teacher,
    generations: pd.DataFrame,
    cfg: JudgeSettings,
    usage: Usage,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per (question, opponent): outcome 'win' / 'tie' / 'loss' for the fine-tuned answer, or 'failed'
    (a verdict missing in an order after the retries) with the reason and no outcome."""
    records = pairs(generations)
    if not records:
        return empty_preferences()
    slots = [(i, order) for i in range(len(records)) for order in ORDERS]
    read: dict[tuple[int, str], tuple[str, str]] = {}
    errors: dict[tuple[int, str], str] = {}
    attempts: dict[tuple[int, str], int] = {}
    for attempt in range(cfg.max_retries + 1):
        pending = [s for s in slots if s not in read]
        if not pending:
            break
        if attempt:
            usage.retries += len(pending)
        requests = [pairwise_request(records[i], order, cfg, attempt) for i, order in pending]
        for slot, response in zip(pending, judge.complete(requests, usage, progress), strict=True):
            attempts[slot] = attempt + 1
            error, verdict = _read(response)
            if verdict is None:
                errors[slot] = error or "unknown"
            else:
                read[slot] = verdict
                errors.pop(slot, None)

    rows = []
    for i, pair in enumerate(records):
        first, second = (read.get((i, order), ("", "")) for order in ORDERS)
        row = {"question_id": pair["question_id"], "field": pair["field"], "subdomain": pair["subdomain"],
               "opponent": pair["opponent"], "judge_model": judge.model,
               "verdict_fine_tuned_first": first[0], "verdict_fine_tuned_second": second[0],
               "reason_fine_tuned_first": first[1], "reason_fine_tuned_second": second[1],
               "attempts": max(attempts[(i, order)] for order in ORDERS),
               "words_fine_tuned": words(pair["fine_tuned"]), "words_opponent": words(pair["other"])}
        failed = [(order, errors[(i, order)]) for order in ORDERS if (i, order) in errors]
        if failed:
            usage.record_failure("pairwise " + failed[0][1].split(":")[0])
            row |= {"outcome": "failed", "inconsistent": False, "error": "; ".join(f"{o}: {e}" for o, e in failed)}
        else:
            outcome, inconsistent = combine(first[0], second[0])
            row |= {"outcome": outcome, "inconsistent": inconsistent, "error": ""}
        rows.append(row)
    return PREFERENCES.frame(rows)
