"""The in-process teacher: a Hugging Face model on this machine, answering in batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from research_tuner.lib.shared.chat import ChatPrompt
from research_tuner.lib.shared.inference import generate_batched
from research_tuner.lib.shared.models import load_causal_lm, load_tokenizer
from research_tuner.lib.teacher.base import OnResponse, Progress, TeacherFailure, TeacherRequest, TeacherResponse, Usage
from research_tuner.lib.teacher.cache import ResponseCache

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings


#: Rows a batch can hold for little more than one costs: decoding a small batch on a CPU is bound by the per-step
#: overhead, not the arithmetic (16 rows take 1.86x one row's time here, 4 no longer: benchmarks/results/sampling.json).
FREE_BATCH_ROWS = 16


class LocalTeacher:
    """Batches prompts that share sampling parameters, each sampled with its own seed; one model load per
    instance."""

    def __init__(self, settings: TeacherSettings):
        self.endpoint = "local"
        self.model = settings.model
        self.batch_size = settings.max_concurrency
        self._tokenizer = load_tokenizer(settings.model)
        self._lm = load_causal_lm(settings.model, precision=settings.precision, tokenizer=self._tokenizer)

    def complete(
        self,
        requests: Sequence[TeacherRequest],
        usage: Usage,
        progress: Progress | None = None,
        on_response: OnResponse | None = None,
    ) -> list[TeacherResponse | TeacherFailure]:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[(req.max_tokens, req.temperature, req.top_p)].append(i)
        results: list[TeacherResponse | TeacherFailure | None] = [None] * len(requests)
        done_before = 0
        for (max_tokens, temperature, top_p), idx in groups.items():
            prompts = [ChatPrompt(requests[i].messages, requests[i].assistant_prefix) for i in idx]

            def report(done: int, _total: int, offset: int = done_before) -> None:
                if progress:
                    progress(offset + done, len(requests))

            outputs = generate_batched(
                self._lm,
                self._tokenizer,
                prompts,
                max_new_tokens=max_tokens,
                batch_size=self.batch_size,
                do_sample=temperature > 0,
                temperature=temperature,
                top_p=top_p,
                seeds=[requests[i].seed for i in idx],
                progress=report,
            )
            for i, out in zip(idx, outputs, strict=True):
                response = TeacherResponse(out.text, out.finish_reason, out.prompt_tokens, out.completion_tokens)
                usage.record(response)
                results[i] = response
                if on_response:
                    on_response(i, response)
            done_before += len(idx)
        return results  # type: ignore[return-value]

    def free_rows(self, requests: int) -> int:
        """How many more requests a call of `requests` can carry at about no extra time."""
        return max(0, min(self.batch_size, FREE_BATCH_ROWS) - requests)

    def close(self) -> None:
        self._lm = None


def build(settings: TeacherSettings, cache: ResponseCache) -> LocalTeacher:
    """The registry's factory (registry.py): a model on this machine, batching `max_concurrency` prompts."""
    return LocalTeacher(settings)
