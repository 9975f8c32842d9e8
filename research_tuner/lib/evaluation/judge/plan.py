"""How many requests the judges send for a number of evaluation questions, before any retry: what a cost
estimate (imported without torch) multiplies by the judge's prices before a run spends anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

from research_tuner.lib.evaluation.judge.pairwise import OPPONENTS, ORDERS

if TYPE_CHECKING:
    from research_tuner.settings import JudgeSettings


def judge_request_counts(questions: int, cfg: JudgeSettings) -> dict[str, int]:
    """{'pointwise': one grade per answer of each model, 'pairwise': each opponent in both orders per question};
    0 for a judge that is off. Retries of unreadable answers (up to judge.max_retries each) come on top."""
    return {
        "pointwise": questions * 2 if cfg.enabled else 0,  # the base and the fine-tuned answer
        "pairwise": questions * len(OPPONENTS) * len(ORDERS) if cfg.pairwise else 0,
    }


def judge_max_tokens(cfg: JudgeSettings) -> dict[str, int]:
    """The completion-token cap of one request of each kind (the worst case a budget reserves)."""
    return {"pointwise": cfg.max_tokens, "pairwise": cfg.pairwise_max_tokens}
