"""Research-approach generation: one Markdown approach with the 7 sections per question.

Two strategies: 'whole' asks for the full Markdown at once and validates it (every section present,
not empty, not refused, not cut off at the token limit), retrying a bounded number of times with a new
seed; 'by_section' asks a small teacher for one section at a time under a fixed heading, so the
structure never depends on the model. An approach that is still invalid after the retries is returned
as a failure row, never as a valid one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from research_tuner.lib import prompts
from research_tuner.lib.questions import stable_seed
from research_tuner.lib.sections import SECTIONS, assemble_markdown, missing_sections, split_sections
from research_tuner.lib.teacher import Teacher, TeacherFailure, TeacherRequest, TeacherResponse, Usage
from research_tuner.settings import TeacherSettings

APPROACH_COLUMNS = ["question_id", "field", "subdomain", "question", "approach", "teacher_model"]


def validate_whole(response: TeacherResponse | TeacherFailure) -> str | None:
    """Why a whole-approach response is unusable, or None when it is a valid approach."""
    if isinstance(response, TeacherFailure):
        return f"transport: {response.reason}"
    if response.finish_reason == "refusal":
        return "refused"
    if response.finish_reason == "length":
        return "truncated at the token limit"
    if not response.text.strip():
        return "empty"
    missing = missing_sections(response.text)
    if missing:
        return "missing sections: " + ", ".join(missing)
    return None


def clean_section_body(text: str, max_sentences: int = 4) -> str:
    """A section body from a small model: no stray headings, whole sentences only."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    body = " ".join(ln.strip() for ln in lines)
    body = re.sub(r"^\W*[A-Z][A-Za-z ]{2,40}:\s+", "", body)  # "Key steps: 1. ..." -> "1. ..."
    sentences = re.findall(r"[^.!?]+[.!?]", body)
    return " ".join(s.strip() for s in sentences[:max_sentences])


@dataclass(frozen=True)
class _Job:
    row: int
    section: str | None  # None: the whole approach
    request: TeacherRequest


def _whole_request(q: dict, cfg: TeacherSettings, attempt: int) -> TeacherRequest:
    user = prompts.APPROACH_USER.format(field=q["field"], subdomain=q["subdomain"], question=q["question"])
    messages = ({"role": "system", "content": prompts.APPROACH_SYSTEM}, {"role": "user", "content": user})
    seed = stable_seed(q["question_id"], "approach", cfg.generation_round, attempt)
    return TeacherRequest(messages, cfg.max_tokens_approach, cfg.temperature, cfg.top_p, seed)


def _section_request(q: dict, section: str, cfg: TeacherSettings, attempt: int) -> TeacherRequest:
    user = prompts.SECTION_USER.format(question=q["question"], instruction=prompts.SECTION_INSTRUCTIONS[section])
    messages = ({"role": "system", "content": prompts.SECTION_SYSTEM}, {"role": "user", "content": user})
    seed = stable_seed(q["question_id"], section, cfg.generation_round, attempt)
    # A little lower temperature than for questions: sections should be on topic, not inventive.
    return TeacherRequest(messages, cfg.max_tokens_approach, min(cfg.temperature, 0.7), cfg.top_p, seed)


def generate_approaches(
    teacher: Teacher, questions: pd.DataFrame, cfg: TeacherSettings, usage: Usage, progress=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid approaches, failures): one row per question in exactly one of the two tables."""
    records = questions.to_dict("records")
    results: dict[tuple[int, str | None], str] = {}
    last_error: dict[int, str] = {}
    for attempt in range(cfg.max_retries + 1):
        jobs = []
        for row, q in enumerate(records):
            if cfg.approach_strategy == "whole":
                if (row, None) not in results:
                    jobs.append(_Job(row, None, _whole_request(q, cfg, attempt)))
            else:
                for section in SECTIONS:
                    if (row, section) not in results:
                        jobs.append(_Job(row, section, _section_request(q, section, cfg, attempt)))
        if not jobs:
            break
        if attempt:
            usage.retries += len(jobs)
        responses = teacher.complete([j.request for j in jobs], usage, progress)
        for job, response in zip(jobs, responses, strict=True):
            if job.section is None:
                problem = validate_whole(response)
                if problem is None:
                    results[(job.row, None)] = response.text.strip()
                else:
                    last_error[job.row] = problem
            elif isinstance(response, TeacherFailure):
                last_error[job.row] = f"transport: {response.reason}"
            else:
                body = clean_section_body(response.text)
                if body:
                    results[(job.row, job.section)] = body
                else:
                    last_error[job.row] = f"empty {job.section}"

    valid, failed = [], []
    for row, q in enumerate(records):
        if cfg.approach_strategy == "whole":
            text = results.get((row, None))
        else:
            bodies = {s: results[(row, s)] for s in SECTIONS if (row, s) in results}
            text = assemble_markdown(bodies) if len(bodies) == len(SECTIONS) else None
            if text is not None and missing_sections(text):  # a body that reads as a heading
                last_error[row], text = "assembled approach does not parse into 7 sections", None
        base = {k: q[k] for k in ("question_id", "field", "subdomain", "question")}
        if text is not None:
            valid.append({**base, "approach": _normalise_headings(text), "teacher_model": teacher.model})
        else:
            usage.record_failure(last_error.get(row, "invalid approach").split(":")[0])
            failed.append({**base, "error": last_error.get(row, "invalid approach")})
    return (
        pd.DataFrame(valid, columns=APPROACH_COLUMNS),
        pd.DataFrame(failed, columns=["question_id", "field", "subdomain", "question", "error"]),
    )


def _normalise_headings(text: str) -> str:
    """The same '## Heading' form whatever the teacher used, so students learn one format."""
    bodies = split_sections(text)
    return assemble_markdown(bodies) if all(bodies.get(s) for s in SECTIONS) else text
