"""Rate limits and the budget cap against the loopback server: headers followed, limit lowered mid-run, cap kept."""

import threading

import pytest

from research_tuner.lib.generation.approaches import generate_approaches
from research_tuner.lib.generation.questions import generate_questions
from research_tuner.lib.teacher.base import TeacherRequest, TeacherResponse, Usage
from research_tuner.lib.teacher.budget import BudgetExceeded, worst_case_usd
from research_tuner.lib.teacher.ratelimit import limit_reports, parse_duration, retry_after_s
from research_tuner_tests.support.loopback_teacher import loopback_teacher
from research_tuner_tests.support.openai_server import FakeOpenAIServer, RateLimit, format_duration


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def teacher_for(server, tmp_path, monkeypatch, **extra):
    return loopback_teacher(server, tmp_path, monkeypatch, **{"max_concurrency": 16, "questions_per_request": 5,
                                                              **extra})


def requests(n: int, max_tokens: int = 50) -> list[TeacherRequest]:
    return [TeacherRequest(({"role": "user", "content": f"Write one section number {i}."},), max_tokens, 0.5, 1.0, i)
            for i in range(n)]


def test_openai_reset_formats_parse():
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1s") == 1.0
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("0.5") == 0.5
    assert parse_duration("soon") is None
    for seconds in (0.02, 0.999, 1.5, 61.0, 3723.5):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=0.001)
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert retry_after_s({"retry-after": "2"}) == 2.0
    report = limit_reports({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
                            "x-ratelimit-reset-requests": "120ms"})["requests"]
    assert (report.limit, report.remaining, report.reset_s) == (500, 499, pytest.approx(0.12))


def test_a_gate_whose_window_end_is_unknown_still_opens_for_a_probe():
    from research_tuner.lib.teacher.ratelimit import LimitReport, WindowGate

    gate, t = WindowGate(), 1000.0
    gate.observe(LimitReport(limit=300, remaining=100, reset_s=0.4), granted_at=0.0, sent_at=t, now=t)
    assert gate.wait_s(72, t + 0.41) == 0.0  # the window reset: full again
    for _ in range(4):
        gate.take(72)
    # 12 tokens left, the new window's end not reported yet, and (say) every request in flight refused:
    # the gate must not wait for a report that will never come.
    assert gate.wait_s(72, t + 0.42) > 0
    assert gate.wait_s(72, t + 0.80) > 0
    assert gate.wait_s(72, t + 0.41 + 0.4 + 1e-6) == 0.0  # one window length after the reset: probe


def test_follows_the_servers_limit_from_its_headers(server, tmp_path, monkeypatch):
    server.set_rate_limit(RateLimit(requests=8, window_s=0.8))
    teacher, _ = teacher_for(server, tmp_path, monkeypatch)  # 16 in flight: twice what a window allows
    usage = Usage()
    results = teacher.complete(requests(64), usage)
    assert all(isinstance(r, TeacherResponse) for r in results)
    assert server.answered == 64 and server.duplicated_successes == 0
    # Before the first answer the client knows nothing and sends 16 at once: 8 are refused. After that the
    # headers pace it; a request landing on a window boundary may still be refused now and then, more often on a
    # loaded machine (17 were seen once with 0.4 s windows). A client blind to the headers, 16 in flight, would by
    # the arithmetic be refused about 8 per window over the 8 windows: some 64. The bound sits between the two.
    assert 8 <= server.rate_limited <= 28
    assert usage.rate_limited == server.rate_limited


def test_follows_the_servers_token_limit_too(server, tmp_path, monkeypatch):
    server.set_rate_limit(RateLimit(requests=1000, tokens=300, window_s=0.4))  # ~5 requests of ~56 tokens
    teacher, _ = teacher_for(server, tmp_path, monkeypatch, max_concurrency=8)
    results = teacher.complete(requests(30), Usage())
    assert all(isinstance(r, TeacherResponse) for r in results)
    assert server.answered == 30
    assert server.rate_limited <= 8  # the first burst, before any header was seen


def test_a_limit_lowered_mid_run_is_followed(server, tmp_path, monkeypatch):
    server.set_rate_limit(RateLimit(requests=10, window_s=0.4))
    teacher, _ = teacher_for(server, tmp_path, monkeypatch, max_concurrency=10)
    lowered = threading.Event()
    refused_before = []

    def lower_at_half(done: int, total: int) -> None:
        if done >= total // 2 and not lowered.is_set():
            refused_before.append(server.rate_limited)
            server.set_rate_limit(RateLimit(requests=3, window_s=0.4))
            lowered.set()

    results = teacher.complete(requests(60), Usage(), progress=lower_at_half)
    assert all(isinstance(r, TeacherResponse) for r in results)
    assert server.answered == 60
    # The current window is capped by the lower 'remaining' and the next ones start at the new limit:
    # at most the requests already in flight when the limit fell are refused.
    assert server.rate_limited - refused_before[0] <= 10


def test_configured_rate_alone_keeps_below_a_silent_servers_limit(server, tmp_path, monkeypatch):
    server.set_rate_limit(RateLimit(requests=5, window_s=0.5))
    server.send_limit_headers = False  # a server that enforces a limit without saying so
    teacher, _ = teacher_for(server, tmp_path, monkeypatch, requests_per_minute=8 * 60)  # 8/s < 10/s allowed
    results = teacher.complete(requests(24), Usage())
    assert all(isinstance(r, TeacherResponse) for r in results)
    # Paced evenly at 8/s, no 0.5 s window gets more than 5. Without the configured rate, 16 in flight
    # would overflow every window.
    assert server.rate_limited <= 1


def test_budget_cap_stops_before_it_is_passed_and_a_rerun_sends_only_the_rest(server, tmp_path, monkeypatch):
    teacher, cfg = teacher_for(server, tmp_path, monkeypatch, max_concurrency=2)
    questions = generate_questions(teacher, "humanities", ["history"], cfg, 20, Usage())
    assert len(questions) == 20
    sent_for_questions = server.answered
    from research_tuner.lib.generation.approach_strategies import WholeApproach

    one = worst_case_usd(WholeApproach().request(questions.iloc[0].to_dict(), None, cfg, 0), 0.40, 1.60)
    cap = 1.6 * one  # one request's worst case at a time, and the real costs (far below it) add up
    capped, cfg_capped = teacher_for(server, tmp_path, monkeypatch, max_concurrency=2, budget_usd=cap)
    usage = Usage()
    with pytest.raises(BudgetExceeded, match=r"spent .* of the \$.* cap.*teacher.budget_usd") as stop:
        generate_approaches(capped, questions, cfg_capped, usage)
    paid = server.answered - sent_for_questions
    assert 1 <= paid < 20, "the cap holds before the request that could pass it"
    assert capped.inner.budget.spent_usd <= cap
    assert "in the response cache" in str(stop.value)
    # Raise the cap and rerun: the approaches already answered come from the cache, only the rest is sent.
    more, cfg_more = teacher_for(server, tmp_path, monkeypatch, max_concurrency=2, budget_usd=100 * cap)
    again = Usage()
    valid, failed = generate_approaches(more, questions, cfg_more, again)
    assert len(valid) == 20 and failed.empty
    assert again.cache_hits == paid and again.requests_sent == 20 - paid
    assert server.duplicated_successes == 0


def test_a_reached_budget_fails_the_step_at_once_without_dagster_retries(server, tmp_path, monkeypatch):
    import dagster as dg
    import pandas as pd

    from research_tuner.questions.assets import raw_questions
    from research_tuner.resources import PipelineSettings, TeacherResource

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    settings = PipelineSettings(profile="paper", work_dir=str(tmp_path),
                                teacher={"base_url": server.base_url, "budget_usd": 0.001})
    context = dg.build_asset_context(partition_key="humanities|0")
    with pytest.raises(dg.Failure) as failure:
        raw_questions(context, settings=settings, teacher=TeacherResource(cache_path=str(tmp_path / "c.sqlite")),
                      subdomains=pd.DataFrame({"subdomain": ["history"]}))
    assert failure.value.allow_retries is False
    assert "teacher budget reached" in failure.value.description and "budget_usd" in failure.value.description
    assert server.requests == 0, "a question list's worst case ($0.0064) is over the cap: nothing is sent"
