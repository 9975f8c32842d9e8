"""What the teacher is asked for questions: one JSON list per request (capable teachers), or one question per
completion with a fixed opening (the 135M-parameter embedded teacher). Module constants, read by name by
research_tuner/versions.py, so an edited prompt makes `raw_questions` stale."""

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
