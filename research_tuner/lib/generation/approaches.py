"""Research-approach generation: one Markdown approach with the 7 sections per question.

Each question's parts (the whole approach, or its 7 sections) are asked for in one pass over all questions; a
part whose response is rejected is asked again with a new seed, a bounded number of times
(`teacher.max_retries`). Once a question has all its parts, the approach is assembled and put through the content
gates (gates.py), and optionally the teacher's grade (grade.py); a rejected approach has the parts at fault asked
again, like a malformed one. An approach that is still incomplete or rejected after the retries is returned as a
failure row with its reason, never as a valid one. A teacher with free rows (the local one: a small batch costs
about what one row does) also gets the later attempts of a small pass's parts, which its cache keeps for the
pass that needs them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.generation.approach_gates import Rejection, off_topic, section_problems, topic_similarity
from research_tuner.lib.generation.approach_grade import grade_approaches
from research_tuner.lib.generation.approach_strategies import ApproachStrategy, Part, approach_strategy
from research_tuner.lib.shared.schema import RowSchema
from research_tuner.lib.shared.sections import SECTIONS, split_sections
from research_tuner.lib.shared.similarity.embeddings import DEFAULT_EMBEDDING_MODEL
from research_tuner.lib.teacher.base import Teacher, Usage
from research_tuner.lib.teacher.cache import CachedTeacher

if TYPE_CHECKING:
    from research_tuner.settings import DedupSettings, TeacherSettings
    from research_tuner.settings.gates import ApproachGateSettings

_QUESTION = {"question_id": "object", "field": "object", "subdomain": "object", "question": "object",
             "generation_round": "int64"}
#: The `approaches` table: one row per question with a valid approach.
APPROACHES = RowSchema("approaches", {**_QUESTION, "approach": "object", "teacher_model": "object"})
#: Questions whose approach stayed invalid after the retries, with the last reason (the asset's metadata).
FAILED_APPROACHES = RowSchema("failed_approaches", {**_QUESTION, "error": "object"})


def check_approaches(
    strategy: ApproachStrategy, questions: list[str], parts: list[Mapping[Part, str]],
    gates: ApproachGateSettings | None, dedup: DedupSettings | None = None,
) -> list[tuple[str | None, Rejection | None]]:
    """(approach, None) or (None, why not) for each question's accepted parts: assembled, then gated."""
    results: list[tuple[str | None, Rejection | None]] = []
    for texts in parts:
        approach, error = strategy.assemble(texts)
        results.append((approach, None) if approach is not None else (None, Rejection("format", error, SECTIONS)))
    if gates is None or not gates.enabled:
        return results
    bodies = [split_sections(a) if a is not None else {} for a, _ in results]
    for i, ((approach, problem), question) in enumerate(zip(results, questions)):
        if approach is not None:
            problem = section_problems(bodies[i], question, gates)
            results[i] = (None, problem) if problem else (approach, None)
    todo = [i for i, (a, _) in enumerate(results) if a is not None]
    if gates.on_topic and todo:
        model = dedup.embedding_model if dedup else DEFAULT_EMBEDDING_MODEL
        extra = (dedup.embedding_batch_size, dedup.embedding_precision) if dedup else ()
        sims = topic_similarity([questions[i] for i in todo], [bodies[i] for i in todo], model, *extra)
        for i, sim in zip(todo, sims):
            problem = off_topic(float(sim), gates)
            if problem:
                results[i] = (None, problem)
    return results


def _later_attempts(strategy: ApproachStrategy, records: list[dict], jobs: list[tuple[int, Part]],
                    cfg: TeacherSettings, attempt: int) -> list:
    """The requests of this pass's parts at every later attempt, the next attempt of each first: what a teacher
    with free rows may answer ahead (CachedTeacher.complete's `ahead`), so that a part rejected now finds its next
    attempt in the cache instead of costing a pass of its own. Each answer is still its own request's."""
    return [strategy.request(records[row], part, cfg, later)
            for later in range(attempt + 1, cfg.max_retries + 1) for row, part in jobs]


def generate_approaches(
    teacher: Teacher, questions: pd.DataFrame, cfg: TeacherSettings, usage: Usage, progress=None,
    gates: ApproachGateSettings | None = None, dedup: DedupSettings | None = None,
    rejections: Counter | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid approaches, failures): one row per question in exactly one of the two tables.

    `gates` None checks the form only; `dedup` names the embedding model of the off-topic gate; `rejections`, when
    given, counts every rejection by gate, retried ones included.
    """
    strategy = approach_strategy(cfg.approach_strategy)
    if "generation_round" not in questions:  # questions typed in by hand: the first round's
        questions = questions.assign(generation_round=0)
    records = questions.to_dict("records")
    accepted: dict[tuple[int, Part], str] = {}
    last_error: dict[int, str] = {}
    done: dict[int, str] = {}
    rejections = rejections if rejections is not None else Counter()
    for attempt in range(cfg.max_retries + 1):
        jobs = [(row, part) for row in range(len(records)) if row not in done
                for part in strategy.parts if (row, part) not in accepted]
        if not jobs:
            break
        if attempt:
            usage.retries += len(jobs)
        requests = [strategy.request(records[row], part, cfg, attempt) for row, part in jobs]
        if isinstance(teacher, CachedTeacher):
            ahead = _later_attempts(strategy, records, jobs, cfg, attempt)
            responses = teacher.complete(requests, usage, progress, ahead=ahead)
        else:
            responses = teacher.complete(requests, usage, progress)
        for (row, part), response in zip(jobs, responses, strict=True):
            text, error = strategy.accept(part, response)
            if text is not None:
                accepted[(row, part)] = text
            else:
                last_error[row] = error
        ready = sorted({row for row, _ in jobs if all((row, p) in accepted for p in strategy.parts)})
        texts = [str(records[r]["question"]) for r in ready]
        checked = check_approaches(strategy, texts, [{p: accepted[(r, p)] for p in strategy.parts} for r in ready],
                                   gates, dedup)
        if gates is not None and gates.enabled and gates.grade:
            passed = [i for i, (a, _) in enumerate(checked) if a is not None]
            grades = grade_approaches(teacher, [texts[i] for i in passed], [checked[i][0] for i in passed], gates,
                                      usage)
            for i, problem in zip(passed, grades):
                if problem:
                    checked[i] = (None, problem)
        for row, (approach, problem) in zip(ready, checked):
            if problem is None:
                done[row] = approach
                continue
            last_error[row] = str(problem)
            rejections[problem.gate] += 1
            for part in strategy.parts:
                if part is None or part in problem.sections:
                    accepted.pop((row, part), None)

    valid, failed = [], []
    for row, q in enumerate(records):
        base = {k: q[k] for k in _QUESTION}
        if row in done:
            valid.append({**base, "approach": done[row], "teacher_model": teacher.model})
        else:
            reason = last_error.get(row, "invalid approach")
            usage.record_failure(reason.split(":")[0])
            failed.append({**base, "error": reason})
    return APPROACHES.frame(valid), FAILED_APPROACHES.frame(failed)
