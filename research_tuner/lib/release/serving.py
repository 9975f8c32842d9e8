"""The OpenAI-compatible server for the trained model, run by a server the project does not write itself: on a
CUDA machine with vLLM installed, `vllm serve` with the adapter (--enable-lora, the base model from the manifest)
or the merged folder; elsewhere transformers' own `transformers serve` on the merged folder (it loads plain
models, not adapters: train with training.export_merged). Clients (the openai package, or this project's teacher
through teacher.base_url) name the model by `served_model_name(...)`."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: The name clients ask for when vLLM serves the adapter.
ADAPTER_NAME = "research-tuner"


@dataclass(frozen=True)
class ServerPlan:
    command: list[str]
    #: The `model` a client sends.
    model: str
    engine: str  # "vllm" or "transformers"
    #: Variables to start it with: no PyPI update check, and no Hub at all for a local folder.
    env: dict[str, str] = field(default_factory=lambda: {"HF_HUB_DISABLE_UPDATE_CHECK": "1"})


def vllm_available() -> bool:
    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None


def server_plan(folder: Path, manifest: dict, *, host: str = "127.0.0.1", port: int = 8000,
                engine: str = "auto") -> ServerPlan:
    """How to serve the lora_adapter folder `folder` (adapter/, tokenizer/, manifest.json, optionally merged/).

    engine 'auto': vLLM on a CUDA machine that has it, else `transformers serve`."""
    from research_tuner.lib.shared.models import hub_model_id

    folder = Path(folder)
    base_model = hub_model_id(manifest["base_model"]) or manifest["base_model"]
    merged = folder / "merged"
    if engine == "auto":
        engine = "vllm" if vllm_available() else "transformers"
    if engine == "vllm":
        if merged.is_dir():
            command = ["vllm", "serve", str(merged), "--served-model-name", ADAPTER_NAME]
        else:  # the base model with the adapter on top, as vLLM's LoRA support serves it
            command = ["vllm", "serve", base_model, "--enable-lora",
                       "--max-lora-rank", str(_vllm_rank(manifest["training"]["lora_r"])),
                       "--lora-modules", f"{ADAPTER_NAME}={folder / 'adapter'}"]
        return ServerPlan(command + ["--host", host, "--port", str(port)], ADAPTER_NAME, "vllm")
    if engine != "transformers":
        raise ValueError(f"unknown engine {engine!r}: choose auto, vllm or transformers")
    if not merged.is_dir():
        raise FileNotFoundError(f"no merged model in {merged}: `transformers serve` loads plain models, not "
                                "adapters; train with --set training.export_merged=true (or serve the adapter with "
                                "vLLM on a GPU)")
    return ServerPlan(transformers_serve_command(merged, host=host, port=port), str(merged), "transformers",
                      env={"HF_HUB_DISABLE_UPDATE_CHECK": "1", "HF_HUB_OFFLINE": "1"})


def _vllm_rank(rank: int) -> int:
    """The smallest --max-lora-rank vLLM accepts that holds `rank`."""
    return next((r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank), rank)


def transformers_serve_command(model_dir: Path, *, host: str, port: int) -> list[str]:
    """`transformers serve` pinned to one local model folder on the CPU, through this interpreter."""
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent))
    launcher = [executable] if executable else [sys.executable, "-m", "transformers.cli.transformers"]
    return [*launcher, "serve", str(model_dir), "--host", host, "--port", str(port), "--device", "cpu",
            "--dtype", "auto"]
