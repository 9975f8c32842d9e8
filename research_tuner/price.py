"""The price of a run before it starts: every step's teacher and judge requests, tokens, dollars and wall time,
built from the requests the stages will send (lib/teacher/estimate.py does the arithmetic).

What is assumed, and so only as good as the assumption:
- every question the teacher is asked for survives the gates and the duplicate search and gets an approach
  (an upper bound: what curation removes is not asked for);
- a question is `teacher.expected_tokens_per_question` tokens, an approach (or a section) uses
  `teacher.expected_approach_fill` of its `max_tokens`; a student's answer uses all of `evaluation.max_new_tokens`;
- the teacher's yes/no on borderline duplicate pairs is asked `dedup.borderline_max_pairs` times (its cap);
- a judge writes `EXPECTED_JUDGE_TOKENS` per verdict, a grade of an approach `EXPECTED_GRADE_TOKENS`; retries of
  rejected answers come on top.

`research-tuner check` prints it, and `research-tuner run` refuses to start when a step's estimate is above its
budget (`teacher.budget_usd`, `evaluation.judge.budget_usd`: each caps one step) unless --over-budget-ok.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from research_tuner.lib.generation.approach_grade import grade_request
from research_tuner.lib.generation.approach_strategies import approach_strategy
from research_tuner.lib.evaluation.judge.grade import judge_request
from research_tuner.lib.evaluation.judge.pairwise import pairwise_request
from research_tuner.lib.evaluation.judge.plan import judge_request_counts
from research_tuner.lib.curation.borderline import same_study_request
from research_tuner.lib.generation.question_strategies import question_strategy
from research_tuner.lib.shared.errors import SettingsError
from research_tuner.lib.shared.taxonomy import field_keys, get_field
from research_tuner.lib.teacher.estimate import StepEstimate, StepPlan, estimate_step

if TYPE_CHECKING:
    from research_tuner.settings import Profile

#: Completion tokens of one grade of an approach: {"score": n}.
EXPECTED_GRADE_TOKENS = 6
#: Completion tokens of one judge answer: a short rationale and 8 scores, or a one-sentence reason and a verdict.
EXPECTED_JUDGE_TOKENS = {"pointwise": 150, "pairwise": 60}


def _stand_in(tokens: int) -> str:
    """A text of about `tokens` tokens (4 characters each), for a question or an answer not written yet."""
    return ("word " * tokens)[: 4 * tokens]


def _teacher_plans(profile: Profile, field: str) -> list[StepPlan]:
    cfg, gen = profile.teacher, profile.generation
    subdomains = list(get_field(field).subdomains[: gen.subdomains_per_field])
    strategy = question_strategy(cfg.question_strategy)
    planned = [p for s in subdomains for p in strategy.plan(field, s, gen.questions_per_subdomain, cfg)]
    questions = StepPlan(f"raw_questions[{field}]", [p.request for p in planned],
                         [p.count * cfg.expected_tokens_per_question for p in planned], cfg)
    approach = approach_strategy(cfg.approach_strategy)
    text = _stand_in(cfg.expected_tokens_per_question)
    requests = [approach.request({"question_id": f"{field}-{s}-{i}", "field": field, "subdomain": s, "question": text},
                                 part, cfg, 0)
                for s in subdomains for i in range(gen.questions_per_subdomain) for part in approach.parts]
    fill = math.ceil(cfg.expected_approach_fill * cfg.max_tokens_approach)
    expected = [fill] * len(requests)
    gates = profile.gates.approaches
    if gates.enabled and gates.grade:  # one grade per approach, sent by the same step
        approach_text = _stand_in(fill * len(approach.parts))
        graded = len(subdomains) * gen.questions_per_subdomain
        requests += [grade_request(text, approach_text, gates)] * graded
        expected += [min(gates.grade_max_tokens, EXPECTED_GRADE_TOKENS)] * graded
    return [questions, StepPlan(f"approaches[{field}]", requests, expected, cfg)]


def _judge_plans(profile: Profile, field: str) -> list[StepPlan]:
    judge = profile.evaluation.judge
    if not judge.any_enabled:
        return []
    gen, cfg = profile.generation, profile.teacher
    subdomains = len(get_field(field).subdomains[: gen.subdomains_per_field])
    validation = round(gen.questions_per_subdomain * profile.split.validation_fraction)
    questions = subdomains * min(profile.evaluation.questions_per_subdomain, max(1, validation))
    counts = judge_request_counts(questions, judge)
    client = judge.teacher_settings(cfg)
    question = _stand_in(cfg.expected_tokens_per_question)
    answer = _stand_in(profile.evaluation.max_new_tokens)
    reference = _stand_in(math.ceil(cfg.expected_approach_fill * cfg.max_tokens_approach))
    plans = []
    if counts["pointwise"]:
        one = judge_request({"question": question, "reference": reference, "response": answer, "question_id": "q",
                             "model": "m"}, judge)
        expected = min(judge.max_tokens, EXPECTED_JUDGE_TOKENS["pointwise"])
        plans.append(StepPlan(f"eval_judgements[{field}]", [one] * counts["pointwise"],
                              [expected] * counts["pointwise"], client))
    if counts["pairwise"]:
        one = pairwise_request({"question": question, "fine_tuned": answer, "other": answer, "question_id": "q",
                                "opponent": "base"}, "fine_tuned_first", judge)
        expected = min(judge.pairwise_max_tokens, EXPECTED_JUDGE_TOKENS["pairwise"])
        plans.append(StepPlan(f"eval_preferences[{field}]", [one] * counts["pairwise"],
                              [expected] * counts["pairwise"], client))
    return plans


def _borderline_plans(profile: Profile) -> list[StepPlan]:
    """The teacher's yes/no on borderline pairs: how many pairs there are is known only after the search, so the
    estimate is the cap, `dedup.borderline_max_pairs` (an upper bound)."""
    dedup = profile.dedup
    if not (dedup.teacher_borderline and dedup.semantic):
        return []
    question = _stand_in(profile.teacher.expected_tokens_per_question)
    one = same_study_request(question, question + " ")
    return [StepPlan("question_clusters", [one] * dedup.borderline_max_pairs, [1] * dedup.borderline_max_pairs,
                     profile.teacher)]


def estimate_run(profile: Profile, fields: list[str]) -> list[StepEstimate]:
    """One estimate per step that asks an LLM, for the chosen fields."""
    unknown = sorted(set(fields) - set(field_keys()))
    if unknown:
        raise SettingsError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(field_keys())}")
    plans = [plan for field in fields for plan in _teacher_plans(profile, field)]
    plans += _borderline_plans(profile)
    plans += [plan for field in fields for plan in _judge_plans(profile, field)]
    return [estimate_step(plan) for plan in plans]


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def format_estimate(profile: Profile, estimates: list[StepEstimate]) -> str:
    """A few lines a person reads before spending: totals by kind of step, and any step over its budget."""
    lines = [f"Estimated cost of profile {profile.name} (teacher {profile.teacher.model}, {profile.teacher.mode}):"]
    kinds: dict[str, list[StepEstimate]] = {}
    for e in estimates:
        kinds.setdefault(e.step.split("[")[0], []).append(e)
    for kind, steps in kinds.items():
        lines.append(
            f"  {kind:<17} {sum(s.requests for s in steps):>8,} requests  {sum(s.prompt_tokens for s in steps):>12,} "
            f"prompt + {sum(s.completion_tokens for s in steps):>11,} completion tokens  "
            f"${sum(s.usd for s in steps):>9.2f} (at most ${sum(s.worst_usd for s in steps):.2f})  "
            f"~{_duration(sum(s.wall_s for s in steps))}")
    total = sum(e.usd for e in estimates)
    lines.append(f"  total ${total:.2f} (at most ${sum(e.worst_usd for e in estimates):.2f} if every answer reaches "
                 "max_tokens); retries come on top")
    lines += [f"  over budget: {e.step} ~${e.usd:.2f} > budget_usd {e.budget_usd:.2f}" for e in estimates
              if e.over_budget]
    return "\n".join(lines)


def over_budget(estimates: list[StepEstimate]) -> list[StepEstimate]:
    return [e for e in estimates if e.over_budget]
