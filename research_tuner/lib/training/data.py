"""Training data: question/approach rows as conversational prompt-completion examples, and the run fingerprint
that decides whether earlier checkpoints may be resumed."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.shared.chat import CHAT_TEMPLATE_KWARGS, student_messages

if TYPE_CHECKING:
    from research_tuner.settings import TrainingSettings

#: Settings that do not change what is trained, so changing them does not discard checkpoints.
#: `processes` is one of them: the effective batch, the examples of each optimizer step and the loss
#: normalisation are the same for any number of processes (up to float rounding), so a run can resume on more
#: or fewer GPUs. The kernel choices (attention, loss, compilation, checkpointing, padding-free rows) compute the
#: same maths, so a run may resume with faster ones.
NOT_IN_FINGERPRINT = {"save_steps", "logging_steps", "hf_token_env", "evals_per_epoch", "export_merged", "processes",
                      "gradient_checkpointing", "padding_free", "attention", "loss_kernel", "compile"}


def to_prompt_completion(frame: pd.DataFrame):
    """A `datasets.Dataset` of conversational prompt-completion examples from `question`/`approach` columns."""
    from datasets import Dataset

    missing = {"question", "approach"} - set(frame.columns)
    if missing:
        raise ValueError(f"training data lacks the column(s) {sorted(missing)}")
    return Dataset.from_dict(
        {
            "prompt": [student_messages(str(q)) for q in frame["question"]],
            "completion": [[{"role": "assistant", "content": str(a)}] for a in frame["approach"]],
            # TRL passes these to apply_chat_template: the same fixed date as at inference (lib/shared/chat.py)
            "chat_template_kwargs": [dict(CHAT_TEMPLATE_KWARGS)] * len(frame),
        }
    )


def run_fingerprint(train: pd.DataFrame, validation: pd.DataFrame, settings: TrainingSettings, max_steps) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(settings.model_dump(mode="json", exclude=NOT_IN_FINGERPRINT), sort_keys=True).encode())
    digest.update(f"max_steps={max_steps}".encode())
    for frame in (train, validation):
        for column in ("question", "approach"):
            for value in frame[column]:
                digest.update(str(value).encode())
                digest.update(b"\x00")
        digest.update(b"\x01")
    return digest.hexdigest()[:16]
