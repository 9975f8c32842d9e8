"""The pairwise judge against the loopback server's judges of known behaviour: both orders, position bias as
inconsistency, the expected win rates, length control, failures that are never ties, the cache, the parser."""

import numpy as np
import pandas as pd
import pytest

from research_tuner.lib.evaluation.judge.pairwise import ORDERS, combine, judge_preferences
from research_tuner.lib.evaluation.judge.pairwise_prompts import PAIRWISE_RETRY_REMINDER
from research_tuner.lib.evaluation.judge.plan import judge_request_counts
from research_tuner.lib.evaluation.judge.verdict import UnreadableVerdict, parse_verdict
from research_tuner.lib.evaluation.win_rate import preference_table
from research_tuner.lib.shared.sections import SECTIONS
from research_tuner.lib.teacher.base import Usage
from research_tuner.resources import PipelineSettings, TeacherResource
from research_tuner.settings import load_profile
from research_tuner_tests.support.openai_server import FakeOpenAIServer, Fault


def approach(sections: int, padding: int = 0, topic: str = "the question") -> str:
    """An approach with the first `sections` of the 7 sections, plus `padding` filler words in the last one."""
    parts = [f"## {s}\nA concrete plan for {topic}." for s in SECTIONS[:sections]] or [f"Some thoughts on {topic}."]
    return "\n\n".join(parts) + (" " + " ".join(["more"] * padding) if padding else "")


def generations(questions: list[tuple[str, str, str, str]], field: str = "arts") -> pd.DataFrame:
    """(question_id, fine-tuned answer, base answer, reference) -> an eval_generations-shaped frame."""
    rows = []
    for qid, tuned, base, reference in questions:
        for model, response in (("base", base), ("fine_tuned", tuned)):
            rows.append({"question_id": qid, "field": field, "subdomain": "music", "question": f"Question {qid}?",
                         "reference": reference, "model": model, "response": response, "finish_reason": "stop",
                         "completion_tokens": len(response.split())})
    return pd.DataFrame(rows)


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def judge_for(server, tmp_path, monkeypatch, teacher: dict | None = None, **judge):
    """The judge TeacherResource.get_judge builds, on the loopback server as an endpoint of its own."""
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-secret")
    overrides = {"teacher": {"base_url": "http://127.0.0.1:9/v1", **(teacher or {})},  # nothing listens there
                 "evaluation": {"judge": {"pairwise": True, "base_url": server.base_url, "api_key_env": "JUDGE_KEY",
                                          "model": "judge-7b", "max_concurrency": 8, **judge}}}
    settings = PipelineSettings(profile="paper", **overrides, work_dir=str(tmp_path / "work"))
    client = TeacherResource().get_judge(settings)
    client.inner.backoff_base_s = 0.01
    return client, settings.resolve().evaluation.judge


def overall(table: pd.DataFrame, opponent: str):
    return preference_table(table).set_index(["field", "opponent"]).loc[("all", opponent)]


def test_combining_both_orders():
    assert combine("first", "second") == ("win", False)  # fine-tuned first, then second: preferred both times
    assert combine("second", "first") == ("loss", False)
    assert combine("tie", "tie") == ("tie", False)
    assert combine("first", "first") == ("tie", True)  # the first answer either way: position, not quality
    assert combine("first", "tie") == ("tie", True)


def test_a_judge_that_always_prefers_the_first_answer_is_all_inconsistent_and_wins_half(server, tmp_path,
                                                                                          monkeypatch):
    server.pairwise_judge = "first"
    judge, cfg = judge_for(server, tmp_path, monkeypatch)
    frame = generations([(f"q{i}", approach(7), approach(i % 7), approach(7, topic="it")) for i in range(12)])
    usage = Usage()
    table = judge_preferences(judge, frame, cfg, usage)
    assert len(table) == 24 and server.answered == 48, "12 questions x 2 opponents x 2 orders"
    assert (table[["verdict_fine_tuned_first", "verdict_fine_tuned_second"]] == "first").all().all()
    for opponent in ("base", "reference"):
        row = overall(table, opponent)
        assert row["inconsistency_rate"] == 1.0 and row["ties"] == 12 and row["wins"] == row["losses"] == 0
        assert row["win_rate"] == 0.5 and row["win_rate_ci_low"] < 0.5 < row["win_rate_ci_high"]
    assert {b["model"] for b in server.bodies} == {"judge-7b"} and usage.requests_sent == 48


def test_a_judge_that_prefers_more_sections_gives_the_expected_win_rate(server, tmp_path, monkeypatch):
    server.pairwise_judge = "sections"
    judge, cfg = judge_for(server, tmp_path, monkeypatch)
    # fine-tuned has 5 sections; base has 0..6 in turn (wins at 0-4, tie at 5, loses at 6); the reference all 7
    questions = [(f"q{i}", approach(5), approach(i % 7), approach(7)) for i in range(28)]
    table = judge_preferences(judge, generations(questions), cfg, Usage())
    base = overall(table, "base")
    assert (base["wins"], base["ties"], base["losses"]) == (20, 4, 4)
    assert base["win_rate"] == pytest.approx((20 + 0.5 * 4) / 28) and base["inconsistency_rate"] == 0
    assert base["win_rate_ci_low"] < base["win_rate"] < base["win_rate_ci_high"]
    ceiling = overall(table, "reference")
    assert ceiling["losses"] == 28 and ceiling["win_rate"] == 0 and ceiling["preferred_or_tied"] == 0
    assert ceiling["win_rate_ci_high"] > 0, "a Wilson interval keeps its width at a rate of 0"
    first_order = table[table["opponent"] == "base"].iloc[1]  # base has 1 section: fine-tuned wins in both orders
    assert (first_order["verdict_fine_tuned_first"], first_order["verdict_fine_tuned_second"]) == ("first", "second")
    assert first_order["reason_fine_tuned_first"] == "5 against 1 of the 7 sections."


def test_length_control_sees_through_a_judge_that_prefers_longer_answers(server, tmp_path, monkeypatch):
    server.pairwise_judge = "longer"
    judge, cfg = judge_for(server, tmp_path, monkeypatch)
    rng = np.random.default_rng(7)
    extra = rng.normal(60, 50, 96).round().astype(int)  # fine-tuned answers longer on average, same content
    questions = [(f"q{i}", approach(7, max(0, d)), approach(7, max(0, -d)), approach(7)) for i, d in enumerate(extra)]
    table = judge_preferences(judge, generations(questions), cfg, Usage())
    base = overall(table, "base")
    assert base["words_fine_tuned"] > base["words_opponent"] + 40
    assert base["win_rate"] > 0.75 and base["win_rate_ci_low"] > 0.5, "the raw win rate rewards length"
    assert abs(base["lc_win_rate"] - 0.5) < 0.15 and base["lc_win_rate_ci_low"] < 0.5 < base["lc_win_rate_ci_high"]


def test_malformed_verdicts_are_retried_then_failures_never_ties(server, tmp_path, monkeypatch):
    server.pairwise_judge = "malformed"
    judge, cfg = judge_for(server, tmp_path, monkeypatch, max_retries=2)
    frame = generations([("q1", approach(7), approach(2), approach(7))])
    usage = Usage()
    table = judge_preferences(judge, frame, cfg, usage)
    assert (table["outcome"] == "failed").all() and not table["inconsistent"].any()
    assert table["error"].str.contains("unreadable: no verdict").all() and (table["attempts"] == 3).all()
    assert server.requests == 2 * 2 * 3, "2 opponents x 2 orders x (1 + 2 retries)"
    assert PAIRWISE_RETRY_REMINDER in server.bodies[-1]["messages"][1]["content"]
    assert usage.failures == 2 and usage.failure_reasons == {"pairwise unreadable": 2}
    row = overall(table, "base")
    assert row["failed"] == 1 and row["n"] == 0 and row["ties"] == 0 and np.isnan(row["win_rate"])


def test_one_unreadable_answer_is_asked_again_and_a_rerun_sends_nothing(server, tmp_path, monkeypatch):
    judge, cfg = judge_for(server, tmp_path, monkeypatch)
    server.inject(Fault(text="Hard to say."))
    frame = generations([("q1", approach(7), approach(2), approach(7))])
    table = judge_preferences(judge, frame, cfg, Usage())
    assert (table["outcome"] != "failed").all() and table["attempts"].max() == 2 and server.requests == 5
    for body in server.bodies:
        assert body["temperature"] == 0 and body["response_format"]["type"] == "json_schema"
    again = Usage()
    rerun = judge_preferences(judge, frame, cfg, again)
    assert server.requests == 5 and again.requests_sent == 0 and again.cache_hits == 5  # the retry too
    pd.testing.assert_frame_equal(rerun, table)


def test_a_server_without_structured_output_is_read_by_the_fallback(server, tmp_path, monkeypatch):
    server.ignore_response_format = True
    judge, cfg = judge_for(server, tmp_path, monkeypatch)
    table = judge_preferences(judge, generations([("q1", approach(7), approach(2), approach(3))]), cfg, Usage())
    assert table.set_index("opponent")["outcome"].to_dict() == {"base": "win", "reference": "win"}
    assert all(text.endswith("**Verdict:** first") or text.endswith("**Verdict:** second")
               for (text,) in judge.cache._db.execute("SELECT text FROM responses"))


def test_the_verdict_parser_reads_json_and_prose_and_never_guesses():
    assert parse_verdict('{"reason": "More specific.", "verdict": "second"}') == ("second", "More specific.")
    assert parse_verdict('Sure:\n```json\n{"reason": "x", "verdict": "Tie"}\n```')[0] == "tie"
    assert parse_verdict("The first is vaguer.\n\nVerdict: the second")[0] == "second"
    assert parse_verdict("My final verdict is [[first]].")[0] == "first"
    for text, reason in [("Both are fine.", "no verdict"), ('{"reason": "x", "verdict": "both"}', "none of"),
                         ("Verdict: first. On reflection, verdict: second.", "several verdicts")]:
        with pytest.raises(UnreadableVerdict, match=reason):
            parse_verdict(text)


def test_the_judge_request_count_a_cost_estimate_can_use():
    cfg = load_profile("paper").evaluation.judge
    assert judge_request_counts(122, cfg) == {"pointwise": 0, "pairwise": 122 * 2 * len(ORDERS)}
    both = cfg.model_copy(update={"enabled": True})
    assert judge_request_counts(10, both) == {"pointwise": 20, "pairwise": 40}
    assert judge_request_counts(10, load_profile("demo").evaluation.judge) == {"pointwise": 0, "pairwise": 0}


def test_the_judge_has_its_own_budget_at_its_own_prices(server, tmp_path, monkeypatch):
    from research_tuner.lib.teacher.budget import BudgetExceeded

    frame = generations([("q1", approach(7), approach(2), approach(7))])
    # the teacher's tiny budget is not the judge's: the judge (no cap of its own) answers everything
    judge, cfg = judge_for(server, tmp_path / "a", monkeypatch, teacher={"budget_usd": 1e-6},
                           price_input_per_mtok=1.0)
    budget = judge.inner.budget
    assert budget.cap_usd is None and (budget.price_in, budget.price_out) == (1.0, 1.60)  # unset: the teacher's
    assert (judge_preferences(judge, frame, cfg, Usage())["outcome"] != "failed").all()
    # at the judge's own prices a request's worst case (~500 tokens x $1000/M = $0.5) passes its $0.01 cap
    sent = server.requests
    pricey, cfg = judge_for(server, tmp_path / "b", monkeypatch, price_input_per_mtok=1000.0,
                            price_output_per_mtok=1000.0, budget_usd=0.01)
    with pytest.raises(BudgetExceeded, match=r"\$0.01 cap"):
        judge_preferences(pricey, frame, cfg, Usage())
    assert server.requests == sent, "nothing is sent past the judge's cap"
