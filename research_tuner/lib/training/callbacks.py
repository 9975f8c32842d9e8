"""The training-progress callback: step timing (training steps only), tokens per second, and every log entry
reported to the caller."""

from __future__ import annotations

import time
from collections.abc import Callable


def progress_callback(progress: Callable[[dict], None] | None):
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        """Times the training steps (leaving out evaluation and checkpointing), adds tokens/s and timing to
        every training log entry (in the trainer state, so it survives a resume), forces a log at the last
        step, and reports each log entry to `progress`."""

        def __init__(self):
            self.train_time_s = 0.0
            self._mark = time.perf_counter()
            self._since_log_s = 0.0
            self._tokens_at_log = 0
            self._tokens_at_start = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self._mark = time.perf_counter()
            self._tokens_at_log = self._tokens_at_start = state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            self.train_time_s += now - self._mark
            self._since_log_s += now - self._mark
            self._mark = now
            if state.global_step >= state.max_steps:
                control.should_log = True  # the final training loss, whatever logging_steps is

        def on_evaluate(self, args, state, control, **kwargs):
            self._mark = time.perf_counter()

        def on_save(self, args, state, control, **kwargs):
            self._mark = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            entry = state.log_history[-1] if state.log_history else {}
            if "loss" in logs:
                tokens = state.num_input_tokens_seen
                extra = {
                    "tokens_seen": tokens,
                    "tokens_per_second": (tokens - self._tokens_at_log) / self._since_log_s
                    if self._since_log_s > 0
                    else None,
                    "train_time_s": self.train_time_s,
                }
                entry.update(extra)
                logs.update(extra)
                self._tokens_at_log, self._since_log_s = tokens, 0.0
                kind = "train"
            elif "eval_loss" in logs:
                kind = "eval"
            else:
                kind = "summary"
            self._mark = time.perf_counter()
            if progress is not None:
                progress({"kind": kind, "step": state.global_step, "max_steps": state.max_steps, **logs})

        @property
        def session_tokens(self) -> int:
            return self._tokens_at_log - self._tokens_at_start

    return _Progress()
