"""Every prompt the pipeline sends, as module constants and small builders.

The student prompt (`student_messages`) frames each example the same way at training and at inference;
the teacher prompts come in two strategies: one request doing the whole job (capable API teachers) and
small guided steps with a fixed opening (the 135M-parameter embedded teacher).
"""

from __future__ import annotations

from research_tuner.lib.sections import SECTIONS

STUDENT_SYSTEM_PROMPT = (
    "You are a research methods advisor. Given a research question, write a feasible research approach "
    "in Markdown with these sections: " + ", ".join(SECTIONS) + "."
)


def student_messages(question: str) -> list[dict[str, str]]:
    """The conversation the student model answers; the approach is the assistant's reply."""
    return [
        {"role": "system", "content": STUDENT_SYSTEM_PROMPT},
        {"role": "user", "content": f"Research question: {question.strip()}"},
    ]


# --- questions -------------------------------------------------------------------------------------

QUESTION_LIST_SYSTEM = (
    "You are an experienced researcher who writes precise, answerable research questions. "
    "Answer with JSON only."
)

QUESTION_LIST_USER = (
    "Write {n} distinct research questions in the subdomain '{subdomain}' of the field '{field}'. "
    "Each question is one sentence ending with a question mark, specific enough to design a study "
    "around, and different in topic and method from the others. Vary the focus: {angle}. "
    'Return a JSON object of the form {{"questions": ["...", "..."]}}.'
)

#: One angle per request, so that successive requests for the same subdomain do not repeat each other.
QUESTION_ANGLES = (
    "foundational open problems",
    "recent methods and tools",
    "applications and practice",
    "measurement and evaluation",
    "interdisciplinary connections",
    "historical and comparative perspectives",
    "policy, society and ethics",
    "under-studied populations, places or materials",
)

QUESTION_ONE_SYSTEM = "You write one specific research question and nothing else."
QUESTION_ONE_USER = "Write one specific research question about {topic} in {subdomain}."

#: Openings that force the small teacher's answer to be a question, and vary its form.
QUESTION_OPENINGS = (
    "How does",
    "What is the effect of",
    "To what extent",
    "Why do",
    "How can",
    "What role does",
    "Which factors",
    "How do",
)

#: Topics that steer the small teacher to different parts of a subdomain.
QUESTION_TOPICS = (
    "a current open problem",
    "a practical application",
    "a measurement method",
    "a social impact",
    "a historical change",
    "a comparison between two approaches",
    "a new technology",
    "an environmental factor",
)


# --- approaches ------------------------------------------------------------------------------------

APPROACH_SYSTEM = (
    "You are a senior researcher who designs rigorous, feasible studies. Write in Markdown."
)

APPROACH_USER = (
    "Research question ({field} / {subdomain}): {question}\n\n"
    "Write a research approach to this question with exactly these level-2 Markdown headings, in this "
    "order, each followed by concrete content: "
    + "; ".join(f"## {s}" for s in SECTIONS)
    + ". Pay special attention to the hypothesis, the proposed methodology, the key steps involved, the "
    "data collection plan (if applicable), the data analysis plan (if applicable), potential challenges "
    "or limitations, and ethical considerations (if applicable). Write 'Not applicable' with a reason "
    "where a section does not apply."
)

SECTION_SYSTEM = "You are a senior researcher. Answer in two or three plain sentences."

#: What each section should say, for the small teacher that writes one section at a time.
SECTION_INSTRUCTIONS = {
    "Hypothesis": "State the hypothesis that a study of this question would test.",
    "Methodology": "Describe the study design and methods that would answer it.",
    "Key Steps": "List the key steps of the study in order.",
    "Data Collection Plan": "Describe what data would be collected, from whom or what, and how.",
    "Data Analysis Plan": "Describe how the data would be analysed, with which methods.",
    "Challenges and Limitations": "Describe the main challenges and limitations of this study.",
    "Ethical Considerations": "Describe the ethical considerations of this study.",
}

SECTION_USER = "Research question: {question}\n\n{instruction}"
