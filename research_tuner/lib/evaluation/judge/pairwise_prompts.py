"""What the pairwise judge is asked: which of two research approaches to one question is better, the two shown
under neutral labels (first, second) and never with the model that wrote them. Module constants, read by name
by research_tuner/versions.py, so an edited prompt makes `eval_preferences` stale."""

from __future__ import annotations

#: The verdicts a judge may give, as the structured output spells them.
VERDICTS: tuple[str, ...] = ("first", "second", "tie")

PAIRWISE_SYSTEM = (
    "You are an impartial senior reviewer of research proposals. You compare two proposed research approaches "
    "to the same research question and answer with JSON only."
)

PAIRWISE_INSTRUCTIONS = (
    "Which of the two research approaches below is the better answer to the research QUESTION? Judge them as "
    "a reviewer deciding which study to fund would: a clear, testable hypothesis; a design that can actually "
    "answer the question; concrete steps in a sensible order; a realistic plan for collecting and analysing "
    "the data; honest challenges and limitations; the ethical issues the study raises; and whether a team "
    "could carry it out. The order in which the two appear means nothing. Length means nothing: a longer "
    "answer is not better for being longer, and headings or Markdown earn nothing by themselves. If neither "
    "is clearly better, answer tie."
)

#: Delimiters of the two answers in the prompt (the loopback test server finds them by these).
FIRST_OPEN, FIRST_CLOSE = "<first_approach>", "</first_approach>"
SECOND_OPEN, SECOND_CLOSE = "<second_approach>", "</second_approach>"

PAIRWISE_RETRY_REMINDER = (
    "Your previous answer could not be read as the JSON object asked for. Answer with that JSON object only: "
    'a one-sentence reason and a verdict that is exactly "first", "second" or "tie".'
)


def pairwise_messages(question: str, first: str, second: str, attempt: int = 0) -> tuple[dict[str, str], ...]:
    """The conversation of one pairwise judgement; a retry (attempt > 0) adds the reminder."""
    shape = '{"reason": "<one sentence>", "verdict": "first" | "second" | "tie"}'
    user = (
        f"{PAIRWISE_INSTRUCTIONS}\n\n<question>\n{question.strip()}\n</question>\n\n"
        f"{FIRST_OPEN}\n{first.strip()}\n{FIRST_CLOSE}\n\n"
        f"{SECOND_OPEN}\n{second.strip()}\n{SECOND_CLOSE}\n\n"
        f"Return a JSON object of the form {shape}."
    )
    if attempt:
        user += "\n\n" + PAIRWISE_RETRY_REMINDER
    return ({"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": user})
