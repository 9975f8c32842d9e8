"""One cheap request to an OpenAI-compatible server before a run: is it there, does it take the key, does it
serve the model (and the Batch API, in batch mode)? A wrong setting then fails in seconds, with the URL and
the setting or environment variable to fix, instead of after minutes of retries or hours of work.

It asks GET {base_url}/models once (and GET {base_url}/batches?limit=1 in batch mode), with a short timeout
and no retries. A server that does not list its models (404) is not refused: the model is then unchecked.
The API key is sent, never printed: no message carries it or the server's words about it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import openai

from research_tuner.lib.teacher.credentials import api_key_for
from research_tuner.lib.teacher.endpoint import cannot_connect, display_url

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings

#: Seconds to wait for the probe's answer (at most the settings' request_timeout_s).
PROBE_TIMEOUT_S = 5.0
#: Model names an 'unknown model' message lists at most.
SHOWN_MODELS = 12


@dataclass(frozen=True)
class Keys:
    """The settings a person edits to fix an endpoint, e.g. 'teacher.model' or 'evaluation.judge.model'."""

    model: str
    base_url: str
    api_key_env: str
    mode: str

    @classmethod
    def under(cls, section: str) -> Keys:
        return cls(*(f"{section}.{name}" for name in ("model", "base_url", "api_key_env", "mode")))


@dataclass(frozen=True)
class Finding:
    """One line about a server: 'ok' (a note), 'warning' (the run may go ahead) or 'problem' (it must not)."""

    level: Literal["ok", "warning", "problem"]
    message: str


def probe_server(settings: TeacherSettings, keys: Keys | None = None, *, role: str = "teacher",
                 timeout_s: float = PROBE_TIMEOUT_S) -> list[Finding]:
    """What the server behind `settings` (backend 'openai') says to one models request, as findings that
    name `keys`. A missing key for OpenAI itself raises credentials' SettingsError before anything is sent."""
    keys = keys or Keys.under(role)
    key = api_key_for(settings, role)
    timeout = min(timeout_s, settings.request_timeout_s)
    client = openai.OpenAI(api_key=key, base_url=settings.base_url, timeout=timeout, max_retries=0)
    url = display_url(str(client.base_url).rstrip("/"))
    var = settings.api_key_env
    key_is_set = bool(os.environ.get(var, "").strip())
    started = time.monotonic()
    try:
        with client:
            models = sorted(m.id for m in client.models.list())
            batch = [] if settings.mode != "batch" else _probe_batches(client, url, keys, role)
    except openai.AuthenticationError:
        if key_is_set:
            return [_problem(f"the {role} server {url} refused the API key in {var} (HTTP 401): export the right "
                             f"key in {var}, or set {keys.api_key_env} to the variable that holds it")]
        return [_problem(f"the {role} server {url} wants an API key (HTTP 401) and {var} is not set: export it "
                         f"(export {var}=...), or set {keys.api_key_env} to the variable that holds it")]
    except openai.PermissionDeniedError:
        return [_problem(f"the {role} server {url} denied access with the key in {var} (HTTP 403): use a key "
                         f"whose project may use {settings.model!r}, exported in {var}")]
    except openai.NotFoundError:
        return [Finding("warning", f"the {role} server {url} does not list its models (GET /models: HTTP 404), "
                                   f"so {keys.model}={settings.model!r} is checked only by the first request")]
    except openai.APITimeoutError as exc:
        reason = cannot_connect(exc) or "no answer"
        return [_problem(f"the {role} server {url} did not answer within {timeout:g} s ({reason}): "
                         f"{_how_to_reach(settings, keys)}")]
    except openai.APIConnectionError as exc:
        reason = cannot_connect(exc) or "the connection failed"
        return [_problem(f"cannot reach the {role} server {url} ({reason}): {_how_to_reach(settings, keys)}")]
    except openai.APIStatusError as exc:
        return [Finding("warning", f"the {role} server {url} answered GET /models with HTTP {exc.status_code} "
                                   f"({_said(exc, key)}); the run goes ahead")]
    except Exception as exc:  # a 200 whose body is not a model list: the server is there, the list unreadable
        return [Finding("warning", f"the {role} server {url} answered GET /models with no readable model list "
                                   f"({type(exc).__name__}); {keys.model} is checked only by the first request")]
    elapsed_ms = 1000 * (time.monotonic() - started)
    if not _serves(models, settings.model):
        shown = ", ".join(models[:SHOWN_MODELS]) + (f" and {len(models) - SHOWN_MODELS} more"
                                                    if len(models) > SHOWN_MODELS else "")
        served = f"it serves {shown}" if models else "it lists no model"
        return [_problem(f"the {role} server {url} does not serve {keys.model}={settings.model!r}; {served}: "
                         f"set {keys.model} to one of them (or teacher.check_server=false for a server that "
                         "serves models it does not list)")]
    key_said = f"the key in {var} accepted" if key_is_set else "no key needed"
    return [Finding("ok", f"{role}: {url} answered in {elapsed_ms:.0f} ms, {key_said}, {settings.model!r} "
                          "served")] + batch


def _probe_batches(client: openai.OpenAI, url: str, keys: Keys, role: str) -> list[Finding]:
    """Batch mode needs the Batch API (files + batches), which OpenAI has and many self-hosted servers lack."""
    try:
        client.batches.list(limit=1)
    except openai.NotFoundError:
        return [_problem(f"the {role} server {url} has no Batch API (GET /batches: HTTP 404): set "
                         f"{keys.mode}=online, or point {keys.base_url} at a server with one")]
    except openai.APIStatusError as exc:
        return [Finding("warning", f"the {role} server {url} answered GET /batches with HTTP {exc.status_code}; "
                                   "batch mode is unchecked")]
    return [Finding("ok", f"{role}: {url} serves the Batch API")]


def _serves(models: list[str], model: str) -> bool:
    """Whether the listed names include `model`; Ollama lists 'llama3:latest' for what it serves as 'llama3'."""
    return model in models or f"{model}:latest" in models


def _how_to_reach(settings: TeacherSettings, keys: Keys) -> str:
    """What to fix: the setting or environment variable the URL came from, or the network to OpenAI itself."""
    if settings.base_url:
        return f"start it, or fix {keys.base_url}"
    if os.environ.get("OPENAI_BASE_URL"):
        return f"start it, or fix OPENAI_BASE_URL (the URL comes from it while {keys.base_url} is unset)"
    return f"check this machine's network or proxy, or set {keys.base_url} to a server it can reach"


def _said(exc: openai.APIStatusError, key: str) -> str:
    """The server's own words, short, one line, with the key blanked out should it echo it."""
    text = " ".join(str(getattr(exc, "message", "") or exc).split())
    text = re.sub(r"^Error code: \d+ - ", "", text)[:160]
    return text.replace(key, "***") if key else text


def _problem(message: str) -> Finding:
    return Finding("problem", message)
