"""What the teacher is asked for approaches: the whole Markdown approach with the 7 headings at once (capable
teachers), or one section at a time under a fixed heading (the embedded teacher). Module constants, read by
name by research_tuner/versions.py, so an edited prompt makes `approaches` stale."""

from __future__ import annotations

from research_tuner.lib.shared.sections import SECTIONS

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

GRADE_SYSTEM = "You are a strict reviewer of research proposals. Answer with JSON only."

#: The optional quality grade of an approach (`gates.approaches.grade`), an integer from 1 to 10.
GRADE_USER = (
    "Research question: {question}\n\n<approach>\n{approach}\n</approach>\n\n"
    "Grade this research approach from 1 to 10: 10 is specific to the question, sound and feasible in every "
    "section; 5 is generic or has major gaps; 1 is not a research approach to this question at all. "
    'Return a JSON object of the form {{"score": <integer>}}.'
)
