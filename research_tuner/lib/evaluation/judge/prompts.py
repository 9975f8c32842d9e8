"""What the judge is asked: the rubric (7 sections and feasibility, integers 0-5), and the messages of one
judgement. Module constants, read by name by research_tuner/versions.py, so an edited rubric makes
`eval_judgements` stale."""

from __future__ import annotations

import re

from research_tuner.lib.shared.sections import SECTIONS

SCALE_MIN, SCALE_MAX = 0, 5


def _snake(name: str) -> str:
    return re.sub(r"[^a-z]+", "_", name.lower()).strip("_")


#: The 7 sections as criterion keys, then feasibility of the whole approach.
CRITERIA: tuple[str, ...] = tuple(_snake(s) for s in SECTIONS) + ("feasibility",)

_WHAT_EACH_CRITERION_ASKS = {
    "hypothesis": "a clear, testable hypothesis that answers this question",
    "methodology": "a study design that can actually answer the question",
    "key_steps": "concrete steps in a sensible order",
    "data_collection_plan": "which data, from where, how much and how it is collected",
    "data_analysis_plan": "which analyses test the hypothesis, and how",
    "challenges_and_limitations": "the real risks and limits of this study, with mitigations",
    "ethical_considerations": "the ethical issues this study raises and how they are handled",
    "feasibility": "could a research team carry out the whole approach as written, with realistic time, "
    "money and access? Give 0 if the response is not a research approach at all",
}

JUDGE_SYSTEM = (
    "You are a strict, fair reviewer of research proposals. You grade one proposed research approach "
    "against a rubric and answer with JSON only."
)

_SCALE_TEXT = (
    f"Score every criterion with an integer from {SCALE_MIN} to {SCALE_MAX}:\n"
    "0 = missing: the response has no such part or says nothing about it\n"
    "1 = present but wrong, or not about this question\n"
    "2 = vague or generic, with major gaps\n"
    "3 = adequate: sound, with notable gaps\n"
    "4 = good: specific and sound, with minor gaps\n"
    "5 = excellent: specific, sound and complete"
)

RUBRIC = (
    "Grade the RESPONSE, a proposed research approach to the research QUESTION. A REFERENCE approach by an "
    "expert is given for grounding: use it to see what a sound approach to this question needs, not as the "
    "only right answer. A different approach can earn full marks; length alone earns nothing.\n\n"
    + _SCALE_TEXT
    + "\n\nCriteria:\n"
    + "\n".join(f"- {c}: {_WHAT_EACH_CRITERION_ASKS[c]}" for c in CRITERIA)
)

#: Delimiters of the graded text in the prompt (the loopback test server finds the response by them).
RESPONSE_OPEN, RESPONSE_CLOSE = "<response>", "</response>"

RETRY_REMINDER = (
    "Your previous answer could not be read as the JSON object asked for. Answer with that JSON object only: "
    f"a short rationale and all {len(CRITERIA)} integer scores from {SCALE_MIN} to {SCALE_MAX}."
)


def judge_messages(question: str, reference: str, response: str, attempt: int = 0) -> tuple[dict[str, str], ...]:
    shape = "{" + ", ".join(['"rationale": "<one or two sentences>"'] + [f'"{c}": <int>' for c in CRITERIA]) + "}"
    user = (
        f"{RUBRIC}\n\n<question>\n{question.strip()}\n</question>\n\n"
        f"<reference_approach>\n{reference.strip()}\n</reference_approach>\n\n"
        f"{RESPONSE_OPEN}\n{response.strip()}\n{RESPONSE_CLOSE}\n\n"
        f"Return a JSON object of the form {shape}."
    )
    if attempt:
        user += "\n\n" + RETRY_REMINDER
    return ({"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user})
