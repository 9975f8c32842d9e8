"""`research-tuner`: run the whole graph headless, check settings before spending, print the results.

    research-tuner run                                  # demo profile, all 8 fields
    research-tuner run --profile paper --set teacher.max_concurrency=32
    research-tuner run --fields arts,humanities --set generation.questions_per_subdomain=4
    research-tuner check --profile paper                # preflight only: settings, credentials and the price
    research-tuner table                                # print the last evaluation table
    research-tuner answer "How does urban noise affect songbird breeding?" [--model base]

Runs go through the Dagster instance in $DAGSTER_HOME (when set), so they show in `dagster dev` too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import pandas as pd

from research_tuner.lake import lake_path, read_parquet
from research_tuner.lib.shared.taxonomy import field_keys
from research_tuner.settings import Profile, SettingsError, load_profile, parse_assignments


def preflight(profile: Profile, *, will_train: bool = True) -> list[str]:
    """Problems to fix before any money or hours are spent (empty when all is well)."""
    from research_tuner.lib.teacher.credentials import api_key_for

    problems = []
    if profile.teacher.backend == "openai":
        try:
            api_key_for(profile.teacher)
        except SettingsError as exc:
            problems.append(str(exc))
    judge = profile.evaluation.judge.teacher_settings(profile.teacher)
    same_key = profile.teacher.backend == "openai" and (judge.api_key_env, judge.base_url) == (
        profile.teacher.api_key_env, profile.teacher.base_url)
    if profile.evaluation.judge.any_enabled and judge.backend == "openai" and not same_key:
        try:
            api_key_for(judge, role="evaluation.judge")
        except SettingsError as exc:
            problems.append(str(exc))
    if will_train:
        base = profile.training.base_model
        if base.startswith("meta-llama/") and not os.environ.get(profile.training.hf_token_env):
            problems.append(
                f"training.base_model {base!r} is gated on the Hugging Face Hub: accept its licence and export "
                f"a token in {profile.training.hf_token_env}, or set training.base_model to a local folder."
            )
        try:
            import torch

            if "Llama-3.2-3B" in base and not torch.cuda.is_available():
                problems.append(
                    f"training.base_model {base!r} needs a CUDA GPU and none is visible; run on a GPU machine or "
                    "choose a smaller model (e.g. --set training.base_model=embedded:SmolLM2-135M-Instruct)."
                )
        except ImportError:
            problems.append("PyTorch is not installed: run scripts/setup.sh")
        else:
            from research_tuner.lib.training.distributed import check_processes

            try:
                check_processes(profile.training)  # more processes than GPUs, or a batch they cannot share
            except SettingsError as exc:
                problems.append(str(exc))
    return problems


def price_check(profile: Profile, fields: list[str], over_budget_ok: bool) -> bool:
    """Print the run's estimated price (research_tuner/price.py); False when a step's estimate is above its budget
    and the user did not say --over-budget-ok."""
    from research_tuner.price import estimate_run, format_estimate, over_budget

    estimates = estimate_run(profile, fields)
    print(format_estimate(profile, estimates), flush=True)
    if over_budget(estimates) and not over_budget_ok:
        print("Cannot start: the estimate is above the budget of the step(s) listed; raise teacher.budget_usd "
              "(or evaluation.judge.budget_usd), make the run smaller, or pass --over-budget-ok.", file=sys.stderr)
        return False
    return True


def _run_config(args, lake: str) -> dict[str, Any]:
    overrides = parse_assignments(args.set or [])
    return {
        "loggers": {"console": {"config": {"log_level": "INFO"}}},  # progress lines, not every engine event
        "resources": {
            "settings": {"config": {"profile": args.profile, "config_file": args.config or "", "overrides": overrides}},
            "io_manager": {"config": {"root": lake}},
        }
    }


def _instance():
    import dagster as dg

    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def run_pipeline(args) -> int:
    import dagster as dg
    from transformers.utils import logging as hf_logging

    from research_tuner.definitions import defs
    from research_tuner.interrupts import StopSignals

    hf_logging.disable_progress_bar()  # per-tensor loading bars drown the run log

    profile = load_profile(args.profile, args.config, parse_assignments(args.set or []))
    problems = preflight(profile)
    if problems:
        print("Cannot start:\n- " + "\n- ".join(problems), file=sys.stderr)
        return 2
    fields = args.fields.split(",") if args.fields else field_keys()
    unknown = sorted(set(fields) - set(field_keys()))
    if unknown:
        print(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(field_keys())}", file=sys.stderr)
        return 2
    if not price_check(profile, fields, args.over_budget_ok):
        return 2
    lake = args.lake or os.environ.get("RESEARCH_TUNER_LAKE", "data_lake")
    run_config = _run_config(args, lake)
    instance = _instance()
    started = time.monotonic()

    def launch(job_name: str, partition: str | None = None) -> None:
        label = f"{job_name}" + (f" [{partition}]" if partition else "")
        t0 = time.monotonic()
        print(f"-> {label}", flush=True)
        try:
            result = defs.resolve_job_def(job_name).execute_in_process(
                run_config=run_config, instance=instance, partition_key=partition, raise_on_error=False
            )
        except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
            raise _Stopped(label) from None
        if not result.success:
            if stop.arrived.wait(0.5):
                raise _Stopped(label, result.run_id)
            raise SystemExit(f"{label} failed (run {result.run_id}); see the log above or the Dagster UI")
        print(f"   {label} done in {time.monotonic() - t0:.0f} s", flush=True)

    print(f"profile {profile.name}, {len(fields)} field(s), data lake {lake}")
    with StopSignals() as stop:
        try:
            for field in fields:
                launch("data_job", field)
            launch("training_job")
            for field in fields:
                launch("evaluation_job", field)
            launch("report_job")
        except (_Stopped, KeyboardInterrupt) as exc:
            stop.arrived.wait(0.5)  # the watcher thread names the signal a moment after it arrives
            where = f" during {exc}" if isinstance(exc, _Stopped) else ""
            print(f"\nStopped by {stop.name}{where}. Partitions already written stay in the data lake ({lake}) and "
                  "teacher answers in the cache; run the same command again to resume.", file=sys.stderr, flush=True)
            return stop.exit_code
    print(f"\nwhole graph done in {time.monotonic() - started:.0f} s\n")
    print_table(lake)
    return 0


class _Stopped(Exception):
    """A job ended because SIGINT or SIGTERM arrived; str() says which job (and run)."""

    def __init__(self, label: str, run_id: str | None = None):
        super().__init__(label + (f" (run {run_id})" if run_id else ""))


def evaluation_table(lake: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = lake_path(lake, "eval_report")
    return read_parquet(folder / "scores_by_field.parquet"), read_parquet(folder / "comparison.parquet")


def print_table(lake: str) -> None:
    from research_tuner.lib.evaluation.metrics import metric_names

    scores, comparison = evaluation_table(lake)
    columns = ["field", "model", "n", *metric_names(), "hit_token_limit"]
    shown = scores[columns + [c for c in ("judge_score", "judge_n", "judge_failed") if c in scores.columns]]
    print("Evaluation per field (mean scores against the teacher's approach):")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if "judge_score" in scores.columns:
        print("(judge_score: the LLM judge's mean grade, 0-5, over judge_n answers; judge_failed were unreadable)")
    overall = comparison[comparison["field"] == "all"]
    print("\nOver all fields: fine_tuned vs base (paired delta, 95% bootstrap CI, relative change):")
    for row in overall.itertuples():
        print(f"  {row.metric:<21} base {row.base:.4f}  fine_tuned {row.fine_tuned:.4f}  "
              f"delta {row.delta:+.4f} [{row.delta_ci_low:+.4f}, {row.delta_ci_high:+.4f}]  "
              f"{row.improvement_pct:+.1f}%")
    _print_preferences(lake)
    print(f"\nData lake: {lake_path(lake)}  (figures in {lake_path(lake, 'eval_report')})")


def _print_preferences(lake: str) -> None:
    """The pairwise win rates over all fields and the verdict paragraph, where the report has them."""
    folder = lake_path(lake, "eval_report")
    if (folder / "win_rates.parquet").exists():
        wins = read_parquet(folder / "win_rates.parquet")
        for row in wins[wins["field"] == "all"].itertuples():
            print(f"  win rate vs {row.opponent:<9} {row.win_rate:.4f} [{row.win_rate_ci_low:.3f}, "
                  f"{row.win_rate_ci_high:.3f}]  (W/T/L {row.wins}/{row.ties}/{row.losses}, ties as half; "
                  f"at equal length {row.lc_win_rate:.3f}; order flipped the verdict in "
                  f"{100 * row.inconsistency_rate:.0f}%)")
    if (folder / "verdict.md").exists():
        print("\nVerdict: " + (folder / "verdict.md").read_text().strip())


def answer(args) -> int:
    """Answer a new research question with the fine-tuned model (or the base model) from the lake."""
    import json

    from research_tuner.lake import local_copy
    from research_tuner.lib.shared.chat import student_prompt
    from research_tuner.lib.shared.inference import generate_as, load_for_inference

    folder = lake_path(args.lake, "lora_adapter")
    if not folder.exists():
        print(f"no adapter in {folder}: run the pipeline first (research-tuner run)", file=sys.stderr)
        return 2
    adapter = local_copy(folder)
    manifest = json.loads((adapter / "manifest.json").read_text())
    model, tokenizer = load_for_inference(manifest["base_model"], adapter / "adapter",
                                          precision=manifest["training"]["precision"])
    out = generate_as(args.model, model, tokenizer, [student_prompt(args.question)],
                      max_new_tokens=args.max_new_tokens)[0]
    print(out.text)
    if out.finish_reason == "length":
        print(f"\n[stopped at the {args.max_new_tokens}-token limit]", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="research-tuner", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "check"):
        p = sub.add_parser(name)
        p.add_argument("--profile", default=os.environ.get("RESEARCH_TUNER_PROFILE", "demo"))
        p.add_argument("--config", default=os.environ.get("RESEARCH_TUNER_CONFIG") or None,
                       help="YAML file merged over the profile")
        p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one setting")
        p.add_argument("--fields", help="comma-separated field keys (default: all 8)")
        p.add_argument("--lake", help="data lake root: a folder or an fsspec URL (default: data_lake)")
        p.add_argument("--over-budget-ok", action="store_true",
                       help="start even when a step's estimated cost is above its budget_usd")
    table = sub.add_parser("table")
    table.add_argument("--lake", default=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake"))
    ask = sub.add_parser("answer", help="answer a research question with the trained model")
    ask.add_argument("question")
    ask.add_argument("--model", choices=["fine_tuned", "base"], default="fine_tuned")
    ask.add_argument("--max-new-tokens", type=int, default=512)
    ask.add_argument("--lake", default=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake"))
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run_pipeline(args)
        if args.command == "check":
            profile = load_profile(args.profile, args.config, parse_assignments(args.set or []))
            problems = preflight(profile)
            priced = price_check(profile, args.fields.split(",") if args.fields else field_keys(), args.over_budget_ok)
            print("\n".join(f"- {p}" for p in problems) if problems else f"profile {profile.name}: ready")
            return 2 if problems or not priced else 0
        if args.command == "answer":
            return answer(args)
        print_table(args.lake)
        return 0
    except SettingsError as exc:
        print(f"settings error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
