"""The OpenAI-compatible teacher against a real HTTP server on loopback: parsing, retries, fatal errors, cache."""

import pytest

from research_tuner.lib.generation.approaches import generate_approaches
from research_tuner.lib.generation.questions import generate_questions
from research_tuner.lib.generation.question_strategies import parse_question_list
from research_tuner.lib.shared.sections import missing_sections
from research_tuner.lib.teacher.base import TeacherConfigError, Usage
from research_tuner.lib.teacher.credentials import api_key_for
from research_tuner.lib.teacher.factory import build_teacher
from research_tuner.settings import SettingsError, load_profile
from research_tuner.lib.teacher.base import TeacherRequest
from research_tuner_tests.support.openai_server import FakeOpenAIServer, Fault, closed_port_url


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def paper_teacher_settings(base_url: str, **extra):
    overrides = {"teacher": {"base_url": base_url, "max_concurrency": 4, "questions_per_request": 5, **extra}}
    return load_profile("paper", overrides=overrides).teacher


def make_teacher(server, tmp_path, monkeypatch, **extra):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    cfg = paper_teacher_settings(server.base_url, **extra)
    teacher = build_teacher(cfg, tmp_path / "cache.sqlite")
    teacher.inner.backoff_base_s = 0.01
    return teacher, cfg


def test_questions_come_back_as_structured_output(server, tmp_path, monkeypatch):
    teacher, cfg = make_teacher(server, tmp_path, monkeypatch)
    usage = Usage()
    frame = generate_questions(teacher, "formal_sciences", ["logic", "statistics"], cfg, 10, usage)
    assert len(frame) == 20
    assert set(frame["subdomain"]) == {"logic", "statistics"}
    assert frame["question"].str.endswith("?").all()
    assert server.answered == 4  # 2 subdomains x 10 questions / 5 per request
    assert all(b["response_format"]["type"] == "json_schema" for b in server.bodies)
    assert usage.requests_sent == 4 and usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_fallback_parser_reads_numbered_lines():
    text = "Here you go:\n1. How does X affect Y in small towns?\n2) Why do birds sing at dawn in cities?\nThanks"
    assert parse_question_list(text) == [
        "How does X affect Y in small towns?",
        "Why do birds sing at dawn in cities?",
    ]


def test_transient_faults_are_retried_and_rerun_hits_the_cache(server, tmp_path, monkeypatch):
    teacher, cfg = make_teacher(server, tmp_path, monkeypatch)
    server.inject(Fault(status=429, headers={"Retry-After": "0"}), Fault(status=500), Fault(drop=True))
    usage = Usage()
    frame = generate_questions(teacher, "arts", ["music"], cfg, 10, usage)
    assert len(frame) == 10
    assert usage.retries == 3 and usage.failures == 0
    seen = server.requests
    again = Usage()
    frame2 = generate_questions(teacher, "arts", ["music"], cfg, 10, again)
    assert server.requests == seen, "a rerun of a complete partition must send nothing"
    assert again.cache_hits == 2 and again.requests_sent == 0
    assert frame2.equals(frame)


def test_bad_key_stops_at_once(server, tmp_path, monkeypatch):
    server.expected_key = "sk-the-right-one"
    teacher, cfg = make_teacher(server, tmp_path, monkeypatch)
    with pytest.raises(TeacherConfigError, match="AuthenticationError"):
        generate_questions(teacher, "arts", ["music", "dance", "theatre"], cfg, 25, Usage())
    assert server.requests <= cfg.max_concurrency, "no more requests once the key is known to be wrong"


def test_unknown_model_stops_with_its_name(server, tmp_path, monkeypatch):
    server.known_models = {"gpt-4.1-mini"}
    teacher, cfg = make_teacher(server, tmp_path, monkeypatch, model="gpt-9-imaginary")
    with pytest.raises(TeacherConfigError, match="gpt-9-imaginary"):
        generate_questions(teacher, "arts", ["music"], cfg, 5, Usage())


def test_a_server_never_reached_stops_the_step_with_its_url(tmp_path, monkeypatch):
    """A closed port is no blip: after one request's retries the whole step stops (no step retry minutes later),
    and the error names the URL instead of counting APIConnectionErrors."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    url = closed_port_url()
    cfg = paper_teacher_settings(url, max_retries=2)
    teacher = build_teacher(cfg, tmp_path / "cache.sqlite")
    teacher.inner.backoff_base_s = 0.01
    with pytest.raises(TeacherConfigError, match=rf"cannot reach the teacher server at {url}/? \(connection refused, "
                                                 r"3 attempt\(s\)\): start it, or fix teacher.base_url"):
        generate_questions(teacher, "arts", ["music", "dance", "theatre"], cfg, 25, Usage())


def test_a_server_that_answered_once_and_went_away_is_retried_as_a_fault(tmp_path, monkeypatch):
    """Once the server has answered, a refused connection is an outage the step retry may outlast: a failure."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    request = TeacherRequest(({"role": "user", "content": "Say hi."},), 1500, 0.0, 1.0, 0)  # room for its answer
    with FakeOpenAIServer() as server:
        cfg = paper_teacher_settings(server.base_url, max_retries=1)
        teacher = build_teacher(cfg, tmp_path / "cache.sqlite")
        teacher.inner.backoff_base_s = 0.01
        assert teacher.inner.complete([request], Usage())[0].text
    usage = Usage()
    [result] = teacher.inner.complete([request], usage)
    assert result.reason == "APIConnectionError" and usage.failure_reasons == {"APIConnectionError": 1}


def test_invalid_approaches_are_retried_then_recorded_not_written(server, tmp_path, monkeypatch):
    teacher, cfg = make_teacher(server, tmp_path, monkeypatch, max_retries=1)
    questions = generate_questions(teacher, "humanities", ["history"], cfg, 3, Usage())
    server.inject(
        Fault(finish_reason="length"),               # question 1: truncated, then fine on retry
        Fault(text="## Hypothesis\nonly one"),         # question 2: missing sections ...
        Fault(refusal=True),                           # question 3: refused ...
        Fault(text=""),                                # ... question 2 again: empty
        Fault(text="no headings at all"),              # ... question 3 again: still invalid
    )
    usage = Usage()
    valid, failed = generate_approaches(teacher, questions, cfg, usage)
    assert len(valid) == 1 and len(failed) == 2
    assert not missing_sections(valid["approach"].iloc[0])
    assert set(failed["question_id"]).isdisjoint(valid["question_id"])
    assert usage.failures == 2 and usage.retries == 3


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(SettingsError, match="OPENAI_API_KEY is not set"):
        api_key_for(load_profile("paper").teacher)


def test_self_hosted_server_needs_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = load_profile("paper", overrides={"teacher": {"base_url": "http://127.0.0.1:8000/v1"}}).teacher
    assert api_key_for(cfg) == "not-needed"
