"""The server probe against a real loopback server: a wrong key, an unknown model, a closed port, a server without
a model list or a Batch API, each found with one cheap request, named with the URL and what to fix, no key shown."""

from __future__ import annotations

import time

import pytest

from research_tuner.lib.teacher.probe import Keys, probe_server
from research_tuner.settings import load_profile
from research_tuner_tests.support.openai_server import FakeOpenAIServer, closed_port_url

SECRET = "sk-wrong-but-secret-4711"


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        srv.known_models = {"gpt-4.1-mini", "qwen2.5:7b", "llama3:latest"}
        yield srv


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "JUDGE_KEY"):
        monkeypatch.delenv(var, raising=False)


def teacher(base_url: str | None, **extra):
    return load_profile("paper", overrides={"teacher": {"base_url": base_url, **extra}}).teacher


def levels(findings) -> list[str]:
    return [f.level for f in findings]


def test_a_good_server_is_one_models_request(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fine")
    server.expected_key = "sk-fine"
    findings = probe_server(teacher(server.base_url))
    assert levels(findings) == ["ok"] and server.base_url in findings[0].message
    assert server.paths == {"GET /v1/models": 1}  # nothing else was sent: no completion paid for


def test_a_wrong_key_names_the_url_and_the_variable_never_the_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.expected_key = "sk-the-right-one"
    [finding] = probe_server(teacher(server.base_url))
    assert finding.level == "problem"
    assert f"the teacher server {server.base_url} refused the API key in OPENAI_API_KEY (HTTP 401)" in finding.message
    assert SECRET not in finding.message and SECRET[-4:] not in finding.message  # the server echoed its ends


def test_a_server_that_wants_a_key_says_which_variable_is_unset(server):
    server.expected_key = "sk-the-right-one"
    [finding] = probe_server(teacher(server.base_url))
    assert finding.level == "problem" and "wants an API key (HTTP 401) and OPENAI_API_KEY is not set" in finding.message


def test_an_unknown_model_lists_what_the_server_serves(server):
    [finding] = probe_server(teacher(server.base_url, model="gpt-9-imaginary"))
    assert finding.level == "problem"
    assert f"{server.base_url} does not serve teacher.model='gpt-9-imaginary'" in finding.message
    assert "it serves gpt-4.1-mini, llama3:latest, qwen2.5:7b" in finding.message
    assert levels(probe_server(teacher(server.base_url, model="llama3"))) == ["ok"]  # Ollama's implied :latest


def test_a_closed_port_fails_in_seconds_with_the_url():
    url = closed_port_url()
    started = time.monotonic()
    [finding] = probe_server(teacher(url))
    assert time.monotonic() - started < 5
    assert finding.level == "problem"
    assert f"cannot reach the teacher server {url} (connection refused): start it, or fix teacher.base_url" \
        in finding.message


def test_a_url_from_openai_base_url_names_that_variable(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url())
    [finding] = probe_server(teacher(None))
    assert finding.level == "problem" and "fix OPENAI_BASE_URL" in finding.message


def test_openai_itself_out_of_reach_points_at_the_network(monkeypatch):
    """No base_url and no OPENAI_BASE_URL is OpenAI itself; 'start it' would be no advice there."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("HTTPS_PROXY", closed_port_url().removesuffix("/v1"))  # keeps the test off the internet
    [finding] = probe_server(teacher(None))
    assert finding.level == "problem" and "https://api.openai.com/v1" in finding.message
    assert "check this machine's network or proxy, or set teacher.base_url" in finding.message


def test_a_server_without_a_model_list_is_a_warning_not_a_refusal(server):
    server.known_models = None  # the fake then answers GET /models with 404, as a server without the route
    [finding] = probe_server(teacher(server.base_url))
    assert finding.level == "warning"
    assert "does not list its models (GET /models: HTTP 404)" in finding.message and "teacher.model" in finding.message


def test_a_broken_model_list_is_a_warning_with_the_servers_words_but_not_the_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.models_status = 502
    [finding] = probe_server(teacher(server.base_url))
    assert finding.level == "warning" and "answered GET /models with HTTP 502 (upstream failed for Bearer ***)" \
        in finding.message
    assert SECRET not in finding.message


def test_batch_mode_needs_the_batch_api(server):
    assert levels(probe_server(teacher(server.base_url, mode="batch"))) == ["ok", "ok"]
    server.batch_api = False
    findings = probe_server(teacher(server.base_url, mode="batch"))
    assert levels(findings) == ["ok", "problem"]
    assert "has no Batch API (GET /batches: HTTP 404): set teacher.mode=online" in findings[1].message


def test_the_judges_findings_name_the_judges_keys(server):
    keys = Keys("evaluation.judge.model", "teacher.base_url", "evaluation.judge.api_key_env", "evaluation.judge.mode")
    [finding] = probe_server(teacher(server.base_url, model="judge-70b"), keys, role="evaluation.judge")
    assert "the evaluation.judge server" in finding.message and "evaluation.judge.model='judge-70b'" in finding.message


def test_a_password_in_the_url_is_not_printed():
    url = closed_port_url().replace("http://", "http://alice:hunter2@")
    [finding] = probe_server(teacher(url))
    assert "http://***@127.0.0.1:" in finding.message and "hunter2" not in finding.message
