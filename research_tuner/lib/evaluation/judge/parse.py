"""Reading a judge's answer: JSON anywhere in the text first, then 'Criterion: 4/5' lines; every grade must be
an integer on the scale, or the answer is unreadable (never clamped, filled in or guessed)."""

from __future__ import annotations

import json
import re

from research_tuner.lib.evaluation.judge.prompts import CRITERIA, SCALE_MAX, SCALE_MIN


class UnreadableJudgement(ValueError):
    """The judge's answer does not give all the scores on the scale; the message says what is wrong."""


_KEY_ALIASES = {re.sub(r"[^a-z]", "", c): c for c in CRITERIA} | {
    "hypotheses": "hypothesis",
    "steps": "key_steps",
    "datacollection": "data_collection_plan",
    "dataanalysis": "data_analysis_plan",
    "challenges": "challenges_and_limitations",
    "challengeslimitations": "challenges_and_limitations",
    "ethics": "ethical_considerations",
    "ethical": "ethical_considerations",
}

# "Hypothesis: 4", "**Key steps** - 3/5", "3. Data analysis plan = 2 out of 5", "| feasibility | 4 |"
_SCORE_LINE = re.compile(
    r"^[ \t>#*|-]*(?:\d+[.)][ \t]*)?\**[ \t]*(?P<name>[A-Za-z][A-Za-z &/_-]*?)[ \t]*\**[ \t]*"
    r"[:=|\u2013\u2014-]+[ \t]*\**[ \t]*(?P<value>-?\d+(?:\.\d+)?)\b",
    re.MULTILINE,
)


def _criterion(key: str) -> str | None:
    return _KEY_ALIASES.get(re.sub(r"[^a-z]", "", str(key).lower().replace("&", "and")))


def _score(value: object, criterion: str) -> int:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+|out of \d+)?\s*", value)
        if not match:
            raise UnreadableJudgement(f"{criterion}: {value!r} is not a number")
        value = float(match.group(1))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnreadableJudgement(f"{criterion}: {value!r} is not a number")
    if float(value) != int(value):
        raise UnreadableJudgement(f"{criterion}: {value} is not an integer")
    if not SCALE_MIN <= int(value) <= SCALE_MAX:
        raise UnreadableJudgement(f"{criterion}: {int(value)} is outside {SCALE_MIN}-{SCALE_MAX}")
    return int(value)


def _json_object(text: str) -> dict | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_judgement(text: str) -> tuple[dict[str, int], str]:
    """(criterion -> score, rationale) from a judge's answer; UnreadableJudgement when any score is missing.

    JSON first (anywhere in the text, so code fences and a preamble are fine), then 'Name: score' lines.
    """
    raw: dict[str, object] = {}
    rationale = ""
    data = _json_object(text or "")
    if data is not None:
        flat = {**data, **{k: v for inner in data.values() if isinstance(inner, dict) for k, v in inner.items()}}
        for key, value in flat.items():  # {"scores": {...}} one level down is read too
            if (name := _criterion(key)) and name not in raw:
                raw[name] = value
        rationale = str(data.get("rationale", "") or "")
    if len(raw) < len(CRITERIA):
        for match in _SCORE_LINE.finditer(text or ""):
            if (name := _criterion(match.group("name"))) and name not in raw:
                raw[name] = match.group("value")
    missing = [c for c in CRITERIA if c not in raw]
    if missing:
        raise UnreadableJudgement("no score for " + ", ".join(missing))
    return {c: _score(raw[c], c) for c in CRITERIA}, rationale.strip()
