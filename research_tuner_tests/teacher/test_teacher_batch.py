"""Batch mode against the loopback Batch API: submit, answers cached at half price, follow-up batch, resume."""

import json
import signal

import pytest

from research_tuner.lib.generation.approaches import generate_approaches
from research_tuner.lib.teacher.base import TeacherConfigError, Usage
from research_tuner.lib.teacher.factory import build_teacher
from research_tuner.settings import load_profile
from research_tuner_tests.support.loopback_teacher import loopback_teacher
from research_tuner_tests.support.openai_server import FakeOpenAIServer, Fault, closed_port_url
from research_tuner_tests.support.teacher_worker import start_worker, synthetic_questions, wait_until


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def batch_teacher(server, tmp_path, monkeypatch, **extra):
    return loopback_teacher(server, tmp_path, monkeypatch, mode="batch", batch_poll_interval_s=0.02, **extra)


def test_batch_answers_land_in_the_cache_at_half_price_and_invalid_ones_go_to_a_follow_up(
        server, tmp_path, monkeypatch):
    teacher, cfg = batch_teacher(server, tmp_path, monkeypatch)
    questions = synthetic_questions(12)
    server.inject(Fault(text="## Hypothesis\nonly one"), Fault(finish_reason="length"))  # the first two lines
    usage = Usage()
    valid, failed = generate_approaches(teacher, questions, cfg, usage)
    assert len(valid) == 12 and failed.empty
    assert server.paths["POST /v1/files"] == 2 and server.paths["POST /v1/batches"] == 2, "one follow-up batch"
    lines = [json.loads(x) for x in server.files["file-1"].decode().splitlines()]
    assert len(lines) == 12 and lines[0]["url"] == "/v1/chat/completions" and lines[0]["body"]["model"] == cfg.model
    follow_up = [f for f, body in server.files.items() if body.count(b"custom_id") == 2 and b'"url"' in body]
    assert follow_up, "the follow-up batch holds only the two invalid answers, with new seeds"
    assert usage.prompt_tokens == 0 and usage.batch_prompt_tokens > 0
    online = (usage.batch_prompt_tokens * cfg.price_input_per_mtok
              + usage.batch_completion_tokens * cfg.price_output_per_mtok) / 1e6
    assert usage.cost_usd(cfg.price_input_per_mtok, cfg.price_output_per_mtok) == pytest.approx(online / 2)
    # A rerun finds everything in the cache: no upload, no batch.
    again = Usage()
    valid2, _ = generate_approaches(teacher, questions, cfg, again)
    assert again.cache_hits == 12 + 2 and server.paths["POST /v1/batches"] == 2  # the two retries are cached too
    assert valid2.equals(valid)


def worker(server, tmp_path, out: str):
    return start_worker(server.base_url, tmp_path, out, 30,
                        ["teacher.mode=batch", "teacher.batch_poll_interval_s=0.05"])


@pytest.mark.slow
def test_a_killed_batch_run_resumes_polling_instead_of_resubmitting(server, tmp_path):
    server.batch_release.clear()  # batches stay in progress until released
    first = worker(server, tmp_path, "first.json")
    wait_until(lambda: server.paths["GET /v1/batches/{id}"] >= 2)  # submitted, recorded, being polled
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    polls = server.paths["GET /v1/batches/{id}"]

    second = worker(server, tmp_path, "second.json")
    wait_until(lambda: server.paths["GET /v1/batches/{id}"] >= polls + 2)  # the restart polls the same batch
    assert server.paths["POST /v1/batches"] == 1 and server.paths["POST /v1/files"] == 1
    server.batch_release.set()
    output = second.communicate(timeout=120)[0].decode()
    assert second.returncode == 0, output
    result = json.loads((tmp_path / "second.json").read_text())
    assert len(result["valid"]) == 30 and not result["failed"]
    assert server.paths["POST /v1/batches"] == 1 and server.paths["POST /v1/files"] == 1, "never submitted twice"
    assert len(server.batches) == 1 and server.duplicated_successes == 0
    assert result["usage"]["batch_completion_tokens"] > 0


def test_a_batch_created_but_not_recorded_is_found_again_not_resubmitted(server, tmp_path, monkeypatch):
    from research_tuner.lib.teacher.batch import CHAT_ENDPOINT, BatchTeacher

    def create_then_die(self, file_id, maybe_exists):
        self._client.batches.create(input_file_id=file_id, endpoint=CHAT_ENDPOINT, completion_window="24h")
        raise KeyboardInterrupt("the process dies before the batch id is written down")

    questions = synthetic_questions(5)
    teacher, cfg = batch_teacher(server, tmp_path, monkeypatch)
    with monkeypatch.context() as patched:
        patched.setattr(BatchTeacher, "_create", create_then_die)
        with pytest.raises(KeyboardInterrupt):
            generate_approaches(teacher, questions, cfg, Usage())
    teacher.close()
    restarted, cfg = batch_teacher(server, tmp_path, monkeypatch)
    valid, failed = generate_approaches(restarted, questions, cfg, Usage())
    assert len(valid) == 5 and failed.empty
    assert server.paths["POST /v1/batches"] == 1 and server.paths["POST /v1/files"] == 1
    assert restarted.inner.batches_resumed == 1 and restarted.inner.batches_created == 0


def test_a_batch_server_that_is_not_there_or_refuses_the_key_stops_with_the_url(server, tmp_path, monkeypatch):
    questions = synthetic_questions(3)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    url = closed_port_url()
    cfg = load_profile("paper", overrides={"teacher": {"base_url": url, "mode": "batch"}}).teacher
    teacher = build_teacher(cfg, tmp_path / "closed.sqlite")
    teacher.inner._client = teacher.inner._client.with_options(max_retries=0)  # the client's own backoff: seconds
    with pytest.raises(TeacherConfigError, match=rf"cannot reach the batch server at {url}/? \(connection refused\)"):
        generate_approaches(teacher, questions, cfg, Usage())
    assert teacher.inner.budget.reserved_usd == pytest.approx(0), "nothing stays reserved for a batch that was never uploaded"
    server.expected_key = "sk-another-key"
    teacher, cfg = batch_teacher(server, tmp_path, monkeypatch)
    with pytest.raises(TeacherConfigError, match="refused the batch upload \\(AuthenticationError, HTTP 401\\)"):
        generate_approaches(teacher, questions, cfg, Usage())
    assert server.paths["POST /v1/batches"] == 0
