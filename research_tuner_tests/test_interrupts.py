"""SIGTERM and Ctrl-C stop a run at once: no retry of an interrupted step, a clear message, nothing lost."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

from research_tuner.interrupts import INTERRUPTED, stop_on_interrupt
from research_tuner.lake import read_parquet
from research_tuner.lib.teacher.openai_api import run_interruptibly
from research_tuner_tests.support.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[1]


def test_an_interrupt_inside_an_event_loop_callback_is_not_swallowed():
    """asyncio logs and drops a BaseException raised in a plain callback; the teacher's loop re-raises it."""

    def interrupt():
        raise dg.DagsterExecutionInterruptedError()

    async def long_request():
        asyncio.get_running_loop().call_soon(interrupt)
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(dg.DagsterExecutionInterruptedError):
        run_interruptibly(long_request())
    assert time.monotonic() - started < 5


def test_an_interrupted_step_is_not_retried():
    attempts = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2, delay=30))
    @stop_on_interrupt
    def slow_teacher_step(context: dg.AssetExecutionContext) -> int:
        attempts.append(context.retry_number)
        raise dg.DagsterExecutionInterruptedError()  # what Dagster's signal handler raises inside a step

    started = time.monotonic()
    result = dg.materialize([slow_teacher_step], raise_on_error=False)
    assert not result.success and attempts == [0]
    assert time.monotonic() - started < 10, "an interrupt must not wait for the retry policy's delay"
    failure = result.get_step_failure_events()[0]
    assert INTERRUPTED in failure.step_failure_data.user_failure_data.description


def test_an_interrupted_generator_asset_is_not_retried():
    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2, delay=30))
    @stop_on_interrupt
    def yielding_step():
        raise KeyboardInterrupt
        yield dg.Output(1)

    result = dg.materialize([yielding_step], raise_on_error=False)
    assert not result.success and len(result.get_step_failure_events()) == 1


def test_research_tuner_run_stops_promptly_on_sigterm(tmp_path, tiny_model_dir):
    signum = signal.SIGTERM  # Ctrl-C (SIGINT) takes the same path; one subprocess run keeps the suite fast
    lake, home = tmp_path / "lake", tmp_path / "dagster_home"
    home.mkdir()
    with FakeOpenAIServer() as server:
        server.latency_s = 120  # every teacher answer takes two minutes: raw_questions is a slow step
        env = {**os.environ, "OPENAI_API_KEY": "sk-test", "RESEARCH_TUNER_WORK": str(tmp_path / "work"),
               "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "research_tuner.cli", "run", "--profile", "paper", "--fields", "arts",
                   "--lake", str(lake), "--set", f"teacher.base_url={server.base_url}",
                   "--set", "generation.subdomains_per_field=1", "--set", f"training.base_model={tiny_model_dir}"]
        proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            def chats() -> int:  # completions asked for, not the preflight's GET /v1/models
                return server.paths["/v1/chat/completions"]

            deadline = time.monotonic() + 120
            while chats() == 0 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert chats() > 0, "the run never reached the teacher"
            time.sleep(0.5)
            proc.send_signal(signum)
            sent = time.monotonic()
            out, err = proc.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    name = signal.Signals(signum).name
    assert took < 10, f"took {took:.1f} s to stop"
    assert proc.returncode == 128 + signum, err[-2000:]
    assert f"Stopped by {name} during round_job [arts|0]" in err and "run the same command again to resume" in err
    # What was finished before the signal is still there and readable; nothing half-written appeared.
    assert len(read_parquet(UPath(lake) / "subdomains" / "arts" / "0.parquet")) == 1
    assert not (lake / "raw_questions").exists() or not any((lake / "raw_questions").iterdir())
    # The Dagster run ended as a failure, not left 'started' for ever.
    instance = dg.DagsterInstance.from_config(str(home))
    statuses = [run.status for run in instance.get_runs()]
    instance.dispose()
    assert statuses == [dg.DagsterRunStatus.FAILURE]


def test_a_second_signal_exits_at_once_even_if_the_first_was_swallowed(tmp_path):
    """Dagster only notes an interrupt while it waits out a retry delay; a second SIGTERM must still end it."""
    # As Dagster does while a job runs, the script replaces the Python handler with one that only notes the
    # signal, so the first SIGTERM is swallowed wherever it lands (a KeyboardInterrupt caught in a loop could
    # also land between two statements of the loop, outside its try, and end the script early)
    script = (
        "import signal, time\n"
        "from research_tuner.interrupts import StopSignals\n"
        "with StopSignals():\n"
        "    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # noted, not acted on\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None, "the first signal only asks the step to stop"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "SIGTERM received: stopping" in err and "SIGTERM received again: exiting now" in err
