"""What `research-tuner check` and the start of `run` verify before any money or hours are spent: keys,
the teacher's and judge's servers (one cheap request each), and what training needs.

Each check is a function that adds to one `Preflight`: problems stop the run, warnings are printed and the
run goes ahead, notes say what was verified. A new check (a cost estimate, say) is one more function in
`CHECKS`, or a call after them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from research_tuner.lib.shared.errors import SettingsError
from research_tuner.settings import JudgeSettings, Profile


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Options:
    will_train: bool = True  # check what training needs (the Hub token, a GPU, the processes)
    contact_servers: bool = True  # ask the teacher's and judge's servers (off: only what is local)


def _endpoints(profile: Profile):
    """(role, client settings, keys) of each OpenAI-compatible server the run will talk to, once each."""
    from research_tuner.lib.teacher.probe import Keys

    seen = set()
    teacher = profile.teacher
    judge = profile.evaluation.judge
    candidates = [("teacher", teacher, Keys.under("teacher"))]
    if judge.any_enabled:
        candidates.append(("evaluation.judge", judge.teacher_settings(teacher), _judge_keys(judge)))
    for role, settings, keys in candidates:
        identity = (settings.base_url, settings.api_key_env, settings.model, settings.mode)
        if settings.backend != "openai" or identity in seen:
            continue
        seen.add(identity)
        yield role, settings, keys


def _judge_keys(judge: JudgeSettings):
    """The judge's settings keys: its own where it sets the field, else the teacher's it inherits."""
    from research_tuner.lib.teacher.probe import Keys

    def key(name: str) -> str:
        return f"evaluation.judge.{name}" if getattr(judge, name) is not None else f"teacher.{name}"

    return Keys(key("model"), key("base_url"), key("api_key_env"), "evaluation.judge.mode")


def check_servers(profile: Profile, report: Preflight, options: Options) -> None:
    """Each server's key is set (OpenAI itself needs one); with contact_servers, the server answers."""
    from research_tuner.lib.teacher.credentials import api_key_for
    from research_tuner.lib.teacher.probe import probe_server

    keyless = set()  # (base_url, variable) whose key is missing: said once, not again for the judge
    for role, settings, keys in _endpoints(profile):
        if (settings.base_url, settings.api_key_env) in keyless:
            continue
        try:
            api_key_for(settings, role=role)
        except SettingsError as exc:
            report.problems.append(str(exc))
            keyless.add((settings.base_url, settings.api_key_env))
            continue
        if options.contact_servers and settings.check_server:
            for finding in probe_server(settings, keys, role=role):
                {"ok": report.notes, "warning": report.warnings, "problem": report.problems}[finding.level].append(
                    finding.message)


def check_training(profile: Profile, report: Preflight, options: Options) -> None:
    """The gated base model's token, a GPU for the 3B model, and processes the GPUs can share."""
    if not options.will_train:
        return
    base = profile.training.base_model
    if base.startswith("meta-llama/") and not os.environ.get(profile.training.hf_token_env):
        report.problems.append(
            f"training.base_model {base!r} is gated on the Hugging Face Hub: accept its licence and export "
            f"a token in {profile.training.hf_token_env}, or set training.base_model to a local folder."
        )
    try:
        import torch
    except ImportError:
        report.problems.append("PyTorch is not installed: run scripts/setup.sh")
        return
    if "Llama-3.2-3B" in base and not torch.cuda.is_available():
        report.problems.append(
            f"training.base_model {base!r} needs a CUDA GPU and none is visible; run on a GPU machine or "
            "choose a smaller model (e.g. --set training.base_model=embedded:SmolLM2-135M-Instruct)."
        )
    from research_tuner.lib.training.distributed import check_processes

    try:
        check_processes(profile.training)  # more processes than GPUs, or a batch they cannot share
    except SettingsError as exc:
        report.problems.append(str(exc))


def check_release(profile: Profile, report: Preflight, options: Options) -> None:
    """MLflow installed where tracking asks for it; the Hub token and repository ids before the run, not after
    hours of training."""
    import importlib.util

    if profile.tracking.backend == "mlflow" and importlib.util.find_spec("mlflow") is None:
        report.problems.append("tracking.backend is mlflow but MLflow is not installed: pip install -e '.[tracking]'")
    if profile.release.hub.push:
        from research_tuner.lib.release.hub import push_problems

        report.problems.extend(push_problems(profile.release.hub, merged=profile.training.export_merged))


#: The checks, in order: the servers first, so a wrong URL or key fails in seconds, before torch is imported.
CHECKS: tuple[Callable[[Profile, Preflight, Options], None], ...] = (check_servers, check_release, check_training)


def preflight(profile: Profile, *, will_train: bool = True, contact_servers: bool = True) -> Preflight:
    """Everything to fix before the run (problems), what to know (warnings), and what was verified (notes)."""
    report = Preflight()
    options = Options(will_train=will_train, contact_servers=contact_servers)
    for check in CHECKS:
        check(profile, report, options)
    return report
