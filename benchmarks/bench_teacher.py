"""Benchmark: the project's teacher against the seed's way, a naive asyncio.gather and a careful plain client, in one
run.

All against the loopback OpenAI-compatible server (research_tuner_tests/support/openai_server.py) with a set
latency, a rate limit of R requests per W-second window (R/W*60 "per minute"; the window is short so
the whole benchmark takes minutes, not hours) and a share of injected faults (429 overload, 500,
dropped connections, hung requests that time out). The same 2,000 approach requests for every client:

  (a) the seed's way: one request at a time, the openai client's default retries, no cache. It is
      latency-bound, so it runs on a subset and the wall time is extrapolated (said in the output);
  (b) naive: asyncio.gather over every request, the openai client's default retries;
  (c) careful: what a careful user writes in ten lines with the plain openai client: an asyncio.Semaphore of
      the project's concurrency, the project's request timeout (below the injected hang) and more retries
      (`--careful-retries`, default 8) than the client's default 2; the client honours `retry-after`;
  (d) the project's teacher (rate limiter + retries + cache), the approaches generator as the asset runs it;
  (e) the project's teacher in a worker process killed with SIGKILL at about half, then rerun;
  (f) a phase in which the server lowers its limit mid-run: throughput before/after, time to follow.

The bound is what the server's limit allows: (requests it had to answer = successes + injected faults)
divided by the rate. Lost items are requests a client ended without an answer; duplicated successes are
requests the server answered more than once (a timed-out request retried after the server had answered it:
paid twice). Results go to benchmarks/results/teacher.json.

    python benchmarks/bench_teacher.py [--requests 2000] [--rate 40] [--window 1.0] [--only a,b,c,d,e,f]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import read_results, write_results  # noqa: E402

from research_tuner.lib.generation.approaches import generate_approaches
from research_tuner.lib.generation.approach_strategies import WholeApproach
from research_tuner.lib.teacher.base import Usage
from research_tuner.lib.teacher.factory import build_teacher
from research_tuner.lib.teacher.wire import chat_body
from research_tuner.settings import load_profile
from research_tuner_tests.support.openai_server import FakeOpenAIServer, RateLimit, request_key
from research_tuner_tests.support.teacher_worker import synthetic_questions

ROOT = Path(__file__).resolve().parent.parent
TARGET_OVER_BOUND = 1.05


class Setup:
    def __init__(self, args):
        self.args = args

    def server(self, fault_rate: float | None = None) -> FakeOpenAIServer:
        server = FakeOpenAIServer()
        server.latency_s = self.args.latency
        server.set_rate_limit(RateLimit(requests=self.args.rate, window_s=self.args.window))
        server.random_faults(self.args.fault_rate if fault_rate is None else fault_rate, seed=self.args.seed,
                             hang_s=self.args.hang)
        return server

    def teacher_settings(self, server: FakeOpenAIServer, **extra):
        teacher = {"base_url": server.base_url, "max_concurrency": self.args.concurrency,
                   "request_timeout_s": self.args.timeout, **extra}
        return load_profile("paper", overrides={"teacher": teacher}).teacher

    @property
    def rate_per_s(self) -> float:
        return self.args.rate / self.args.window


def server_counts(server: FakeOpenAIServer, wall_s: float, rate_per_s: float) -> dict:
    had_to_answer = server.answered + server.faults_injected
    bound_s = had_to_answer / rate_per_s
    return {
        "wall_s": round(wall_s, 2),
        "bound_s": round(bound_s, 2),
        "wall_over_bound": round(wall_s / bound_s, 3) if bound_s else None,
        "server_successes": server.answered,
        "injected_faults": server.faults_injected,
        "injected_by_kind": dict(server.fault_counts),
        "rate_limit_429s_received": server.rate_limited,
        "429s_received_total": server.rate_limited + server.fault_counts.get("429", 0),
        "duplicated_successes": server.duplicated_successes,
    }


def approach_requests(n: int, server: FakeOpenAIServer, setup: Setup):
    cfg = setup.teacher_settings(server)
    records = synthetic_questions(n).to_dict("records")
    return [chat_body(cfg.model, WholeApproach().request(q, None, cfg, 0)) for q in records]


async def one_at_a_time(bodies, base_url: str) -> int:
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url)  # default retries and timeout
    ok = 0
    for body in bodies:
        try:
            await client.chat.completions.create(**body)
            ok += 1
        except openai.OpenAIError:
            pass
    await client.close()
    return ok


async def naive_gather(bodies, base_url: str) -> int:
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url)
    results = await asyncio.gather(*(client.chat.completions.create(**b) for b in bodies), return_exceptions=True)
    await client.close()
    return sum(not isinstance(r, BaseException) for r in results)


def run_seed_way(setup: Setup) -> dict:
    n = setup.args.seed_subset
    with setup.server() as server:
        bodies = approach_requests(n, server, setup)
        t0 = time.monotonic()
        ok = asyncio.run(one_at_a_time(bodies, server.base_url))
        wall = time.monotonic() - t0
        counts = server_counts(server, wall, setup.rate_per_s)
    scale = setup.args.requests / n
    return {
        **counts,
        "note": f"ran {n} of the {setup.args.requests} requests one at a time; wall_s and bound_s are "
                f"extrapolated x{scale:g} (sequential, so time scales with the count)",
        "subset": n,
        "subset_wall_s": round(wall, 2),
        "wall_s": round(wall * scale, 1),
        "bound_s": round(counts["bound_s"] * scale, 1),
        "lost_items": n - ok,
        "lost_items_extrapolated": round((n - ok) * scale),
    }


async def careful_gather(bodies, base_url: str, concurrency: int, retries: int, timeout: float) -> int:
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url, max_retries=retries, timeout=timeout)
    gate = asyncio.Semaphore(concurrency)

    async def one(body) -> bool:
        async with gate:
            try:
                await client.chat.completions.create(**body)
                return True
            except openai.OpenAIError:
                return False

    results = await asyncio.gather(*(one(b) for b in bodies))
    await client.close()
    return sum(results)


def run_careful(setup: Setup) -> dict:
    args = setup.args
    with setup.server() as server:
        bodies = approach_requests(args.requests, server, setup)
        t0 = time.monotonic()
        ok = asyncio.run(careful_gather(bodies, server.base_url, args.concurrency, args.careful_retries, args.timeout))
        wall = time.monotonic() - t0
        return {**server_counts(server, wall, setup.rate_per_s), "lost_items": len(bodies) - ok,
                "client": {"max_concurrency": args.concurrency, "max_retries": args.careful_retries,
                           "timeout_s": args.timeout}}


def run_naive(setup: Setup) -> dict:
    with setup.server() as server:
        bodies = approach_requests(setup.args.requests, server, setup)
        t0 = time.monotonic()
        ok = asyncio.run(naive_gather(bodies, server.base_url))
        wall = time.monotonic() - t0
        return {**server_counts(server, wall, setup.rate_per_s), "lost_items": len(bodies) - ok}


def run_project(setup: Setup, workdir: Path) -> dict:
    with setup.server() as server:
        os.environ["OPENAI_API_KEY"] = "sk-bench"
        cfg = setup.teacher_settings(server)
        teacher = build_teacher(cfg, workdir / "project.sqlite")
        usage = Usage()
        t0 = time.monotonic()
        valid, failed = generate_approaches(teacher, synthetic_questions(setup.args.requests), cfg, usage)
        wall = time.monotonic() - t0
        teacher.close()
        return {**server_counts(server, wall, setup.rate_per_s), "lost_items": len(failed),
                "rows_written": len(valid), "client_retries": usage.retries,
                "limiter_wait_s_total": round(teacher.inner.limiter.waited_s, 1)}


def worker(server: FakeOpenAIServer, setup: Setup, cache: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "PYTHONPATH": str(ROOT)}
    env.pop("TEACHER_BACKOFF_S", None)
    cmd = [sys.executable, "-m", "research_tuner_tests.support.teacher_worker", "--base-url", server.base_url,
           "--cache", str(cache), "--out", str(out), "--questions", str(setup.args.requests),
           "--set", f"teacher.max_concurrency={setup.args.concurrency}",
           "--set", f"teacher.request_timeout_s={setup.args.timeout}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stored_request_keys(setup: Setup, server: FakeOpenAIServer, cache: Path) -> set[str]:
    """The server's request keys of the answers a (killed) run has in its cache."""
    cfg = setup.teacher_settings(server)
    teacher = build_teacher(cfg, cache)
    keys = {}
    for q in synthetic_questions(setup.args.requests).to_dict("records"):
        req = WholeApproach().request(q, None, cfg, 0)
        keys[req.cache_key(teacher.endpoint, teacher.model)] = request_key(chat_body(cfg.model, req))
    found = teacher.cache.get_many(list(keys))
    teacher.close()
    return {keys[k] for k in found}


def run_kill_and_rerun(setup: Setup, workdir: Path) -> dict:
    n = setup.args.requests
    with setup.server() as server:
        first = worker(server, setup, workdir / "kill.sqlite", workdir / "first.json")
        while server.answered < n // 2:
            if first.poll() is not None:
                raise RuntimeError("the worker ended before it was killed")
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        time.sleep(setup.args.hang + 0.5)  # requests it left in flight end at the server
        before = dict(server.successes)
        answered_first = server.answered
        stored = stored_request_keys(setup, server, workdir / "kill.sqlite")
        t0 = time.monotonic()
        second = worker(server, setup, workdir / "kill.sqlite", workdir / "second.json")
        second.wait(3600)
        wall = time.monotonic() - t0
        result = json.loads((workdir / "second.json").read_text())
        resent = {k for k in before if server.successes[k] > before[k]}
        rows = result["valid"]
        return {
            "killed_after_successes": answered_first,
            "answers_stored_by_the_killed_run": len(stored),
            "resent_already_succeeded": len(resent & stored),
            "resent_answered_but_not_received": len(resent - stored),
            "note": "'succeeded' = the killed run had the answer (it is in its cache). Answers the server "
                    "wrote while the process died were never received; they are resent (and counted apart).",
            "rerun_wall_s": round(wall, 2),
            "rerun_requests_sent": result["usage"]["requests_sent"],
            "rerun_cache_hits": result["usage"]["cache_hits"],
            "rows_written": len(rows),
            "distinct_rows": len({r["question_id"] for r in rows}),
            "lost_items": n - len({r["question_id"] for r in rows}),
            "duplicated_successes": server.duplicated_successes,
            "server_successes_total": server.answered,
        }


def run_lowered_limit(setup: Setup, workdir: Path) -> dict:
    """The server halves its limit mid-run: how soon does the client's throughput follow?"""
    args = setup.args
    new_rate = max(1, args.rate // 2)
    with setup.server(fault_rate=0.0) as server:
        os.environ["OPENAI_API_KEY"] = "sk-bench"
        cfg = setup.teacher_settings(server)
        teacher = build_teacher(cfg, workdir / "lowered.sqlite")
        changed_at: list[float] = []

        def lower_at_half(done: int, total: int) -> None:
            if not changed_at and done >= total // 2:
                server.set_rate_limit(RateLimit(requests=new_rate, window_s=args.window))
                changed_at.append(time.monotonic())

        t0 = time.monotonic()
        n = args.follow_requests
        generate_approaches(teacher, synthetic_questions(n), cfg, Usage(), progress=lower_at_half)
        end = time.monotonic()
        teacher.close()
        change = changed_at[0]
        times = sorted(server.success_times)
        before = [t for t in times if t < change]
        after = [t for t in times if t >= change + args.window]  # from the first full window after the change
        first_window = [t for t in times if change <= t < change + args.window]
        late_429s = [t for t in server.rate_limited_times if t >= change]
        last_429 = max(late_429s) - change if late_429s else 0.0
        return {
            "requests": n,
            "limit_before_per_s": args.rate / args.window,
            "limit_after_per_s": new_rate / args.window,
            "throughput_before_per_s": round(len(before) / (change - t0), 2),
            "throughput_note": "before: from the start to the change; after: from one window after the change "
                               "to the end",
            "successes_in_the_window_after_the_change": len(first_window),
            "throughput_after_per_s": round(len(after) / (end - change - args.window), 2) if end - change > args.window
            else None,
            "429s_after_the_change": len(late_429s),
            "last_429_after_change_s": round(last_429, 3),
            "followed_within_windows": round(last_429 / args.window, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=40, help="requests per window")
    parser.add_argument("--window", type=float, default=1.0, help="the server's reset window in seconds")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--fault-rate", type=float, default=0.10)
    parser.add_argument("--hang", type=float, default=1.5, help="a hung request is closed after this long")
    parser.add_argument("--timeout", type=float, default=1.0, help="the project's teacher request timeout")
    parser.add_argument("--concurrency", type=int, default=32, help="the project's and the careful client's")
    parser.add_argument("--careful-retries", type=int, default=8, help="the careful plain client's max_retries")
    parser.add_argument("--seed-subset", type=int, default=200)
    parser.add_argument("--follow-requests", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="a,b,c,d,e,f")
    args = parser.parse_args()
    setup = Setup(args)
    phases = set(args.only.split(","))
    previous = (read_results("teacher") or {}) if phases != set("abcdef") else {}
    results: dict = {
        **previous,
        "config": {**vars(args), "rate_per_minute_equivalent": args.rate / args.window * 60,
                   "python": platform.python_version(), "openai": openai.__version__},
        "bound_definition": "(server successes + injected faults) / (rate / window)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for key, name, run in (("a", "seed_one_at_a_time", lambda: run_seed_way(setup)),
                               ("b", "naive_gather_default_retries", lambda: run_naive(setup)),
                               ("c", "careful_plain_client", lambda: run_careful(setup)),
                               ("d", "project_teacher", lambda: run_project(setup, workdir)),
                               ("e", "project_kill_at_half_and_rerun", lambda: run_kill_and_rerun(setup, workdir)),
                               ("f", "project_limit_lowered_mid_run", lambda: run_lowered_limit(setup, workdir))):
            if key in phases:
                print(f"[{key}] {name} ...", flush=True)
                results[name] = run()
                print(json.dumps(results[name], indent=1), flush=True)
    project = results.get("project_teacher")
    if project:
        for name in ("seed_one_at_a_time", "careful_plain_client"):
            if name in results:
                results[f"speedup_project_vs_{name}"] = round(results[name]["wall_s"] / project["wall_s"], 2)
        results["targets"] = {f"project_within_{TARGET_OVER_BOUND}_of_the_bound":
                              project["wall_over_bound"] <= TARGET_OVER_BOUND}
    print(f"wrote {write_results('teacher', results)}")


if __name__ == "__main__":
    main()
