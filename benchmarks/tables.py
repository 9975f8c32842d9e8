"""The Markdown tables of benchmarks/README.md, made from the results files, so that the tables and the files agree.

Each table sits in benchmarks/README.md between `<!-- tables.py:NAME -->` and `<!-- /tables.py:NAME -->`; `--write`
replaces those blocks with tables made from benchmarks/results/*.json, and `--check` fails when any block differs
(research_tuner_tests/test_benchmarks_readme.py runs it). A results file that is missing, or was written by an older
version of its benchmark, makes a "pending" line with the command that writes it.

    python benchmarks/tables.py [--only training,...] [--write | --check]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import read_results  # noqa: E402

COMMANDS = {
    "training": "python benchmarks/bench_training.py",
    "dedup": "python benchmarks/bench_dedup.py --with-1m",
    "semantic_rule": "python benchmarks/bench_semantic_rule.py",
    "teacher": "python benchmarks/bench_teacher.py",
    "eval_generation": "python benchmarks/bench_eval_generation.py",
    "step_profile": "python benchmarks/bench_step_profile.py",
    "sampling": "python benchmarks/bench_sampling.py",
    "demo": "python benchmarks/bench_demo.py --baseline <commit>",
}
#: A key only the current version of each benchmark writes.
CURRENT = {"training": "ways", "dedup": "lexical", "semantic_rule": "pairs_kept_by_rule",
           "teacher": "careful_plain_client", "eval_generation": "plain_batched", "step_profile": "variants",
           "sampling": "per_request_seconds_by_rows", "demo": "speedup_whole_graph"}


def load(name: str) -> dict | None:
    result = read_results(name)
    if result is None or CURRENT[name] not in result:
        return None
    if name == "dedup" and not any("datasketch_bulk" in e for e in result["lexical"]["sizes"].values()):
        return None
    return result


def pending(name: str) -> str:
    return f"*Pending the quiet-machine run: `{COMMANDS[name]}` writes benchmarks/results/{name}.json.*\n"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt(value, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}{suffix}"
    return f"{value:,.{digits}f}{suffix}"


def pct(value) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


def training() -> str:
    r = load("training")
    if r is None:
        return pending("training")
    names = {"trl_defaults": "TRL defaults", "trl_tuned_grouped": "TRL tuned, length-grouped",
             "trl_tuned_padding_free": "TRL tuned, padding-free", "project": "project (`train_lora`)"}
    rows = []
    for way, w in r["ways"].items():
        speed, loss = w["tokens_per_s"], w["validation_loss"]
        strong = " (the tuned baseline)" if way == r["strong_baseline"] else ""
        rows.append([names.get(way, way) + strong, f"{fmt(speed['median'])} ({fmt(speed['min'])}-{fmt(speed['max'])})",
                     pct(w["padding_waste"]), f"{loss['mean']:.3f} ± {loss['sd'] or 0:.3f}",
                     fmt(w.get("model_gflops")), pct((w.get("fraction_of_peak") or {}).get("square_2048_gflops"))])
    out = table(["way", f"training tokens/s, median of {r['seeds']} seeds (min-max)", "padding waste",
                 "validation loss, mean ± sd over seeds", "model GFLOP/s", "of the bf16 peak"], rows)
    peak = r["peak"]
    out += (f"\nUntrained model's validation loss: {r['untrained_validation_loss']:.3f}. The bf16 peak is this run's "
            f"2048 x 2048 matmul: {fmt(peak['used']['square_2048_gflops'])} GFLOP/s "
            f"({fmt(peak['used']['mlp_shape_gflops'])} at the model's MLP shapes). "
            f"FLOPs counted: {peak['flops_counted']}.\n\n")
    rows = [[c["baseline"], f"{c['speedup']}x ({c['speedup_range'][0]}-{c['speedup_range'][1]})",
             f"{c['validation_loss_delta']:+.4f}", f"{c['validation_loss_seed_sd'] or 0:.4f}",
             "yes" if c["validation_loss_no_worse"] else "no"] for c in r["comparison"].values()]
    out += table(["project against", "speed-up (range over seeds)", "validation loss difference",
                  "seed-to-seed sd", "no worse (within one sd)"], rows)
    return out


def dedup() -> str:
    r = load("dedup")
    if r is None:
        return pending("dedup")
    rows = []
    methods = {"ours": "project", "datasketch_one_by_one": "datasketch, one by one",
               "datasketch_bulk": "datasketch, bulk"}
    for n, entry in r["lexical"]["sizes"].items():
        for key, label in methods.items():
            m = entry.get(key)
            if not isinstance(m, dict):
                rows.append([fmt(int(n)), label, "not run", "", "", "", "", ""])
                continue
            speed = "" if key == "ours" else f"{entry.get('speedup_vs_' + key.removeprefix('datasketch_'))}x"
            rows.append([fmt(int(n)), label, fmt(m["seconds"], 2, " s"), fmt(m["peak_mb"], 0, " MB"), fmt(m["pairs"]),
                         fmt(m["pairs_at_or_above_threshold"]), f"{m['recall_on_injected']:.3f}", speed])
    out = table(["questions", "method", "time", "peak memory", "pairs found", "of them >= threshold (exact)",
                 "recall on injected copies", "project's speed-up"], rows)
    target = next((v for k, v in r["lexical"].items() if k.startswith("target_")), None)
    verdict = "met" if target else "not met" if target is False else "not run (needs --with-1m)"
    out += f"\nTarget (at least 3x datasketch's bulk path at 1M): {verdict}.\n"
    return out


def semantic() -> str:
    out = ""
    r = read_results("dedup")
    if r and "semantic" in r:
        s = r["semantic"]
        rows = [[k, fmt(v["n"]), fmt(v["seconds"], 2, " s"), fmt(v.get("pairs")),
                 fmt(v.get("brute_force_seconds"), 2, " s"), v.get("recall_vs_brute_force")]
                for k, v in s.items() if k.startswith("search_")]
        out += (f"Embedding: {s['embedding_bf16']['questions_per_s']} questions/s in bf16, "
                f"{s['embedding_fp32']['questions_per_s']} in fp32.\n\n")
        out += table(["search", "questions", "blocked search", "pairs at the floor", "brute force",
                      "recall of brute force's pairs"], rows)
    else:
        out += pending("dedup")
    rule = load("semantic_rule")
    if rule is None:
        return out + "\n" + pending("semantic_rule")
    return out + (f"\nThe whole pass after embedding at {fmt(rule['n'])} questions: {rule['total_seconds']} s "
                  f"(search {rule['search_seconds']} s, overlap bar {rule['overlap_rule_seconds']} s); "
                  f"{fmt(rule['pairs_at_floor'])} pairs at the floor, {fmt(rule['pairs_kept_by_rule'])} kept.\n")


def teacher() -> str:
    r = load("teacher")
    if r is None:
        return pending("teacher") + teacher_resilience(read_results("teacher") or {})
    names = {"seed_one_at_a_time": "the seed's way: one at a time, no cache",
             "naive_gather_default_retries": "naive `asyncio.gather`, default retries",
             "careful_plain_client": "careful plain client: semaphore, timeout, more retries",
             "project_teacher": "the project's teacher"}
    rows = []
    for key, label in names.items():
        c = r.get(key)
        if not c:
            continue
        lost = c.get("lost_items_extrapolated", c["lost_items"])
        rows.append([label, f"{c['wall_over_bound']} ({fmt(c['wall_s'])} s vs {fmt(c['bound_s'])} s)",
                     fmt(c["rate_limit_429s_received"]), fmt(lost), fmt(c["duplicated_successes"])])
    out = table(["client", "wall / bound", "429s from the limit", "lost", "duplicated successes"], rows)
    target = (r.get("targets") or {})
    out += "\n" + "".join(f"Target {k.replace('_', ' ')}: {'met' if v else 'not met'}.\n" for k, v in target.items())
    return out + teacher_resilience(r)


def teacher_resilience(r: dict) -> str:
    """The kill-and-rerun and lowered-limit phases, from whichever results file has them."""
    out = ""
    k = r.get("project_kill_at_half_and_rerun")
    if k:
        out += (f"\nKilled with SIGKILL after {fmt(k['killed_after_successes'])} answers and rerun: the killed run had "
                f"stored {fmt(k['answers_stored_by_the_killed_run'])} answers, the rerun sent "
                f"{fmt(k['rerun_requests_sent'])} and resent {k['resent_already_succeeded']} that had succeeded; "
                f"{fmt(k['distinct_rows'])} distinct rows of {fmt(k['rows_written'])}, {k['lost_items']} lost, "
                f"{k['duplicated_successes']} duplicated.\n")
    f = r.get("project_limit_lowered_mid_run")
    if f:
        out += (f"\nThe server lowered its limit mid-run from {f['limit_before_per_s']:g} to "
                f"{f['limit_after_per_s']:g} "
                f"requests/s: {f['429s_after_the_change']} refusal(s) (429) after the change, the last "
                f"{f['last_429_after_change_s'] * 1e3:.0f} ms after it; then {f['throughput_after_per_s']} "
                "requests/s.\n")
    return out


def eval_generation() -> str:
    r = load("eval_generation")
    if r is None:
        return pending("eval_generation")
    rows = [["one prompt at a time", fmt(r["one_at_a_time"]["tokens_per_s"]), "", "(the reference)"]]
    for key, label in (("plain_batched", "plain batched `generate`, prompts in order"),
                       ("project", "the project: sorted by length, then batched")):
        w = r[key]
        rows.append([label, fmt(w["tokens_per_s"]), pct(w["prompt_padding_share"]), w["identical_greedy_outputs"]])
    p = r["prompt_tokens"]
    return (table(["way", "tokens/s", "left padding in the prompt batches", "greedy outputs identical"], rows)
            + f"\n{r['prompts']} prompts over {len(r['fields'])} fields, {p['min']} to {p['max']} prompt tokens, "
              f"batches of {r['batch_size']}, {r['max_new_tokens']} new tokens.\n")


def sampling() -> str:
    r = load("sampling")
    if r is None:
        return pending("sampling")
    sizes = list(r["seconds"])
    unchanged = next(v for k, v in r.items() if k.startswith("answers_unchanged_from"))
    labels = {"global_sampler": "transformers' sampling (one global generator)",
              "per_request": "the project: a generator per request"}
    rows = [[label, *(fmt(r["seconds"][n][way], 2, " s") for n in sizes), unchanged[way]]
            for way, label in labels.items()]
    rows.append(["speedup", *(f"{r['speedup'][n]}x" for n in sizes), ""])
    float32 = next(v for k, v in r.items() if k.startswith("float32_per_request"))
    by_rows = ", ".join(f"{n} row(s) {fmt(t, 2, ' s')}" for n, t in r["per_request_seconds_by_rows"].items())
    header = ["way", *(n.replace("_", " ") for n in sizes), f"answers unchanged, {sizes[0].split('_')[0]} -> "
              f"{sizes[-1].split('_')[0]} per batch"]
    return (table(header, rows)
            + f"\n{r['model']} in {r['precision']}, {r['max_new_tokens']} new tokens, temperature "
              f"{r['temperature']}, top_p {r['top_p']}. The per-request sampler by batch size: {by_rows}. In "
              f"float32 its answers unchanged from one batch size to another: {float32}.\n")


def demo() -> str:
    r = load("demo")
    if r is None:
        return pending("demo")
    base, cur = r["baseline"], r["current"]
    steps = sorted(set(base["steps_s"]) | set(cur["steps_s"]), key=lambda k: -base["steps_s"].get(k, 0))[:5]
    rows = [["whole graph", f"{base['whole_graph_s']} s", f"{cur['whole_graph_s']} s", f"{r['speedup_whole_graph']}x"]]
    rows += [[f"step `{k}` (summed over runs)", fmt(base["steps_s"].get(k), 1, " s"), fmt(cur["steps_s"].get(k), 1, " s"),
              f"{base['steps_s'][k] / cur['steps_s'][k]:.2f}x" if cur["steps_s"].get(k) else ""] for k in steps]
    rows += [[f"data: {k.replace('_', ' ')}", str(base["data"][k]), str(cur["data"][k]), ""]
             for k in base.get("data", {}) if k in cur.get("data", {})]
    return (table(["", f"baseline {base['commit']}", f"current {cur['commit']}", "baseline / current"], rows)
            + f"\nFields: {r['fields']}. Same evaluation table on both sides: {'yes' if r['same_table'] else 'no'} "
              "(the sides' teachers sample differently when their code does).\n")


def step_profile() -> str:
    r = load("step_profile")
    if r is None:
        return pending("step_profile")
    shares = r["dropout_share_of_a_step"]
    rows = [[v, fmt(s, 2, " s"), pct(shares.get(v))] for v, s in r["step_seconds"].items()]
    out = table(["variant", "median step", "dropout's share of the step"], rows)
    masks, speed = r["mask_seconds"], r["mask_speedup"]
    out += (f"\nBatch: {r['batch']}. One LoRA dropout on a {' x '.join(map(str, masks['shape']))} bf16 input: "
            f"`nn.Dropout` {masks['nn_dropout'] * 1e3:.1f} ms, `torch.rand` mask {masks['torch_rand'] * 1e3:.1f} ms "
            f"({speed['torch_rand_vs_nn_dropout']}x), `CpuDropout` {masks['cpu_dropout'] * 1e3:.1f} ms "
            f"({speed['cpu_dropout_vs_torch_rand']}x faster than `torch.rand`).\n")
    profile = r["variants"].get("project", {}).get("profile")
    if profile:
        out += "\n" + table(["kind of operation (one `project` step)", "share of self CPU time"],
                            [[k, pct(v)] for k, v in profile["shares"].items()])
    return out


def _met(value) -> str:
    return "met" if value else "not met" if value is False else "not run"


def summary() -> str:
    """Each ratio against the naive and the strong baseline, side by side, with its target."""
    rows = []
    t = load("training")
    if t:
        c, targets = t["comparison"], t["targets"]
        loss = c.get("vs_tuned_trl", {})
        rows.append(["training tokens/s",
                     f"{c['vs_trl_defaults']['speedup']}x TRL's defaults" if "vs_trl_defaults" in c else "",
                     f"{loss['speedup']}x tuned TRL; validation loss {loss['validation_loss_delta']:+.3f} "
                     f"(seed sd {loss['validation_loss_seed_sd'] or 0:.3f})" if loss else "",
                     "1.5x tuned TRL, validation loss no worse",
                     " and ".join(_met(v) for v in targets.values())])
    d = load("dedup")
    if d:
        n = max(d["lexical"]["sizes"], key=int)
        e = d["lexical"]["sizes"][n]
        target = next((v for k, v in d["lexical"].items() if k.startswith("target_")), None)
        rows.append([f"lexical dedup, {fmt(int(n))} questions", f"{e.get('speedup_vs_one_by_one', 'not run')}x "
                     "datasketch one by one", f"{e.get('speedup_vs_bulk', 'not run')}x datasketch bulk",
                     "3x datasketch bulk at 1M", _met(target)])
    te = load("teacher")
    if te:
        project = te["project_teacher"]["wall_over_bound"]
        rows.append(["teacher, wall time / the server's bound", f"project {project}; seed's way "
                     f"{te['seed_one_at_a_time']['wall_over_bound']}, naive gather lost "
                     f"{fmt(te['naive_gather_default_retries']['lost_items'])}",
                     f"careful plain client {te['careful_plain_client']['wall_over_bound']}, lost "
                     f"{fmt(te['careful_plain_client']['lost_items'])}", "project within 1.05",
                     _met(project <= 1.05)])
    g = load("eval_generation")
    if g:
        rows.append(["evaluation generation tokens/s", f"{g['speedup_vs_one_at_a_time']}x one at a time",
                     f"{g['speedup_vs_plain_batched']}x plain batched generate",
                     "outputs identical to one at a time", g["project"]["identical_greedy_outputs"]])
    sm = load("sampling")
    if sm:
        n = next(iter(sm["speedup"]))
        rows.append([f"local teacher sampling, {n.replace('_', ' ')} per batch", f"{sm['speedup'][n]}x transformers' "
                     "sampling", "the same baseline: transformers has no other sampler",
                     "faster", _met(sm["speedup"][n] > 1)])
    if not rows:
        return "*Pending the quiet-machine run: `bash scripts/bench.sh --with-1m`.*\n"
    return table(["", "against the naive baseline", "against the strong baseline", "target", "result"], rows)


SECTIONS = {"training": training, "dedup": dedup, "semantic": semantic, "teacher": teacher,
            "eval_generation": eval_generation, "step_profile": step_profile, "sampling": sampling,
            "demo": demo, "summary": summary}


README = Path(__file__).resolve().parent / "README.md"


def block(name: str) -> str:
    return f"<!-- tables.py:{name} -->\n{SECTIONS[name]()}<!-- /tables.py:{name} -->"


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"<!-- tables\.py:{name} -->.*?<!-- /tables\.py:{name} -->", re.S)


def stale_blocks(text: str, names) -> list[str]:
    """Sections whose block in `text` is missing or differs from what the results files give."""
    return [n for n in names if (m := _pattern(n).search(text)) is None or m.group(0) != block(n)]


def write_readme(names) -> list[str]:
    text = README.read_text()
    missing = [n for n in names if not _pattern(n).search(text)]
    for name in names:
        text = _pattern(name).sub(lambda _: block(name), text)
    README.write_text(text)
    return missing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(SECTIONS))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="replace the blocks in benchmarks/README.md")
    mode.add_argument("--check", action="store_true", help="fail if a block in benchmarks/README.md differs")
    args = parser.parse_args()
    names = args.only.split(",")
    if unknown := set(names) - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    if args.write:
        missing = write_readme(names)
        print(f"updated {README}" + (f"; no block for {missing}: add the markers" if missing else ""))
    elif args.check:
        if stale := stale_blocks(README.read_text(), names):
            sys.exit(f"benchmarks/README.md disagrees with the results files in {stale}: "
                     "run `python benchmarks/tables.py --write`")
    else:
        print("\n\n".join(block(n) for n in names))


if __name__ == "__main__":
    main()
