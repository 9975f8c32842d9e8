"""How runs launched from the UI execute: one process per step, with the torch steps kept apart; and how the
steps that call a network retry.

Teacher steps wait on the network and run side by side; steps that run a model on the CPU (training,
evaluation generation) do not: two torch processes on 2 cores slow each other 4-8x (OpenMP threads
fighting over cores). So the multiprocess executor caps steps tagged `TORCH_STEP_TAGS` at
`RESEARCH_TUNER_TORCH_STEPS` (default 1) at a time, and each such step uses at most
cores / that many threads. The CLI (`research-tuner run`) runs in one process, one step at a time.

Across runs, Dagster's concurrency pools (`pool=` on the assets) do the same job. deploy/dagster.yaml gives every
pool a limit of 1 (`concurrency.pools.default_limit`), and scripts/ui.sh raises the teacher's:

- `TEACHER_POOL`: steps that wait on the teacher's server (raw_questions, approaches, the judge); several fields
  at once, up to RESEARCH_TUNER_TEACHER_STEPS (default 4) steps across all runs;
- `TORCH_POOL`: steps that run a model on this machine's cores or GPU (training, evaluation answers): one at a
  time across all runs; raise it with `dagster instance concurrency set torch N` on a machine with N GPUs;
- `CLUSTERS_POOL`: `question_clusters`, the one asset every field's data run writes: always 1, so runs of
  several fields in parallel never race on it (each clusters step reads every round published before it).

On a cluster, RESEARCH_TUNER_EXECUTOR=k8s runs each step in its own Kubernetes pod (dagster-k8s's
k8s_job_executor; deploy/k8s/ has the run config that gives the torch steps a GPU and the teacher its
key from a Secret).
"""

import os
from contextlib import contextmanager

import dagster as dg

from research_tuner.lib.shared.errors import SettingsError
from research_tuner.lib.teacher.base import TeacherConfigError

EXECUTORS = ("multiprocess", "in_process", "k8s")

TEACHER_POOL = "teacher"
TORCH_POOL = "torch"
CLUSTERS_POOL = "question_clusters"

#: Op tag on the steps that run torch on this machine.
TORCH_TAG_KEY = "research_tuner/cpu"
TORCH_STEP_TAGS = {TORCH_TAG_KEY: "torch"}


def _positive_int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name}={raw!r}: expected a whole number of at least 1")
    return int(raw)


def torch_steps_at_once() -> int:
    return _positive_int_env("RESEARCH_TUNER_TORCH_STEPS", 1)


def torch_threads_per_step() -> int:
    """RESEARCH_TUNER_TORCH_THREADS, else the cores shared out among the torch steps that may run at once."""
    explicit = _positive_int_env("RESEARCH_TUNER_TORCH_THREADS", 0)  # 0: not set
    return explicit or max(1, (os.cpu_count() or 1) // torch_steps_at_once())


def cap_torch_threads() -> None:
    """Set OMP_NUM_THREADS for the step processes this process starts (they read it when torch loads)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(torch_threads_per_step()))


def local_executor() -> dg.ExecutorDefinition:
    """The multiprocess executor with the torch-step limit; other steps up to RESEARCH_TUNER_MAX_STEPS."""
    return dg.multiprocess_executor.configured(
        {
            "max_concurrent": _positive_int_env("RESEARCH_TUNER_MAX_STEPS", 4),
            "tag_concurrency_limits": [
                {"key": TORCH_TAG_KEY, "value": "torch", "limit": torch_steps_at_once()},
            ],
        },
        name="research_tuner_multiprocess",
    )


def executor_from_env() -> dg.ExecutorDefinition:
    """The executor named by RESEARCH_TUNER_EXECUTOR: multiprocess (default), in_process or k8s."""
    kind = os.environ.get("RESEARCH_TUNER_EXECUTOR", "multiprocess")
    if kind == "multiprocess":
        return local_executor()
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise SettingsError("RESEARCH_TUNER_EXECUTOR=k8s needs dagster-k8s: pip install 'research_tuner[k8s]'") from None
        return k8s_job_executor
    raise SettingsError(f"RESEARCH_TUNER_EXECUTOR={kind!r}: choose one of {', '.join(EXECUTORS)}")


@contextmanager
def no_retry_on_config_error():
    """A bad key, an unknown model or a reached budget is not fixed by retrying the step: fail it once."""
    try:
        yield
    except TeacherConfigError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def network_retry_policy() -> dg.RetryPolicy:
    """Steps that call a network retry twice, after about 30 s and 60 s (RESEARCH_TUNER_RETRY_DELAY_S)."""
    raw = os.environ.get("RESEARCH_TUNER_RETRY_DELAY_S", "30")
    try:
        delay = float(raw)
    except ValueError:
        raise SettingsError(f"RESEARCH_TUNER_RETRY_DELAY_S={raw!r}: expected seconds, e.g. 30") from None
    return dg.RetryPolicy(max_retries=2, delay=delay, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


#: The retry policy of the steps that call the teacher or judge: they retry on their own before a person has to
#: look, and the response cache makes each retry resend only what is missing.
TEACHER_RETRY = network_retry_policy()
