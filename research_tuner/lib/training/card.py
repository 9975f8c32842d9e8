"""The adapter's Hugging Face model card (README.md with the YAML header the Hub reads): how it was trained, from
manifest.json, and, once the evaluation report exists, its table with intervals and the limits it states."""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from research_tuner.lib.shared.models import hub_model_id
from research_tuner.lib.shared.sections import SECTIONS

#: Licences of the base models this project names; another base's licence is read from its own card or set in
#: release.license.
KNOWN_LICENSES = {"HuggingFaceTB/SmolLM2": "apache-2.0", "meta-llama/Llama-3.2": "llama3.2",
                  "meta-llama/Llama-3.1": "llama3.1", "Qwen/Qwen2.5": "apache-2.0"}
#: The training settings the card lists, in this order (all of them stay in manifest.json).
CARD_SETTINGS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "lr_scheduler",
                 "warmup_ratio", "per_device_batch_size", "gradient_accumulation_steps", "epochs", "max_length",
                 "precision", "load_in_4bit", "seed")
LIMITS = (
    "The training data is synthetic: a teacher LLM wrote both the questions and the reference approaches, so the "
    "adapter learns to imitate that teacher, including its mistakes, and inherits the terms of use of its outputs.",
    "ROUGE-L and METEOR measure overlap with the teacher's text, not whether a plan is sound, original or feasible.",
    "The evaluation sample is small (a few validation questions per subdomain); read the intervals, not the means.",
    "Nothing here was checked by domain experts; an approach is a starting point for a researcher, not advice.",
)


@dataclass(frozen=True)
class EvaluationTables:
    """What eval_report wrote: the paired comparison, the pairwise win rates (empty without the judge), the
    verdict paragraph."""

    comparison: pd.DataFrame
    win_rates: pd.DataFrame
    verdict: str


def base_license(name: str, model_dir: Path | None = None) -> str:
    """The base model's licence: from its own card in `model_dir` where it has one, else the known table, else
    'other'."""
    if model_dir is not None and (Path(model_dir) / "README.md").is_file():
        from huggingface_hub import ModelCard

        found = ModelCard.load(Path(model_dir) / "README.md", ignore_metadata_errors=True).data.license
        if found:
            return str(found)
    hub_id = hub_model_id(name) or ""
    return next((lic for prefix, lic in KNOWN_LICENSES.items() if hub_id.startswith(prefix)), "other")


def hardware_description(device: str) -> str:
    """The accelerator (or CPU) a run trained on, for the card: 'NVIDIA H100 80GB HBM3' or the CPU's model."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), "")
    return cpu or platform.processor() or platform.machine()


def model_card(manifest: dict[str, Any], *, license: str, evaluation: EvaluationTables | None = None,
               dataset_repo_id: str | None = None, library_name: str = "peft") -> str:
    """README.md for the adapter folder (library_name 'peft') or the merged model ('transformers')."""
    from huggingface_hub import ModelCardData

    base = manifest["base_model"]
    hub_base = hub_model_id(base)
    tags = ["research-tuner", "research-approaches", "lora", "sft", "trl"]
    if library_name == "peft" and hub_base:
        tags.append(f"base_model:adapter:{hub_base}")
    data = ModelCardData(
        base_model=hub_base, library_name=library_name, license=license, tags=tags,
        datasets=[dataset_repo_id] if dataset_repo_id else None, language=["en"], pipeline_tag="text-generation",
    )
    body = "\n\n".join([
        f"# Research-approach writer: LoRA on {hub_base or base}",
        "Given a research question, the model writes a research approach in seven sections ("
        + ", ".join(SECTIONS) + "), as the teacher LLM did in its training data. Trained by research_tuner (after "
        "the paper *Fine-Tuning LLMs For Research*) with PEFT LoRA and TRL's SFTTrainer; the loss covers only the "
        "approach tokens.",
        _usage(hub_base or base, library_name),
        _training(manifest),
        _evaluation(evaluation),
        _limits(evaluation),
    ])
    return f"---\n{data.to_yaml()}\n---\n\n{body}\n"


def _usage(base: str, library_name: str) -> str:
    if library_name == "peft":
        load = (f'base = AutoModelForCausalLM.from_pretrained("{base}")\n'
                'model = PeftModel.from_pretrained(base, "<this folder or repo>")\n'
                'tokenizer = AutoTokenizer.from_pretrained("<this folder or repo>")')
        imports = "from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer"
    else:
        load = ('model = AutoModelForCausalLM.from_pretrained("<this folder or repo>")\n'
                'tokenizer = AutoTokenizer.from_pretrained("<this folder or repo>")')
        imports = "from transformers import AutoModelForCausalLM, AutoTokenizer"
    return ("## How to use\n\n```python\n" + imports + "\n\n" + load + "\n```\n\n"
            "From the project: `research-tuner answer \"<question>\"`, or `research-tuner serve` for an "
            "OpenAI-compatible server (vLLM on a GPU, `transformers serve` on a CPU).")


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _training(manifest: dict[str, Any]) -> str:
    settings, result = manifest["training"], manifest["result"]
    rows = [(name, _number(settings.get(name))) for name in CARD_SETTINGS if name in settings]
    rows.append(("effective batch", str(settings["per_device_batch_size"] * settings["gradient_accumulation_steps"])))
    facts = [
        ("examples (train / validation)", f"{manifest['train_rows']} / {manifest['validation_rows']}"),
        ("fields", ", ".join(manifest.get("fields", []))),
        ("optimizer steps", _number(result.get("global_step"))),
        ("tokens seen", f"{result.get('tokens_seen', 0):,}"),
        ("wall time", f"{_number(result.get('wall_time_s'))} s (in training steps: "
                      f"{_number(result.get('train_time_s'))} s)"),
        ("tokens per second", _number(result.get("tokens_per_second"))),
        ("final training loss", _number(result.get("final_train_loss"))),
        ("final validation loss", _number(result.get("final_eval_loss"))),
        ("trainable parameters", f"{result.get('trainable_params', 0):,} of {result.get('total_params', 0):,}"),
        ("hardware", f"{result.get('hardware', '-')} ({result.get('device', '-')}, {result.get('processes', 1)} "
                     "process(es)" + (f", {result['threads']} threads)" if result.get("threads") else ")")),
        ("precision / attention / loss", f"{result.get('precision')} / {result.get('attn_implementation')} / "
                                         f"{result.get('loss_kernel')}"),
    ]
    if manifest.get("teacher_model"):
        facts.insert(0, ("teacher", manifest["teacher_model"]))
    return ("## Training\n\n" + _table(["setting", "value"], rows) + "\n\n" + _table(["", "value"], facts)
            + "\n\nEvery setting is in `manifest.json` beside the adapter; the loss curve is `loss_curve.png`.")


def _evaluation(evaluation: EvaluationTables | None) -> str:
    if evaluation is None:
        return ("## Evaluation\n\nNot evaluated yet: the evaluation stage (eval_report, then model_release) writes "
                "its table here.")
    overall = evaluation.comparison[evaluation.comparison["field"] == "all"]
    rows = [(r.metric, int(r.n), f"{r.base:.4f}", f"{r.fine_tuned:.4f}",
             f"{r.delta:+.4f} [{r.delta_ci_low:+.4f}, {r.delta_ci_high:+.4f}]",
             f"{r.improvement_pct:+.1f}%" if math.isfinite(r.improvement_pct) else "-")  # no gain in % from 0
            for r in overall.itertuples()]
    text = ("## Evaluation\n\nBase vs fine-tuned on held-out validation questions, against the teacher's "
            "approach; paired delta with its 95% bootstrap interval:\n\n"
            + _table(["metric", "n", "base", "fine-tuned", "delta [95% CI]", "change"], rows))
    wins = evaluation.win_rates
    if len(wins):
        win_rows = [(r.opponent, int(r.n), f"{r.win_rate:.3f} [{r.win_rate_ci_low:.3f}, {r.win_rate_ci_high:.3f}]",
                     f"{r.wins}/{r.ties}/{r.losses}", f"{r.lc_win_rate:.3f}")
                    for r in wins[wins["field"] == "all"].itertuples()]
        text += ("\n\nPairwise preference of the LLM judge (both orders, ties as half, 95% Wilson interval):\n\n"
                 + _table(["vs", "n", "win rate [95% CI]", "W/T/L", "length-controlled"], win_rows))
    per_field = evaluation.comparison[evaluation.comparison["field"] != "all"]
    if len(per_field):
        field_rows = [(r.field, r.metric, int(r.n), f"{r.delta:+.4f} [{r.delta_ci_low:+.4f}, {r.delta_ci_high:+.4f}]")
                      for r in per_field.itertuples()]
        text += "\n\nPer field:\n\n" + _table(["field", "metric", "n", "delta [95% CI]"], field_rows)
    return text


def _limits(evaluation: EvaluationTables | None) -> str:
    lines = ["## Limits"]
    if evaluation is not None and evaluation.verdict.strip():
        lines.append("What the evaluation report concludes: " + evaluation.verdict.strip())
    lines.append("\n".join(f"- {limit}" for limit in LIMITS))
    return "\n\n".join(lines)


def _table(header: list[str], rows: list[tuple]) -> str:
    return pd.DataFrame(rows, columns=header).to_markdown(index=False, disable_numparse=True)
