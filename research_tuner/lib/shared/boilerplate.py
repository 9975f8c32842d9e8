"""Text a teacher should never hand back as data: refusals and assistant chatter, instruction injection, and chat
template tokens that leak when a server applies the wrong template. Shared by the question and approach gates.

Each kind is a tuple of case-insensitive regular expressions; `boilerplate_match` names the first kind that
matches, and the words it matched. The patterns are narrow on purpose (whole phrases, not single words), so a
research text that studies refusals or API keys is not mistaken for one; docs/gates.md lists what they catch.
"""

from __future__ import annotations

import re

#: kind -> patterns. Order matters only for which reason is reported when several match.
PATTERNS: dict[str, tuple[str, ...]] = {
    "template tokens": (
        r"<\|[a-z_]{2,30}\|>", r"\[/?INST\]", r"<</?SYS>>", r"</?s>", r"<(?:start|end)_of_turn>",
        r"^\s*#{2,3}\s*(?:instruction|response|assistant|user)\s*:", r"^\s*(?:assistant|user|system)\s*:\s",
    ),
    "instruction injection": (
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|the\s+|your\s+)?(?:previous|prior|above|earlier|preceding)"
        r"\s+(?:instructions?|prompts?|messages?|directions?|rules)",
        r"\bos\.environ\b", r"\bgetenv\s*\(", r"\b[A-Z][A-Z0-9]*_(?:API_KEY|TOKEN|SECRET)\b",
        r"\b(?:reveal|print|show|repeat|output)\s+(?:your|the)\s+(?:system\s+prompt|instructions|hidden\s+prompt)",
        r"\byou\s+are\s+now\s+(?:in\s+)?(?:a|an|dan|developer)\b",
    ),
    "refusal": (
        r"\bI(?:'m| am)\s+(?:sorry|unable|not able)\b", r"\bI\s+(?:cannot|can't|can not|won't)\s+"
        r"(?:help|assist|provide|comply|answer|write|do that|fulfil)",
        r"\bas an? (?:ai|artificial intelligence|(?:large )?language model)\b",
        r"\bI(?:'m| am) (?:just )?(?:an? )?(?:ai|language model|chatbot|virtual assistant)\b",
        r"\bI\s+don't\s+have\s+(?:access|enough)",
    ),
    "assistant chatter": (
        r"\b(?:how|what)\s+(?:can|may|could)\s+I\s+(?:help|assist|do for)\b", r"\b(?:happy|glad)\s+to\s+help\b",
        r"\bI\s+hope\s+this\s+helps\b", r"\blet\s+me\s+know\s+if\b", r"\bfeel\s+free\s+to\s+(?:ask|reach)\b",
        r"\banything\s+else\s+I\s+can\b", r"^\s*(?:sure|certainly|of course|absolutely)\s*[,!.]",
        r"\bhere\s+(?:is|are)\s+(?:a|an|the|some|my)\s+(?:research\s+)?(?:approach|answer|response|question)",
        r"\bgreat\s+question\b",
    ),
}

_COMPILED = {kind: tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in patterns)
             for kind, patterns in PATTERNS.items()}


def boilerplate_match(text: str) -> tuple[str, str] | None:
    """(kind, the matched words) for the first match, for a reason a person can read; None for clean text."""
    for kind, patterns in _COMPILED.items():
        for p in patterns:
            m = p.search(text)
            if m:
                return kind, m.group(0).strip()[:60]
    return None
