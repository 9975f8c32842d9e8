"""A real OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

It answers like a capable teacher would (JSON question lists, Markdown approaches with the 7 sections,
one-section answers, pointwise grades, pairwise verdicts by a known rule: fake_judges.py), deterministically
from the request, and can inject faults: status codes with
headers, slow answers, dropped connections, malformed JSON, truncated answers, refusals, hung requests.
It counts every request it sees, so tests can assert how many were sent.

It can enforce a rate limit like OpenAI's: requests (and tokens) per fixed window, sent back in the
`x-ratelimit-*` headers, and 429 with `Retry-After` when a request would exceed it; the limit can be
changed mid-run. Rejected requests do not use up the limit; admitted ones (faults included) do. It also
serves the Batch API (files + batches), answering each line with the same fake model, and the model list
(GET /v1/models: `known_models`, or 404 when any model is accepted, as from a server that lists none).
With `expected_key` set, every route answers 401 to any other Authorization header.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from aiohttp import web

from research_tuner.lib.generation.approach_prompts import SECTION_INSTRUCTIONS
from research_tuner.lib.evaluation.judge.prompts import RESPONSE_CLOSE, RESPONSE_OPEN
from research_tuner.lib.shared.sections import SECTIONS, present_sections
from research_tuner_tests.support.fake_judges import is_pairwise_request, pairwise_answer


@dataclass
class Fault:
    """One scripted misbehaviour, used for the next matching request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without an answer
    body: str | None = None  # raw body, e.g. malformed JSON
    finish_reason: str | None = None  # e.g. "length" for a truncated answer
    text: str | None = None  # replace the answer's text
    refusal: bool = False
    hang_s: float = 0.0  # hold the request this long, then close the connection (a client timeout)


#: The faults a benchmark draws at random: rate-limit-free 429, 500, dropped connection, timeout.
RANDOM_FAULT_KINDS = ("429", "500", "drop", "timeout")


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: '20ms', '1s', '1.5s', '6m0s', '1h2m3s'."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{int(minutes)}m" + text
    if hours:
        text = f"{int(hours)}h" + text
    return text


def request_key(body: dict) -> str:
    """What makes two requests the same request (to count duplicated successes): model, messages, seed."""
    same = {k: body.get(k) for k in ("model", "messages", "seed", "max_tokens")}
    return hashlib.sha256(json.dumps(same, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class RateLimit:
    """`requests` (and optionally `tokens`) per fixed window of `window_s` seconds."""

    requests: int
    window_s: float = 60.0
    tokens: int | None = None


def estimate_tokens(body: dict) -> int:
    """What the limiter charges a request, as OpenAI does at admission: the prompt plus max_tokens."""
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return prompt + int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)


def count_tokens(text: str) -> int:
    """The server's token count: a stand-in for a BPE tokenizer, about 4 characters per token on English."""
    return math.ceil(len(text) / 4)


def _digest(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


def is_judge_request(messages: list[dict]) -> bool:
    return RESPONSE_OPEN in messages[-1]["content"] and "Grade the RESPONSE" in messages[-1]["content"]


def fake_judgement(response: str) -> dict[str, int]:
    """The fake judge's scores, a known function of the graded text: each of the 7 sections present scores
    5, 4, 3, 5, 4, 3, 5 in order (distinct neighbours, so a mixed-up column shows), absent ones 0; feasibility
    is the number of sections present, capped at 5."""
    present = set(present_sections(response))
    scores = {re.sub(r"[^a-z]+", "_", s.lower()): (5 - i % 3 if s in present else 0) for i, s in enumerate(SECTIONS)}
    return scores | {"feasibility": min(5, len(present))}


def _judge_answer(user: str, wants_json: bool) -> str:
    start = user.index(RESPONSE_OPEN) + len(RESPONSE_OPEN)
    response = user[start : user.rindex(RESPONSE_CLOSE)]
    scores = fake_judgement(response)
    if wants_json:
        return json.dumps({"rationale": f"{sum(1 for v in list(scores.values())[:7] if v)} of 7 sections.", **scores})
    # A server that ignores response_format: prose with one 'Name: n/5' line per criterion.
    lines = [f"- **{name.replace('_', ' ').title()}**: {value}/5" for name, value in scores.items()]
    return "Here is my assessment.\n" + "\n".join(lines)


_OPENERS = ["How does", "To what extent does", "Why does", "Under which conditions does"]
_CAUSES = ["funding instability", "peer review delay", "open data mandates", "team diversity", "remote fieldwork",
           "sensor drift", "public engagement", "archival gaps", "replication pressure", "software tooling",
           "language barriers", "ethics board scrutiny", "industry partnership", "sample attrition"]
_VERBS = ["limit", "reshape", "bias", "accelerate", "stabilise"]
_EFFECTS = ["measurement validity", "long-term trend estimates", "cross-site comparisons", "novice training",
            "theory building", "policy uptake", "citation patterns", "method choice", "budget planning",
            "participant recruitment", "model calibration"]
_SETTINGS = ["in low-resource institutions", "during the last decade", "across European universities",
             "for early-career researchers", "in multi-site consortia", "under pandemic restrictions",
             "in community-led projects"]


def answer_for(messages: list[dict], wants_json: bool, seed: int | None = None) -> str:
    """What a well-behaved teacher says to this conversation (its questions also depend on `seed` when given)."""
    user = messages[-1]["content"]
    if is_judge_request(messages):
        return _judge_answer(user, wants_json)
    if "Would one study answer both questions" in user:
        return "yes" if FakeOpenAIServer.said_yes(user) else "no"
    if "Grade this research approach from 1 to 10" in user:  # 8 with all 7 sections, else 3
        score = 8 if len(present_sections(user)) == len(SECTIONS) else 3
        return json.dumps({"score": score}) if wants_json else f"Score: {score}/10"
    if wants_json or '"questions"' in user:
        n = int(re.search(r"Write (\d+) distinct", user).group(1)) if "distinct" in user else 5
        sub = re.search(r"subdomain '([^']+)'", user)
        topic = sub.group(1) if sub else "the field"
        seed = _digest(user) if seed is None else _digest(user, str(seed))
        # Distinct questions, as a capable teacher writes them (the dedup step would merge templated ones).
        questions = [
            f"{_OPENERS[(seed + i) % len(_OPENERS)]} {_CAUSES[(seed // 7 + 3 * i) % len(_CAUSES)]} "
            f"{_VERBS[(seed // 11 + i) % len(_VERBS)]} {_EFFECTS[(seed // 13 + 5 * i) % len(_EFFECTS)]} "
            f"in {topic} {_SETTINGS[(seed // 17 + i) % len(_SETTINGS)]}?"
            for i in range(n)
        ]
        return json.dumps({"questions": questions})
    if "level-2 Markdown headings" in user:
        question = user.split(": ", 1)[1].split("\n")[0]
        return "\n\n".join(f"## {s}\n{section_text(s, question)}" for s in SECTIONS)
    if "Write one specific research question" in user:
        return " the local climate affect bird migration timing in northern wetlands?"
    section = next((s for s, instruction in SECTION_INSTRUCTIONS.items() if instruction in user), "Methodology")
    question = user.split(": ", 1)[1].split("\n")[0] if ": " in user else "the question"
    return section_text(section, question)


#: What a capable teacher writes under each heading: a different substance per section (the approach gates reject
#: sections that copy each other), about the question (the first section names it).
_SECTION_TEXT = {
    "Hypothesis": "For the question '{question}', we expect a measurable, directional effect that a preregistered "
                  "test can confirm or refute against the null of no difference.",
    "Methodology": "A mixed-methods design combines a controlled comparison across sites with semi-structured "
                   "interviews, so that effect sizes and mechanisms are both observed.",
    "Key Steps": "1. Review prior work and define the constructs. 2. Pilot the instruments. 3. Recruit the sample. "
                 "4. Run the main study. 5. Analyse the results and report them openly.",
    "Data Collection Plan": "Surveys, administrative records and field observations are gathered over twelve months "
                            "at several sites, each with consent and documented provenance.",
    "Data Analysis Plan": "Multilevel regression estimates the main effect with site as a random intercept, and "
                          "thematic coding of the interviews explains the mechanisms behind it.",
    "Challenges and Limitations": "Attrition, measurement error and confounding by unobserved local factors may bias "
                                  "the estimates; sensitivity analyses bound how much they could matter.",
    "Ethical Considerations": "An ethics board reviews the protocol; participants give informed consent, records are "
                              "pseudonymised, and findings are shared with the communities involved.",
}


def section_text(section: str, question: str) -> str:
    return _SECTION_TEXT[section].format(question=question)


def closed_port_url() -> str:
    """A loopback base URL nothing listens on (the port was free a moment ago): a server that is not there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class FakeOpenAIServer:
    """Start with `with FakeOpenAIServer() as server:`; point the client at `server.base_url`."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = 0
        self.faults: deque[Fault] = deque()
        self.requests = 0
        self.answered = 0
        self.paths: Counter[str] = Counter()
        self.bodies: list[dict] = []
        self.expected_key: str | None = None
        self.known_models: set[str] | None = None
        self.latency_s = 0.0  # every admitted request takes this long to answer
        self.send_limit_headers = True
        self.hold_after: int | None = None  # once this many were answered, hold new requests until it is None
        self.rate_limit: RateLimit | None = None
        self.rate_limited = 0  # 429s sent because a request would exceed the limit
        self.rate_limited_times: list[float] = []  # time.monotonic() of each
        self.faults_injected = 0
        self.fault_counts: Counter[str] = Counter()  # by kind: '429', '500', 'drop', 'timeout'
        self.successes: Counter[str] = Counter()  # request_key -> successful answers delivered
        self.success_times: list[float] = []  # time.monotonic() of each admitted request later answered
        self.fault_rate = 0.0
        self.fault_kinds: tuple[str, ...] = RANDOM_FAULT_KINDS
        self.hang_s = 2.0
        self.questions_follow_seed = False  # True: a request's seed changes its questions, as a sampling model's do
        self._rng = random.Random(0)
        self._window_start: float | None = None  # the first window starts with the first request
        self._window_requests = 0
        self._window_tokens = 0
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batch_release = threading.Event()  # batches stay in progress until this is set
        self.batch_release.set()
        self.batch_delay_s = 0.0
        self.malformed_judgements = False  # every judge request gets an answer without scores
        self.pairwise_judge = "sections"  # how pairwise verdicts are chosen (fake_judges.py): first, sections,
        # longer, malformed
        self.ignore_response_format = False  # answer as a server without structured output would
        self.batch_api = True  # False: the Batch API routes answer 404, as on a server without one
        self.models_status: int | None = None  # GET /v1/models answers this error, its message echoing the key
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @staticmethod
    def said_yes(user: str) -> bool:
        """The fake teacher's verdict on a borderline pair: yes when the two questions share a quarter of their
        content words."""
        from research_tuner.lib.shared.similarity.semantic import content_words

        a, b = (content_words(re.search(rf"Question {x}: (.*)", user).group(1)) for x in "AB")
        return len(a & b) / len(a | b) >= 0.25

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Enforce (or change, mid-run) the limit; the current window keeps what it already used."""
        with self._lock:
            self.rate_limit = limit

    def random_faults(self, rate: float, kinds: tuple[str, ...] = RANDOM_FAULT_KINDS, seed: int = 0,
                      hang_s: float = 2.0) -> None:
        """Give each admitted request this probability of a fault drawn from `kinds`."""
        with self._lock:
            self.fault_rate, self.fault_kinds, self._rng, self.hang_s = rate, kinds, random.Random(seed), hang_s

    @property
    def duplicated_successes(self) -> int:
        return sum(n - 1 for n in self.successes.values() if n > 1)

    def _limit_headers(self, now: float) -> dict[str, str]:
        limit = self.rate_limit
        if limit is None or not self.send_limit_headers:
            return {}
        reset = format_duration((self._window_start or now) + limit.window_s - now)
        headers = {
            "x-ratelimit-limit-requests": str(limit.requests),
            "x-ratelimit-remaining-requests": str(max(0, limit.requests - self._window_requests)),
            "x-ratelimit-reset-requests": reset,
        }
        if limit.tokens is not None:
            headers |= {
                "x-ratelimit-limit-tokens": str(limit.tokens),
                "x-ratelimit-remaining-tokens": str(max(0, limit.tokens - self._window_tokens)),
                "x-ratelimit-reset-tokens": reset,
            }
        return headers

    def _admit(self, body: dict) -> tuple[bool, dict[str, str], float]:
        """Count the request against the window, or refuse it: (admitted, headers, retry-after seconds)."""
        now = time.monotonic()
        with self._lock:
            limit = self.rate_limit
            if limit is None:
                return True, self._limit_headers(now), 0.0
            if self._window_start is None:
                self._window_start = now
            if now >= self._window_start + limit.window_s:
                self._window_start = now - (now - self._window_start) % limit.window_s
                self._window_requests = self._window_tokens = 0
            tokens = estimate_tokens(body)
            over = self._window_requests + 1 > limit.requests or (
                limit.tokens is not None and self._window_tokens + tokens > limit.tokens and self._window_tokens > 0)
            if over:
                self.rate_limited += 1
                self.rate_limited_times.append(now)
                return False, self._limit_headers(now), self._window_start + limit.window_s - now
            self._window_requests += 1
            self._window_tokens += tokens
            return True, self._limit_headers(now), 0.0

    def _random_fault(self) -> Fault | None:
        with self._lock:
            if not self.fault_rate or self._rng.random() >= self.fault_rate:
                return None
            kind = self._rng.choice(self.fault_kinds)
        return {
            "429": Fault(status=429, headers={"retry-after-ms": "50"}),  # overload, not the rate limit
            "500": Fault(status=500),
            "drop": Fault(drop=True),
            "timeout": Fault(hang_s=self.hang_s),
        }[kind]

    def _refused_key(self, request: web.Request) -> web.Response | None:
        """401, as OpenAI words it (echoing the key's ends), when a key is expected and another one came."""
        sent = request.headers.get("Authorization", "")
        if not self.expected_key or sent == f"Bearer {self.expected_key}":
            return None
        key = sent.removeprefix("Bearer ")
        return web.json_response({"error": {"message": f"Incorrect API key provided: {key[:3]}***{key[-4:]}.",
                                            "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401)

    async def _models(self, request: web.Request) -> web.Response:
        self._count(request, "GET /v1/models")
        refused = self._refused_key(request)
        if refused is not None:
            return refused
        if self.models_status is not None:
            sent = request.headers.get("Authorization", "")
            return web.json_response({"error": {"message": f"upstream failed for {sent}"}}, status=self.models_status)
        if self.known_models is None:
            return web.json_response({"error": {"message": "Not Found"}}, status=404)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in sorted(self.known_models)]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.requests += 1
            self.paths[request.path] += 1
        refused = self._refused_key(request)
        if refused is not None:
            return refused
        body = await request.json()
        self.bodies.append(body)
        admitted, limit_headers, wait_s = self._admit(body)
        if not admitted:
            headers = {**limit_headers, "retry-after-ms": str(max(1, math.ceil(wait_s * 1000))),
                       "retry-after": str(max(1, math.ceil(wait_s)))}
            return web.json_response({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                                "code": "rate_limit_exceeded"}}, status=429, headers=headers)
        admitted_at = time.monotonic()
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
        fault = fault or self._random_fault()
        if fault and (fault.status != 200 or fault.drop or fault.hang_s):
            kind = "timeout" if fault.hang_s else "drop" if fault.drop else str(fault.status)
            with self._lock:
                self.faults_injected += 1
                self.fault_counts[kind] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        while self.hold_after is not None and self.answered >= self.hold_after:
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)
            await asyncio.sleep(0.01)
        if fault and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault and fault.hang_s:
            await asyncio.sleep(fault.hang_s)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=504)
        status, payload = self.complete_body(body, fault)
        if fault and fault.drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        if status != 200:
            extra = fault.headers if fault else {}
            return web.json_response(payload, status=status, headers={**extra, **limit_headers})
        if isinstance(payload, str):
            return web.Response(text=payload, content_type="application/json")
        transport = request.transport
        if transport is None or transport.is_closing():
            return web.Response(status=499)  # the client went away: nothing was delivered
        with self._lock:
            self.answered += 1
            self.successes[request_key(body)] += 1
            self.success_times.append(admitted_at)
        return web.json_response(payload, headers=limit_headers)

    def complete_body(self, body: dict, fault: Fault | None) -> tuple[int, dict | str]:
        """(status, chat-completion object or error, or a raw malformed body) for one request."""
        if self.known_models is not None and body.get("model") not in self.known_models:
            return 404, {"error": {"message": f"The model {body.get('model')} does not exist",
                                   "code": "model_not_found"}}
        if fault and fault.status != 200:
            return fault.status, {"error": {"message": f"injected {fault.status}"}}
        if fault and fault.body is not None:
            return 200, fault.body
        wants_json = bool(body.get("response_format")) and not self.ignore_response_format
        if is_pairwise_request(body["messages"]):
            text = pairwise_answer(body["messages"], self.pairwise_judge, wants_json)
        else:
            text = (answer_for(body["messages"], wants_json, body.get("seed")) if self.questions_follow_seed
                    else answer_for(body["messages"], wants_json))
        if self.malformed_judgements and is_judge_request(body["messages"]):
            text = "A thoughtful proposal overall; I would give it a solid grade."
        finish = "stop"
        refusal = None
        if fault:
            text = fault.text if fault.text is not None else text
            finish = fault.finish_reason or finish
            if fault.refusal:
                text, refusal = None, "I can't help with that."
            if finish == "length" and text:
                text = text[: len(text) // 2]
        prompt_tokens = sum(count_tokens(m["content"]) for m in body["messages"])
        completion_tokens = count_tokens(text or "")
        return 200, {
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": text, "refusal": refusal}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    # --- Batch API: /v1/files, /v1/files/{id}/content, /v1/batches, /v1/batches/{id} -----------------

    def _count(self, request: web.Request, name: str) -> None:
        with self._lock:
            self.requests += 1
            self.paths[name] += 1

    @web.middleware
    async def _batch_gate(self, request: web.Request, handler):
        """The key check of every route but chat (which counts first), and the Batch API's absence when off."""
        batch_route = request.path.startswith(("/v1/files", "/v1/batches"))
        if batch_route:
            refused = self._refused_key(request)
            if refused is not None:
                return refused
            if not self.batch_api:
                return web.json_response({"error": {"message": "Not Found"}}, status=404)
        return await handler(request)

    async def _upload_file(self, request: web.Request) -> web.Response:
        self._count(request, "POST /v1/files")
        form = await request.post()
        upload = form["file"]
        content = upload.file.read()
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = content
        return web.json_response(self._file_object(file_id, form.get("purpose", "batch"), upload.filename))

    def _file_object(self, file_id: str, purpose: str, filename: str = "data.jsonl") -> dict:
        return {"id": file_id, "object": "file", "bytes": len(self.files[file_id]), "created_at": 0,
                "filename": filename, "purpose": purpose, "status": "processed"}

    async def _file_content(self, request: web.Request) -> web.Response:
        self._count(request, "GET /v1/files/{id}/content")
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return web.json_response({"error": {"message": f"No such File object: {file_id}"}}, status=404)
        return web.Response(body=self.files[file_id], content_type="application/octet-stream")

    async def _create_batch(self, request: web.Request) -> web.Response:
        self._count(request, "POST /v1/batches")
        body = await request.json()
        if body.get("input_file_id") not in self.files:
            return web.json_response({"error": {"message": "input_file_id not found"}}, status=400)
        batch_id = f"batch_{len(self.batches) + 1}"
        batch = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
            "status": "in_progress", "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata"),
        }
        self.batches[batch_id] = batch
        asyncio.get_running_loop().create_task(self._run_batch(batch))
        return web.json_response(batch)

    async def _run_batch(self, batch: dict) -> None:
        await asyncio.sleep(self.batch_delay_s)
        while not self.batch_release.is_set():
            await asyncio.sleep(0.02)
        outputs, errors = [], []
        lines = [json.loads(ln) for ln in self.files[batch["input_file_id"]].decode().splitlines() if ln.strip()]
        for n, line in enumerate(lines):
            with self._lock:
                fault = self.faults.popleft() if self.faults else None
            status, payload = self.complete_body(line["body"], fault)
            record = {"id": f"batch_req_{n}", "custom_id": line["custom_id"],
                      "response": {"status_code": status, "request_id": f"req_{n}", "body": payload}, "error": None}
            (outputs if status == 200 else errors).append(json.dumps(record))
            if status == 200:
                with self._lock:
                    self.answered += 1
                    self.successes[request_key(line["body"])] += 1
        for kind, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = ("\n".join(rows) + "\n").encode()
                batch[kind] = file_id
        batch["request_counts"] = {"total": len(lines), "completed": len(outputs), "failed": len(errors)}
        batch["status"] = "completed"

    async def _list_batches(self, request: web.Request) -> web.Response:
        self._count(request, "GET /v1/batches")
        data = list(reversed(self.batches.values()))  # newest first, as OpenAI lists them
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    async def _get_batch(self, request: web.Request) -> web.Response:
        self._count(request, "GET /v1/batches/{id}")
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return web.json_response({"error": {"message": "No such batch"}}, status=404)
        return web.json_response(batch)

    def __enter__(self) -> FakeOpenAIServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(middlewares=[self._batch_gate])
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_get("/v1/models", self._models)
            app.router.add_post("/v1/files", self._upload_file)
            app.router.add_get("/v1/files/{file_id}/content", self._file_content)
            app.router.add_post("/v1/batches", self._create_batch)
            app.router.add_get("/v1/batches", self._list_batches)
            app.router.add_get("/v1/batches/{batch_id}", self._get_batch)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)  # slow answers must not stall exit
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start")
        return self

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:  # answers still waiting out a delay
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def __exit__(self, *exc) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
