"""A partition's teacher process killed with SIGKILL halfway, then rerun: nothing lost, nothing paid twice."""

import json
import signal
import time

import pytest

from research_tuner_tests.support.openai_server import FakeOpenAIServer
from research_tuner_tests.support.teacher_worker import start_worker, wait_until

N = 40


def worker(server, tmp_path, out: str):
    return start_worker(server.base_url, tmp_path, out, N, ["teacher.max_concurrency=4"],
                        env={"TEACHER_BACKOFF_S": "0.05"})


@pytest.mark.slow
def test_kill_mid_partition_then_rerun_resends_only_what_is_missing(tmp_path):
    with FakeOpenAIServer() as server:
        server.latency_s = 0.02
        # At half the server holds every new request, so the kill lands with requests in flight and every
        # answer already delivered stored (or not) by the client - no race decides the assertions.
        server.hold_after = N // 2
        first = worker(server, tmp_path, "first.json")
        wait_until(lambda: server.answered >= N // 2)
        time.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert first.returncode == -signal.SIGKILL
        assert not (tmp_path / "first.json").exists()
        answered_before = dict(server.successes)
        assert len(answered_before) == N // 2
        server.hold_after = None

        second = worker(server, tmp_path, "second.json")
        output = second.communicate(timeout=120)[0].decode()
        assert second.returncode == 0, output
        result = json.loads((tmp_path / "second.json").read_text())

    valid = result["valid"]
    assert len(valid) == N and not result["failed"], "0 lost"
    assert len({row["question_id"] for row in valid}) == N
    resent = {k for k, n in server.successes.items() if k in answered_before and n > answered_before[k]}
    assert not resent, "the rerun resent requests that had already succeeded"
    assert server.duplicated_successes == 0
    assert server.answered == N
    assert result["usage"]["cache_hits"] == N // 2 and result["usage"]["requests_sent"] == N // 2
