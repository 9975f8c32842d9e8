"""The OpenAI Batch API as a teacher: half the price, answers within the completion window (24 h).

Requests not in the cache go into a JSONL file (custom_id = the request's cache key) that is uploaded
with purpose "batch"; a batch is created from it. The file id and request keys are written to the
cache DB before the batch is created, and the batch id right after, so a process killed at any point
resumes on restart: it polls the recorded batch instead of submitting (and paying for) it again, and a
batch whose creation was cut off is found again by its input file. Answers are stored in the cache as
the output file is read; lines in the error file come back as failures, so the caller's validation
and retries (a follow-up batch with new seeds, bounded) still apply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import openai

from research_tuner.lib.teacher.base import (
    OnResponse,
    Progress,
    TeacherConfigError,
    TeacherFailure,
    TeacherRequest,
    TeacherResponse,
    Usage,
)
from research_tuner.lib.teacher.budget import Budget
from research_tuner.lib.teacher.cache import ResponseCache
from research_tuner.lib.teacher.credentials import api_key_for
from research_tuner.lib.teacher.endpoint import cannot_connect, display_url
from research_tuner.lib.teacher.wire import MalformedResponse, chat_body, response_from_completion

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings

CHAT_ENDPOINT = "/v1/chat/completions"
FINAL_STATUSES = {"completed", "failed", "expired", "cancelled"}


class BatchTeacher:
    def __init__(self, settings: TeacherSettings, cache: ResponseCache, *, budget: Budget | None = None):
        self.model = settings.model
        self.cache = cache
        self.poll_interval_s = settings.batch_poll_interval_s
        self.completion_window = settings.batch_completion_window
        self.max_requests_per_batch = settings.batch_max_requests
        self.price_factor = settings.batch_price_factor
        self.budget = budget or Budget(None, 0.0, 0.0)
        self._client = openai.OpenAI(api_key=api_key_for(settings), base_url=settings.base_url,
                                     timeout=settings.request_timeout_s, max_retries=4)
        self.endpoint = str(self._client.base_url)  # the same as the online teacher's: one cache for both
        self.batches_created = 0
        self.batches_resumed = 0
        self._reservations: dict[str, float] = {}  # input file id -> dollars reserved for its batch

    def complete(
        self,
        requests: Sequence[TeacherRequest],
        usage: Usage,
        progress: Progress | None = None,
        on_response: OnResponse | None = None,
    ) -> list[TeacherResponse | TeacherFailure]:
        keys = [r.cache_key(self.endpoint, self.model) for r in requests]
        wanted = {k: i for i, k in enumerate(keys)}
        results: dict[int, TeacherResponse | TeacherFailure] = {}
        open_files: list[str] = []
        covered: set[str] = set()
        for file_id, batch_id, status, batch_keys in self.cache.open_batches(self.endpoint, self.model):
            if wanted.keys() & set(batch_keys):  # a batch of an earlier run holds some of these: resume it
                if status == "creating":
                    self._create(file_id, maybe_exists=True)
                open_files.append(file_id)
                covered.update(batch_keys)
                self.batches_resumed += 1
        fresh = [i for i, k in enumerate(keys) if k not in covered]
        for start in range(0, len(fresh), self.max_requests_per_batch):
            open_files.append(self._submit([requests[i] for i in fresh[start : start + self.max_requests_per_batch]],
                                           [keys[i] for i in fresh[start : start + self.max_requests_per_batch]]))
        batch_ids = {fid: bid for fid, bid, _, _ in self.cache.open_batches(self.endpoint, self.model)}
        pending = [f for f in open_files if f in batch_ids]
        while pending:
            for file_id in list(pending):
                batch = self._client.batches.retrieve(batch_ids[file_id])
                if batch.status not in FINAL_STATUSES:
                    continue
                self._collect(batch, requests, wanted, results, usage, on_response)
                self.cache.record_batch_finished(file_id, batch.status)
                pending.remove(file_id)
                if progress:
                    progress(len(results), len(requests))
                if batch.status == "failed" and not batch.output_file_id:
                    messages = "; ".join(e.message or "" for e in (batch.errors.data or [])) if batch.errors else ""
                    raise TeacherConfigError(
                        f"the server rejected batch {batch.id}: {messages or 'no reason given'}. Check teacher.model "
                        f"({self.model!r}) and teacher.base_url ({self.endpoint}); the batch will not be resubmitted "
                        "until this is fixed."
                    )
            if pending:
                time.sleep(self.poll_interval_s)
        out: list[TeacherResponse | TeacherFailure] = []
        for i in range(len(requests)):
            result = results.get(i)
            if result is None:
                usage.record_failure("batch: not answered")
                result = TeacherFailure("batch: not answered")
            out.append(result)
        return out

    def _submit(self, requests: Sequence[TeacherRequest], keys: Sequence[str]) -> str:
        """Upload the input file and create the batch; returns the input file id (the DB's handle)."""
        reservations = []
        try:
            for req in requests:  # the whole batch's worst case must fit under the cap, or none of it goes
                reservations.append(self.budget.reserve(req, self.price_factor))
        except Exception:
            for r in reservations:
                self.budget.release(r)
            raise
        lines = [json.dumps({"custom_id": k, "method": "POST", "url": CHAT_ENDPOINT, "body": chat_body(self.model, r)})
                 for k, r in zip(keys, requests, strict=True)]
        try:
            upload = self._client.files.create(file=("requests.jsonl", ("\n".join(lines) + "\n").encode()),
                                               purpose="batch")
        except openai.APIConnectionError as exc:
            for r in reservations:
                self.budget.release(r)
            reason = cannot_connect(exc)
            if reason is None:
                raise
            raise TeacherConfigError(f"cannot reach the batch server at {display_url(self.endpoint)} ({reason}): "
                                     "start it, or fix teacher.base_url (or OPENAI_BASE_URL)") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
            for r in reservations:
                self.budget.release(r)
            raise TeacherConfigError(
                f"the server at {display_url(self.endpoint)} refused the batch upload ({type(exc).__name__}, HTTP "
                f"{exc.status_code}): check the key variable teacher.api_key_env names, and that the server has the "
                "Batch API (else set teacher.mode=online)") from None
        self.cache.record_batch_file(upload.id, self.endpoint, self.model, keys)
        self._create(upload.id, maybe_exists=False)
        self._reservations[upload.id] = sum(reservations)
        return upload.id

    def _create(self, file_id: str, maybe_exists: bool) -> None:
        """Create the batch for an uploaded file - unless a cut-off earlier attempt already did."""
        existing = self._find_batch(file_id) if maybe_exists else None
        if existing is None:
            try:
                batch = self._client.with_options(max_retries=0).batches.create(
                    input_file_id=file_id, endpoint=CHAT_ENDPOINT, completion_window=self.completion_window)
            except (openai.APIConnectionError, openai.InternalServerError):
                batch = self._find_batch(file_id)  # it may have been created before the answer was lost
                if batch is None:
                    raise
            except (openai.BadRequestError, openai.AuthenticationError, openai.PermissionDeniedError,
                    openai.NotFoundError) as exc:
                raise TeacherConfigError(f"the server refused to create a batch: {exc}") from None
            existing = batch
            self.batches_created += 1
        self.cache.record_batch_submitted(file_id, existing.id)

    def _find_batch(self, file_id: str):
        try:
            for batch in self._client.batches.list(limit=100):
                if batch.input_file_id == file_id:
                    return batch
        except openai.NotFoundError:
            return None
        return None

    def _collect(self, batch, requests, wanted, results, usage: Usage, on_response: OnResponse | None) -> None:
        """Store every answer of a finished batch; its error lines become failures."""
        reserved = self._reservations.pop(batch.input_file_id, 0.0)
        self.budget.release(reserved)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for line in self._client.files.content(file_id).text.splitlines():
                if not line.strip():
                    continue
                record = json.loads(line)
                key = record.get("custom_id")
                response = record.get("response") or {}
                index = wanted.get(key)
                if response.get("status_code") != 200:
                    if index is not None:
                        reason = f"batch: HTTP {response.get('status_code')}"
                        usage.record_failure(reason)
                        results[index] = TeacherFailure(reason)
                    continue
                # An answer to a request of an earlier run is stored as sent (no forced opening to strip).
                req = requests[index] if index is not None else TeacherRequest((), 0, 0.0, 1.0, 0)
                try:
                    answer = response_from_completion(req, response["body"])
                except (MalformedResponse, ValueError, KeyError):
                    if index is not None:
                        usage.record_failure("batch: malformed answer")
                        results[index] = TeacherFailure("batch: malformed answer")
                    continue
                self.budget.settle(0.0, answer.prompt_tokens, answer.completion_tokens, self.price_factor)
                usage.record(answer, batch=True)
                if index is None:
                    self.cache.put(key, answer)  # paid for by an earlier run's request: keep it
                    continue
                results[index] = answer
                if on_response:
                    on_response(index, answer)
                else:
                    self.cache.put(key, answer)

    def close(self) -> None:
        self._client.close()
