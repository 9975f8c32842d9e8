"""The price before the run: the estimate of a scaled-down paper profile against what a loopback run counted, the
arithmetic of batch mode and rate limits, and `check` / `run` refusing a run whose estimate is above its budget."""

import math

import pytest

from research_tuner import cli
from research_tuner.lib.generation.approaches import generate_approaches
from research_tuner.lib.curation.curate import curate_questions
from research_tuner.lib.generation.questions import generate_questions
from research_tuner.lib.generation.question_strategies import question_strategy
from research_tuner.lib.shared.taxonomy import get_field
from research_tuner.lib.teacher.base import Usage
from research_tuner.lib.teacher.factory import build_teacher
from research_tuner.price import estimate_run, format_estimate, over_budget
from research_tuner.settings import SettingsError, load_profile
from research_tuner_tests.support.openai_server import FakeOpenAIServer, answer_for, count_tokens

FIELDS = ["arts", "humanities"]
SMALL = {"generation": {"subdomains_per_field": 2, "questions_per_subdomain": 8},
         "teacher": {"questions_per_request": 4, "max_concurrency": 4},
         "dedup": {"semantic": False}, "gates": {"questions": {"on_topic": False}, "approaches": {"on_topic": False}},
         "evaluation": {"judge": {"pairwise": False}}}  # the teacher's steps only: the loopback run trains no student


def calibrated(profile_overrides: dict) -> dict:
    """The two completion-length assumptions, read off a pilot answer of the loopback teacher (another field than
    the run's), as a user would from a small pilot run: the estimate cannot know how long a teacher writes."""
    cfg = load_profile("paper", overrides=profile_overrides).teacher
    plan = question_strategy("list").plan("engineering", "civil engineering", 4, cfg)[0]
    pilot = answer_for(list(plan.request.messages), wants_json=True)
    per_question = math.ceil(count_tokens(pilot) / 4)
    approach = answer_for([{"role": "user", "content": f"Research question (x / y): {'word ' * 20}\n\n"
                            "level-2 Markdown headings"}], wants_json=False)
    return {"expected_tokens_per_question": per_question,
            "expected_approach_fill": count_tokens(approach) / cfg.max_tokens_approach}


def test_the_estimate_of_a_scaled_down_paper_run_is_within_15_percent_of_a_loopback_run(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    with FakeOpenAIServer() as server:
        overrides = {**SMALL, "teacher": {**SMALL["teacher"], "base_url": server.base_url}}
        overrides["teacher"] |= calibrated(overrides)
        profile = load_profile("paper", overrides=overrides)
        estimates = estimate_run(profile, FIELDS)
        teacher = build_teacher(profile.teacher, tmp_path / "cache.sqlite")
        usage = Usage()
        for field in FIELDS:
            subdomains = list(get_field(field).subdomains[:2])
            raw = generate_questions(teacher, field, subdomains, profile.teacher, 8, usage)
            audit, _ = curate_questions(raw, profile.dedup, profile.gates.questions)
            kept = audit[audit["keep"]]
            generate_approaches(teacher, kept, profile.teacher, usage, gates=profile.gates.approaches)
        assert server.answered == usage.requests_sent and usage.cache_hits == 0
    counted = {"requests": usage.requests_sent, "prompt_tokens": usage.prompt_tokens,
               "completion_tokens": usage.completion_tokens}
    estimated = {k: sum(getattr(e, k) for e in estimates) for k in counted}
    for key, value in counted.items():
        assert abs(estimated[key] - value) <= 0.15 * value, (key, estimated, counted)
    dollars = (counted["prompt_tokens"] * 0.40 + counted["completion_tokens"] * 1.60) / 1e6
    assert sum(e.usd for e in estimates) == pytest.approx(dollars, rel=0.15)
    assert {e.step for e in estimates} == {f"{s}[{f}]" for s in ("raw_questions", "approaches") for f in FIELDS}


def test_batch_mode_is_priced_at_its_discount_and_rate_limits_set_the_wall_time():
    online = estimate_run(load_profile("paper", overrides=SMALL), FIELDS)
    batch = estimate_run(load_profile("paper", overrides={**SMALL, "teacher": {**SMALL["teacher"], "mode": "batch"}}),
                         FIELDS)
    assert sum(e.usd for e in batch) == pytest.approx(0.5 * sum(e.usd for e in online))
    slow = estimate_run(load_profile("paper", overrides={**SMALL, "teacher": {**SMALL["teacher"],
                                                                             "requests_per_minute": 6}}), ["arts"])
    approaches = next(e for e in slow if e.step == "approaches[arts]")
    assert approaches.requests == 16 and approaches.wall_s == pytest.approx(16 * 10.0)
    graded = estimate_run(load_profile("paper", overrides={**SMALL, "gates": {"approaches": {"grade": True}}}),
                          ["arts"])
    assert next(e for e in graded if e.step == "approaches[arts]").requests == 2 * 16  # and one grade each
    asked = estimate_run(load_profile("paper", overrides={**SMALL, "dedup": {"teacher_borderline": True,
                                                                             "borderline_max_pairs": 50}}), ["arts"])
    assert next(e for e in asked if e.step == "question_clusters").requests == 50


def test_the_paper_profile_prices_the_judge_at_its_own_prices():
    judged = load_profile("paper", overrides={"evaluation": {"judge": {
        "enabled": True, "pairwise": True, "price_input_per_mtok": 3.0, "price_output_per_mtok": 12.0}}})
    steps = {e.step: e for e in estimate_run(judged, ["arts"])}
    assert steps["eval_judgements[arts]"].requests == 7 * 2 * 2  # 7 subdomains x 2 questions x (base, fine-tuned)
    assert steps["eval_preferences[arts]"].requests == 7 * 2 * 4  # 2 opponents x 2 orders
    grade = steps["eval_judgements[arts]"]
    assert grade.usd == pytest.approx((grade.prompt_tokens * 3.0 + grade.completion_tokens * 12.0) / 1e6)
    assert "eval_preferences" in format_estimate(judged, list(steps.values()))
    with pytest.raises(SettingsError, match="unknown field"):
        estimate_run(judged, ["astrology"])


def test_check_and_run_refuse_a_run_over_budget_unless_told(monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    args = ["--profile", "paper", "--fields", "arts", "--set", "teacher.budget_usd=0.5",
            "--set", "training.base_model=embedded:SmolLM2-135M-Instruct",
            "--set", "teacher.check_server=false"]  # the price is under test here, not OpenAI's reachability
    profile = load_profile("paper", overrides={"teacher": {"budget_usd": 0.5}})
    assert [e.step for e in over_budget(estimate_run(profile, ["arts"]))] == ["approaches[arts]"]
    assert cli.main(["check", *args]) == 2
    out = capsys.readouterr()
    assert "over budget: approaches[arts]" in out.out and "--over-budget-ok" in out.err
    assert cli.main(["check", *args, "--over-budget-ok"]) == 0
    assert cli.main(["run", *args, "--lake", "/nonexistent/never-written"]) == 2  # refused before any step runs
    assert "Cannot start" in capsys.readouterr().err
