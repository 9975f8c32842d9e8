"""Checkpoints of a training run: which one to resume from (only a run with the same data and settings), and
their step numbers. The Trainer writes them to `output_dir/checkpoints`."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.training.data import run_fingerprint

if TYPE_CHECKING:
    from research_tuner.settings import TrainingSettings

log = logging.getLogger(__name__)

#: Checkpoints kept in output_dir/checkpoints (the newest ones).
SAVE_TOTAL_LIMIT = 3
FINGERPRINT_FILE = "run_fingerprint.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def last_checkpoint(checkpoint_dir: Path) -> Path | None:
    if not checkpoint_dir.is_dir():
        return None
    found = [
        (int(m.group(1)), path)
        for path in checkpoint_dir.iterdir()
        if path.is_dir() and (m := _CHECKPOINT_RE.match(path.name)) and (path / "trainer_state.json").is_file()
    ]
    return max(found)[1] if found else None


def prepare_checkpoints(
    train: pd.DataFrame, validation: pd.DataFrame, settings: TrainingSettings, output_dir: Path, max_steps
) -> Path | None:
    """The checkpoint to resume from, if its run had the same data and settings; other checkpoints are removed
    and this run's fingerprint is recorded."""
    checkpoint_dir = output_dir / "checkpoints"
    output_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = run_fingerprint(train, validation, settings, max_steps)
    resume_from = last_checkpoint(checkpoint_dir)
    fingerprint_file = checkpoint_dir / FINGERPRINT_FILE
    if resume_from is not None:
        previous = json.loads(fingerprint_file.read_text()).get("fingerprint") if fingerprint_file.is_file() else None
        if previous != fingerprint:
            log.warning("checkpoints in %s are from other data or settings: starting over", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
            resume_from = None
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    fingerprint_file.write_text(json.dumps({"fingerprint": fingerprint}))
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
    return resume_from


def checkpoint_step(checkpoint: Path | None) -> int | None:
    return int(_CHECKPOINT_RE.match(checkpoint.name).group(1)) if checkpoint is not None else None
