"""A real OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

It answers like a capable teacher would (JSON question lists, Markdown approaches with the 7 sections,
one-section answers), deterministically from the request, and can inject faults: status codes with
headers, slow answers, dropped connections, malformed JSON, truncated answers, refusals. It counts
every request it sees, so tests can assert how many were sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from aiohttp import web

from research_tuner.lib.sections import SECTIONS


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


def _digest(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


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


def answer_for(messages: list[dict], wants_json: bool) -> str:
    """What a well-behaved teacher says to this conversation."""
    user = messages[-1]["content"]
    if wants_json or '"questions"' in user:
        n = int(re.search(r"Write (\d+) distinct", user).group(1)) if "distinct" in user else 5
        sub = re.search(r"subdomain '([^']+)'", user)
        topic = sub.group(1) if sub else "the field"
        angle = re.search(r"Vary the focus: ([^.]+)\.", user)
        seed = _digest(user)
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
        return "\n\n".join(
            f"## {s}\nFor the question '{question}', the {s.lower()} is planned with care and concrete detail."
            for s in SECTIONS
        )
    if "Write one specific research question" in user:
        return " the local climate affect bird migration timing in northern wetlands?"
    return "This section is answered in two plain sentences. It stays on the question."


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
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.requests += 1
            self.paths[request.path] += 1
            fault = self.faults.popleft() if self.faults else None
        if self.expected_key and request.headers.get("Authorization") != f"Bearer {self.expected_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                                "code": "invalid_api_key"}}, status=401)
        body = await request.json()
        self.bodies.append(body)
        if self.known_models is not None and body.get("model") not in self.known_models:
            return web.json_response({"error": {"message": f"The model {body.get('model')} does not exist",
                                                "code": "model_not_found"}}, status=404)
        if fault:
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault.drop:
                request.transport.close()
                return web.Response(status=500)
            if fault.status != 200:
                return web.json_response({"error": {"message": f"injected {fault.status}"}},
                                         status=fault.status, headers=fault.headers)
            if fault.body is not None:
                return web.Response(text=fault.body, content_type="application/json")
        wants_json = bool(body.get("response_format"))
        text = answer_for(body["messages"], wants_json)
        finish = "stop"
        refusal = None
        if fault:
            text = fault.text if fault.text is not None else text
            finish = fault.finish_reason or finish
            if fault.refusal:
                text, refusal = None, "I can't help with that."
            if finish == "length" and text:
                text = text[: len(text) // 2]
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        completion_tokens = len((text or "").split())
        with self._lock:
            self.answered += 1
        return web.json_response({
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": text, "refusal": refusal}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }, headers={"x-ratelimit-remaining-requests": "1000"})

    def __enter__(self) -> FakeOpenAIServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            self._runner = web.AppRunner(app, access_log=None)
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

    def __exit__(self, *exc) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
