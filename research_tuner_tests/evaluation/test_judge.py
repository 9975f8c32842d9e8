"""The LLM-as-judge against the loopback server: parsing, fallback, retries, failures, cache, and the assets."""

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from research_tuner.definitions import STAGES
from research_tuner.lake import ParquetLakeIOManager, read_parquet, write_parquet_atomic
from research_tuner.lib.evaluation.judge.grade import judge_responses
from research_tuner.lib.evaluation.judge.parse import UnreadableJudgement, parse_judgement
from research_tuner.lib.evaluation.judge.prompts import CRITERIA, RETRY_REMINDER
from research_tuner.lib.shared.sections import SECTIONS
from research_tuner.lib.teacher.base import Usage
from research_tuner.resources import PipelineSettings, TeacherResource
from research_tuner.settings import load_profile
from research_tuner_tests.support.openai_server import FakeOpenAIServer, Fault

FULL = "\n\n".join(f"## {s}\nA concrete plan for this part." for s in SECTIONS)
TWO = "## Hypothesis\nSleep improves recall.\n\n## Methodology\nA randomised trial."
NONE = "Sleep is important and people should study it more."
# The fake judge's scores (see openai_server.fake_judgement): present sections score 5, 4, 3, 5, 4, 3, 5 in
# order, absent ones 0, feasibility = sections present (max 5); judge_score is the mean of the 8.
EXPECTED = {
    FULL: ([5, 4, 3, 5, 4, 3, 5, 5], 34 / 8),
    TWO: ([5, 4, 0, 0, 0, 0, 0, 2], 11 / 8),
    NONE: ([0, 0, 0, 0, 0, 0, 0, 0], 0.0),
}


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def generations(rows: list[tuple[str, str, str]], field: str = "arts") -> pd.DataFrame:
    """(question_id, model, response) -> an eval_generations-shaped frame."""
    return pd.DataFrame([{
        "question_id": qid, "field": field, "subdomain": "music", "question": f"Question {qid}?",
        "reference": FULL, "model": model, "response": response, "finish_reason": "stop",
        "completion_tokens": len(response.split()),
    } for qid, model, response in rows])


def judge_setup(server, tmp_path, monkeypatch, **judge):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    overrides = {"teacher": {"base_url": server.base_url, "max_concurrency": 4},
                 "evaluation": {"judge": {"enabled": True, **judge}}}
    settings = PipelineSettings(profile="paper", **overrides, work_dir=str(tmp_path / "work"))
    resource = TeacherResource()
    teacher = resource.get_judge(settings)
    teacher.inner.backoff_base_s = 0.01
    return teacher, settings.resolve().evaluation.judge


def assert_scores(row, response):
    scores, mean = EXPECTED[response]
    assert row["status"] == "ok" and row["error"] == ""
    assert [row[f"judge_{c}"] for c in CRITERIA] == scores
    assert row["judge_score"] == pytest.approx(mean)


def test_parser_reads_json_fenced_nested_and_prose():
    want = dict(zip(CRITERIA, [4, 3, 2, 1, 5, 0, 2, 3]))
    as_json = '{"rationale": "fine", ' + ", ".join(f'"{k}": {v}' for k, v in want.items()) + "}"
    assert parse_judgement(as_json) == (want, "fine")
    assert parse_judgement(f"Here you go:\n```json\n{as_json}\n```")[0] == want
    nested = '{"scores": {' + ", ".join(f'"{k.replace("_", " ").title()}": "{v}/5"' for k, v in want.items()) + "}}"
    assert parse_judgement(nested)[0] == want
    prose = ("Assessment:\n1. Hypothesis: 4/5\n2. **Methodology**: 3\n- Key steps - 2 out of 5\n"
             "| Data collection plan | 1 |\nData analysis plan = 5\nChallenges & limitations: 0\n"
             "Ethics: 2\nFeasibility: 3")
    assert parse_judgement(prose)[0] == want


@pytest.mark.parametrize("text, reason", [
    ("A solid proposal, I'd say 4.", "no score for hypothesis"),
    ('{"hypothesis": 4, "methodology": 3}', "no score for key_steps"),
    ('{"rationale": "", ' + ", ".join(f'"{c}": 7' for c in CRITERIA) + "}", "7 is outside 0-5"),
    ('{"rationale": "", ' + ", ".join(f'"{c}": 3.5' for c in CRITERIA) + "}", "not an integer"),
    ('{"rationale": "", ' + ", ".join(f'"{c}": "good"' for c in CRITERIA) + "}", "not a number"),
])
def test_parser_never_invents_a_score(text, reason):
    with pytest.raises(UnreadableJudgement, match=reason):
        parse_judgement(text)


def test_scores_come_back_as_structured_output_and_a_rerun_sends_nothing(server, tmp_path, monkeypatch):
    teacher, cfg = judge_setup(server, tmp_path, monkeypatch)
    frame = generations([("q1", "base", NONE), ("q1", "fine_tuned", FULL), ("q2", "base", TWO),
                         ("q2", "fine_tuned", FULL)])
    usage = Usage()
    table = judge_responses(teacher, frame, cfg, usage)
    for row, response in zip(table.to_dict("records"), frame["response"]):
        assert_scores(row, response)
    assert (table["judge_model"] == "gpt-4.1-mini").all() and (table["attempts"] == 1).all()
    assert server.answered == 4 and usage.requests_sent == 4 and usage.failures == 0
    for body in server.bodies:
        assert body["temperature"] == 0 and body["response_format"]["type"] == "json_schema"
        assert body["model"] == "gpt-4.1-mini"
        assert "Grade the RESPONSE" in body["messages"][1]["content"] and FULL in body["messages"][1]["content"]

    again = Usage()
    rerun = judge_responses(teacher, frame, cfg, again)
    assert server.requests == 4, "a rerun must send nothing already answered"
    assert again.cache_hits == 4 and again.requests_sent == 0
    pd.testing.assert_frame_equal(rerun, table)


def test_a_server_without_structured_output_is_read_by_the_fallback(server, tmp_path, monkeypatch):
    server.ignore_response_format = True
    teacher, cfg = judge_setup(server, tmp_path, monkeypatch)
    table = judge_responses(teacher, generations([("q1", "base", TWO), ("q1", "fine_tuned", FULL)]), cfg, Usage())
    answers = [text for (text,) in teacher.cache._db.execute("SELECT text FROM responses")]
    assert len(answers) == 2 and all(a.startswith("Here is my assessment") for a in answers)  # prose, no JSON
    assert_scores(table.iloc[0], TWO)
    assert_scores(table.iloc[1], FULL)


def test_an_unreadable_answer_is_asked_again_with_a_reminder(server, tmp_path, monkeypatch):
    teacher, cfg = judge_setup(server, tmp_path, monkeypatch)
    server.inject(Fault(text="Looks good to me!"))
    usage = Usage()
    table = judge_responses(teacher, generations([("q1", "fine_tuned", TWO)]), cfg, usage)
    assert_scores(table.iloc[0], TWO)
    assert table.iloc[0]["attempts"] == 2 and usage.retries == 1 and usage.failures == 0
    assert server.requests == 2
    assert RETRY_REMINDER not in server.bodies[0]["messages"][1]["content"]
    assert RETRY_REMINDER in server.bodies[1]["messages"][1]["content"]


def test_a_permanently_unreadable_answer_is_recorded_as_a_failure(server, tmp_path, monkeypatch):
    server.malformed_judgements = True
    teacher, cfg = judge_setup(server, tmp_path, monkeypatch, max_retries=2)
    frame = generations([("q1", "base", NONE), ("q1", "fine_tuned", FULL)])
    usage = Usage()
    table = judge_responses(teacher, frame, cfg, usage)
    assert (table["status"] == "failed").all()
    assert table["error"].str.startswith("unreadable: no score for").all()
    assert table[[f"judge_{c}" for c in CRITERIA] + ["judge_score"]].isna().all().all(), "no invented score"
    assert (table["attempts"] == 3).all() and server.requests == 2 * 3
    assert usage.failures == 2 and usage.failure_reasons == {"judge unreadable": 2}
    rerun = judge_responses(teacher, frame, cfg, Usage())
    assert server.requests == 6 and (rerun["status"] == "failed").all()


def test_the_judge_model_can_differ_from_the_teacher(server, tmp_path, monkeypatch):
    teacher, cfg = judge_setup(server, tmp_path, monkeypatch, model="gpt-4.1")
    table = judge_responses(teacher, generations([("q1", "base", TWO)]), cfg, Usage())
    assert server.bodies[-1]["model"] == "gpt-4.1" and table.iloc[0]["judge_model"] == "gpt-4.1"
    teacher_only, _ = judge_setup(server, tmp_path, monkeypatch)  # same cache, teacher's model: a new key
    judge_responses(teacher_only, generations([("q1", "base", TWO)]), cfg, Usage())
    assert server.requests == 2 and server.bodies[-1]["model"] == "gpt-4.1-mini"


# --- through the Dagster assets ------------------------------------------------------------------------

ALL_ASSETS = dg.load_assets_from_modules(STAGES)
FIELD_ROWS = [("q1", "base", NONE), ("q1", "fine_tuned", FULL), ("q2", "base", TWO), ("q2", "fine_tuned", FULL)]


def materialize_evaluation(server, tmp_path, judge_enabled: bool):
    """eval_judgements (eval_preferences off) and eval_scores for 'arts', then eval_report, over eval_generations
    already in the lake."""
    lake = tmp_path / "lake"
    write_parquet_atomic(generations(FIELD_ROWS), UPath(lake) / "eval_generations" / "arts.parquet")
    resources = {
        "settings": PipelineSettings(
            profile="paper", work_dir=str(tmp_path / "work"), teacher={"base_url": server.base_url},
            evaluation={"judge": {"enabled": judge_enabled, "pairwise": False}}),
        "teacher": TeacherResource(),
        "io_manager": ParquetLakeIOManager(root=str(lake)),
    }
    field = dg.materialize(ALL_ASSETS, selection=["eval_judgements", "eval_preferences", "eval_scores"],
                           partition_key="arts",
                           resources=resources)
    report = dg.materialize(ALL_ASSETS, selection=["eval_report"], resources=resources)
    assert field.success and report.success
    read = lambda *parts: read_parquet(UPath(lake).joinpath(*parts))  # noqa: E731
    return (read("eval_judgements", "arts.parquet"), read("eval_report", "scores_by_field.parquet"),
            read("eval_report", "comparison.parquet"), field, lake, read("eval_scores", "arts.parquet"))


def test_assets_with_the_judge_on(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    judgements, scores, comparison, result, lake, per_answer = materialize_evaluation(server, tmp_path, True)
    assert per_answer.set_index(["question_id", "model"]).loc[("q2", "base"), "judge_score"] == pytest.approx(11 / 8)
    assert server.answered == 4 and (judgements["status"] == "ok").all()
    scores = scores.set_index("model")
    assert scores.loc["base", "judge_score"] == pytest.approx((0.0 + 11 / 8) / 2)
    assert scores.loc["fine_tuned", "judge_score"] == pytest.approx(34 / 8)
    assert scores["judge_n"].tolist() == [2, 2] and scores["judge_failed"].tolist() == [0, 0]
    judged = comparison[(comparison["metric"] == "judge_score") & (comparison["field"] == "all")].iloc[0]
    assert judged["n"] == 2 and judged["delta"] == pytest.approx(34 / 8 - 11 / 16)
    # two paired differences, 34/8 (q1) and 23/8 (q2): a bootstrap mean is one of 23/8, 3.5625 and 34/8, with the
    # extremes drawn a quarter of the time each, so the 95% interval runs from one difference to the other
    assert (judged["delta_ci_low"], judged["delta_ci_high"]) == pytest.approx((23 / 8, 34 / 8))
    assert (lake / "eval_report" / "figure3_judge_score.png").stat().st_size > 1000
    meta = result.asset_materializations_for_node("eval_judgements")[0].metadata
    assert meta["enabled"].value is True and meta["judge/requests_sent"].value == 4

    materialize_evaluation(server, tmp_path, judge_enabled=True)
    assert server.requests == 4, "rematerializing sends nothing already answered"


def test_assets_with_the_judge_off_send_nothing_and_write_no_score(server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the judge being off must not even need a key
    judgements, scores, comparison, result, _, per_answer = materialize_evaluation(server, tmp_path, False)
    assert server.requests == 0
    assert judgements.empty and "judge_score" in judgements.columns
    assert not any(c.startswith("judge") for c in scores.columns)
    assert per_answer["judge_score"].isna().all() and (per_answer["judge_status"] == "").all()
    assert "judge_score" not in set(comparison["metric"])
    meta = result.asset_materializations_for_node("eval_judgements")[0].metadata
    assert meta["enabled"].value is False


def test_demo_profile_keeps_the_judge_off():
    assert load_profile("demo").evaluation.judge.enabled is False
    assert load_profile("paper").evaluation.judge.enabled is False
