"""The 7 sections of a research approach, as the paper asked the teacher for them."""

from __future__ import annotations

import re

#: Headings in the order an approach presents them.
SECTIONS: tuple[str, ...] = (
    "Hypothesis",
    "Methodology",
    "Key Steps",
    "Data Collection Plan",
    "Data Analysis Plan",
    "Challenges and Limitations",
    "Ethical Considerations",
)

# A heading: Markdown '#'s or bold, optional numbering, the name, an optional colon; the body may
# start on the same line only after a colon ("**Hypothesis:** text"), so prose is never a heading.
_HEADING = re.compile(
    r"^[ \t]{0,3}(?:#{1,6}[ \t]*)?(?P<bold>\*\*)?[ \t]*(?:\d+[.)][ \t]*)?"
    r"(?P<name>[A-Za-z][A-Za-z &/-]*)[ \t]*(?:\*\*)?[ \t]*(?P<colon>:)?[ \t]*(?:\*\*)?[ \t]*(?P<rest>.*)$",
    re.MULTILINE,
)


def _canonical(name: str) -> str | None:
    key = re.sub(r"[^a-z]", "", name.lower().replace("&", "and"))
    aliases = {
        "hypothesis": "Hypothesis",
        "hypotheses": "Hypothesis",
        "methodology": "Methodology",
        "proposedmethodology": "Methodology",
        "keysteps": "Key Steps",
        "keystepsinvolved": "Key Steps",
        "datacollectionplan": "Data Collection Plan",
        "datacollection": "Data Collection Plan",
        "dataanalysisplan": "Data Analysis Plan",
        "dataanalysis": "Data Analysis Plan",
        "challengesandlimitations": "Challenges and Limitations",
        "potentialchallengesorlimitations": "Challenges and Limitations",
        "potentialchallengesandlimitations": "Challenges and Limitations",
        "challenges": "Challenges and Limitations",
        "limitations": "Challenges and Limitations",
        "ethicalconsiderations": "Ethical Considerations",
        "ethics": "Ethical Considerations",
    }
    return aliases.get(key)


def split_sections(text: str) -> dict[str, str]:
    """Section name -> body for each recognised heading (first occurrence wins)."""
    candidates = []  # (name, heading start, body start, marked with '#' or bold)
    for match in _HEADING.finditer(text or ""):
        if match.group("rest") and not match.group("colon"):
            continue
        name = _canonical(match.group("name"))
        if name:
            marked = bool(match.group("bold")) or match.group(0).lstrip().startswith("#")
            candidates.append((name, match.start(), match.start("rest"), marked))
    # Where the text marks its headings, a plain "Methodology: ..." line is prose inside a section.
    if any(marked for *_, marked in candidates):
        candidates = [c for c in candidates if c[3]]
    found: list[tuple[str, int, int]] = []
    for name, start, body_start, _ in candidates:
        if name not in {n for n, _, _ in found}:
            found.append((name, start, body_start))
    bodies = {}
    for i, (name, _, body_start) in enumerate(found):
        stop = found[i + 1][1] if i + 1 < len(found) else len(text)
        bodies[name] = text[body_start:stop].strip()
    return bodies


def present_sections(text: str) -> list[str]:
    """The required sections that appear with a non-empty body."""
    bodies = split_sections(text)
    return [s for s in SECTIONS if bodies.get(s)]


def missing_sections(text: str) -> list[str]:
    present = set(present_sections(text))
    return [s for s in SECTIONS if s not in present]


def section_coverage(text: str) -> float:
    """Share of the 7 required sections present with content: a deterministic structure score."""
    return len(present_sections(text)) / len(SECTIONS)


def assemble_markdown(bodies: dict[str, str]) -> str:
    """The approach as Markdown, one '## Heading' per section, in the canonical order."""
    return "\n\n".join(f"## {name}\n{bodies[name].strip()}" for name in SECTIONS if name in bodies)
