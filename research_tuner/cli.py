"""`research-tuner`: run the whole graph headless, check settings before spending, print the results.

    research-tuner run                                  # demo profile, all 8 fields
    research-tuner run --profile paper --set teacher.max_concurrency=32
    research-tuner run --fields arts,humanities --set generation.questions_per_subdomain=4
    research-tuner run --round 1                        # a new generation round: more data, the earlier kept
    research-tuner rounds                               # the rounds the lake holds, with their questions
    research-tuner delete-round 1                       # remove a round on purpose; then run again to follow it
    research-tuner check --profile paper                # preflight only: settings, keys, servers, GPU, the price
    research-tuner table                                # print the last evaluation table
    research-tuner doctor                               # check every lake file; print what repairs the damaged
    research-tuner answer "How does urban noise affect songbird breeding?" [--model base]
    research-tuner serve [--port 8000] [--dry-run]     # an OpenAI-compatible server for the trained model

Runs go through the Dagster instance in $DAGSTER_HOME (when set), so they show in `dagster dev` too.
A mistake in the command line or the settings is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from research_tuner.preflight import Preflight, preflight
from research_tuner.settings import Profile, SettingsError, check_lake, load_profile, parse_assignments, select_fields
from research_tuner.table import print_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["main", "preflight", "print_table"]


class _Parser(argparse.ArgumentParser):
    """argparse, except that a bad argument is one line (what is wrong, and where help is), not the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _round(text: str) -> str:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a round: rounds are whole numbers 0, 1, 2, ...")
    return str(int(text))


def list_rounds(lake: str) -> int:
    from research_tuner.rounds import round_summary

    print("\n".join(round_summary(lake)) or f"no generation round in {lake}: research-tuner run writes round 0")
    return 0


def delete_round(lake: str, round_: str) -> int:
    from research_tuner.rounds import delete_round as delete, lake_rounds

    if round_ not in lake_rounds(lake):
        raise SettingsError(f"{lake} holds no round {round_} (research-tuner rounds --lake {lake} lists them)")
    removed = delete(lake, round_, _instance() if os.environ.get("DAGSTER_HOME") else None)
    print(f"removed round {round_}: {len(removed)} file(s). Its questions leave question_clusters, the approaches and "
          f"the split when data_job runs next for each field: research-tuner run --round <a round that remains>.")
    return 0


def _checked_settings(args) -> tuple[Profile, list[str], str, Preflight]:
    """The profile, fields, data lake and preflight of a `run` or `check` command, printing what it found."""
    fields = select_fields(args.fields)
    lake = check_lake(args.lake or os.environ.get("RESEARCH_TUNER_LAKE", "data_lake"))
    profile = load_profile(args.profile, args.config, parse_assignments(args.set or []))
    report = preflight(profile)
    for note in report.notes:
        print(f"ok: {note}", flush=True)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr, flush=True)
    return profile, fields, lake, report


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
    settings = {"profile": args.profile, "config_file": args.config or "", "set": list(args.set or [])}
    return {
        "loggers": {"console": {"config": {"log_level": "INFO"}}},  # progress lines, not every engine event
        "resources": {
            "settings": {"config": settings},  # --set as given: the settings resource parses it as the CLI did
            "io_manager": {"config": {"root": lake}},
        }
    }


def _instance():
    import dagster as dg

    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def run_pipeline(args) -> int:
    profile, fields, lake, report = _checked_settings(args)  # before Dagster loads: a mistake fails in seconds
    if not report.ok:
        return 2  # the problems are printed, one line each
    if not price_check(profile, fields, args.over_budget_ok):
        return 2

    import dagster as dg
    from transformers.utils import logging as hf_logging

    from research_tuner.definitions import defs
    from research_tuner.interrupts import StopSignals
    from research_tuner.partitions import FIELDS, field_round_key
    from research_tuner.rounds import lake_rounds, register_rounds

    hf_logging.disable_progress_bar()  # per-tensor loading bars drown the run log
    run_config = _run_config(args, lake)
    fields = sorted(fields, key=FIELDS.index)  # in partition order, so a range covers them when they are adjacent
    instance = _instance()
    # every round the lake holds, and this one: question_clusters reads them all, so none drops out of the data
    register_rounds(instance, sorted({*lake_rounds(lake), args.round}, key=int))
    started = time.monotonic()

    def launch(job_name: str, partition: str | None = None, assets: list[str] | None = None,
               through: str | None = None) -> None:
        """One run of `job_name` (only `assets` when given); `through`: the partitions `partition`..`through`."""
        label = f"{job_name}" + (f" [{partition}{'..' + through if through else ''}]" if partition else "")
        label += f" ({', '.join(assets)})" if assets else ""
        t0 = time.monotonic()
        print(f"-> {label}", flush=True)
        span = {"partition_key": partition} if not through else {"tags": {
            "dagster/asset_partition_range_start": partition, "dagster/asset_partition_range_end": through}}
        try:
            result = defs.resolve_job_def(job_name).execute_in_process(
                run_config=run_config, instance=instance, raise_on_error=False,
                asset_selection=[dg.AssetKey(a) for a in assets] if assets else None, **span,
            )
        except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
            raise _Stopped(label) from None
        if not result.success:
            if stop.arrived.wait(0.5):
                raise _Stopped(label, result.run_id)
            raise SystemExit(f"{label} failed (run {result.run_id}); see the log above or the Dagster UI")
        print(f"   {label} done in {time.monotonic() - t0:.0f} s", flush=True)

    print(f"profile {profile.name}, {len(fields)} field(s), generation round {args.round}, data lake {lake}")
    with StopSignals() as stop:
        try:
            for field in fields:
                launch("round_job", str(field_round_key(field, args.round)))
            ranged = _contiguous(fields)  # a partition range covers them: the torch-heavy stages run once for all
            if ranged:
                # question_clusters reads every field's rounds, all written by now: one clustering serves them all
                for i, field in enumerate(fields):
                    launch("data_job", field, ["question_clusters", "deduped_questions"] if i == 0
                           else ["deduped_questions"])
                # the approaches of every field in one run (its single-run backfill policy): the teacher loads
                # once, all fields' requests share its batches and all fields' retries share their passes
                launch("data_job", fields[0], ["approaches"], through=fields[-1])
                for field in fields:
                    launch("data_job", field, ["dataset_split"])
            else:
                for field in fields:
                    launch("data_job", field)
            launch("training_job")
            # the answers of every field in one run (eval_generations' single-run backfill policy): the model
            # loads once and all fields' prompts share its batches; then each field's judging and scores
            if ranged:
                launch("evaluation_job", fields[0], ["eval_generations"], through=fields[-1])
                for field in fields:
                    launch("evaluation_job", field, ["eval_judgements", "eval_preferences", "eval_scores"])
            else:
                for field in fields:
                    launch("evaluation_job", field)
            launch("report_job")
            launch("release_job")
        except (_Stopped, KeyboardInterrupt) as exc:
            stop.arrived.wait(0.5)  # the watcher thread names the signal a moment after it arrives
            where = f" during {exc}" if isinstance(exc, _Stopped) else ""
            print(f"\nStopped by {stop.name}{where}. Partitions already written stay in the data lake ({lake}) and "
                  "teacher answers in the cache; run the same command again to resume.", file=sys.stderr, flush=True)
            return stop.exit_code
    print(f"\nwhole graph done in {time.monotonic() - started:.0f} s\n")
    print_table(lake)
    return 0


def _contiguous(fields: list[str]) -> bool:
    """Whether `fields` are a run of consecutive fields (a partition range covers exactly them)."""
    from research_tuner.partitions import FIELDS

    start = FIELDS.index(fields[0])
    return len(fields) > 1 and FIELDS[start:start + len(fields)] == fields


class _Stopped(Exception):
    """A job ended because SIGINT or SIGTERM arrived; str() says which job (and run)."""

    def __init__(self, label: str, run_id: str | None = None):
        super().__init__(label + (f" (run {run_id})" if run_id else ""))


def _trained_adapter(lake: str):
    """(local folder, manifest) of the lake's lora_adapter, or None after saying that there is none yet."""
    import json

    from research_tuner.lake import lake_path, local_copy

    folder = lake_path(lake, "lora_adapter")
    if not folder.exists():
        print(f"no adapter in {folder}: run the pipeline first (research-tuner run)", file=sys.stderr)
        return None
    adapter = local_copy(folder)
    return adapter, json.loads((adapter / "manifest.json").read_text())


def answer(args) -> int:
    """Answer a new research question with the fine-tuned model (or the base model) from the lake."""
    from research_tuner.lib.shared.chat import student_prompt
    from research_tuner.lib.shared.inference import generate_as, load_for_inference

    found = _trained_adapter(args.lake)
    if found is None:
        return 2
    adapter, manifest = found
    model, tokenizer = load_for_inference(manifest["base_model"], adapter / "adapter",
                                          precision=manifest["training"]["precision"])
    out = generate_as(args.model, model, tokenizer, [student_prompt(args.question)],
                      max_new_tokens=args.max_new_tokens)[0]
    print(out.text)
    if out.finish_reason == "length":
        print(f"\n[stopped at the {args.max_new_tokens}-token limit]", file=sys.stderr)
    return 0


def serve(args) -> int:
    """Start an OpenAI-compatible server for the lake's model (vLLM on a GPU, `transformers serve` on a CPU)."""
    from research_tuner.lib.release.serving import server_plan

    found = _trained_adapter(args.lake)
    if found is None:
        return 2
    adapter, manifest = found
    try:
        plan = server_plan(adapter, manifest, host=args.host, port=args.port, engine=args.engine)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{plan.engine} on http://{args.host}:{args.port}/v1, model {plan.model!r}:\n  " + " ".join(plan.command),
          flush=True)
    if args.dry_run:
        return 0
    os.execvpe(plan.command[0], plan.command, {**os.environ, **plan.env})  # the server replaces this process


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="research-tuner", description=__doc__.split("\n")[0])
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
        p.add_argument("--round", type=_round, default="0",
                       help="the generation round to write (default 0); a new number adds new questions, and every "
                       "earlier round stays in the data")
    rounds = sub.add_parser("rounds", help="list the generation rounds the lake holds")
    rounds.add_argument("--lake", default=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake"))
    delete = sub.add_parser("delete-round", help="remove one generation round from the lake and the instance")
    delete.add_argument("round", type=_round)
    delete.add_argument("--lake", default=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake"))
    table = sub.add_parser("table")
    table.add_argument("--lake", default=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake"))
    doctor = sub.add_parser("doctor", help="check every partition file in the data lake (research_tuner/doctor.py)")
    doctor.add_argument("--lake", default=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake"))
    ask = sub.add_parser("answer", help="answer a research question with the trained model")
    ask.add_argument("question")
    ask.add_argument("--model", choices=["fine_tuned", "base"], default="fine_tuned")
    ask.add_argument("--max-new-tokens", type=_positive_int, default=512)
    ask.add_argument("--lake", default=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake"))
    srv = sub.add_parser("serve", help="start an OpenAI-compatible server for the trained model")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--engine", choices=["auto", "vllm", "transformers"], default="auto",
                     help="auto: vLLM on a CUDA machine that has it, else transformers serve (needs merged/)")
    srv.add_argument("--dry-run", action="store_true", help="print the command, start nothing")
    srv.add_argument("--lake", default=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake"))
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run_pipeline(args)
        if args.command == "check":
            profile, fields, _, report = _checked_settings(args)
            priced = price_check(profile, fields, args.over_budget_ok)
            if report.ok and priced:
                print(f"profile {profile.name}: ready" + (f" ({len(report.warnings)} warning(s))"
                                                           if report.warnings else ""))
            return 0 if report.ok and priced else 2
        check_lake(args.lake)
        if args.command == "answer":
            if not args.question.strip():
                raise SettingsError("the question is empty: research-tuner answer \"How does ...?\"")
            return answer(args)
        if args.command == "doctor":
            from research_tuner.doctor import main as doctor

            return doctor(args.lake)
        if args.command == "serve":
            return serve(args)
        if args.command == "rounds":
            return list_rounds(args.lake)
        if args.command == "delete-round":
            return delete_round(args.lake, args.round)
        print_table(args.lake)
        return 0
    except SettingsError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
