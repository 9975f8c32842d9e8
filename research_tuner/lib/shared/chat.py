"""The chat framing: the student's prompt (the same at training and at inference), and how any conversation
is rendered with a model's own chat template."""

from __future__ import annotations

from dataclasses import dataclass

from research_tuner.lib.shared.sections import SECTIONS

STUDENT_SYSTEM_PROMPT = (
    "You are a research methods advisor. Given a research question, write a feasible research approach "
    "in Markdown with these sections: " + ", ".join(SECTIONS) + "."
)

#: Extra variables for every chat template, at training and at inference alike. Llama 3.x templates write
#: "Today Date: <date>" into the system turn, today's date unless `date_string` is given; a fixed date keeps
#: the prompts of the training day and the evaluation day identical. This one is the templates' own fallback.
CHAT_TEMPLATE_KWARGS: dict[str, str] = {"date_string": "26 Jul 2024"}


def student_messages(question: str) -> list[dict[str, str]]:
    """The conversation the student model answers; the approach is the assistant's reply."""
    return [
        {"role": "system", "content": STUDENT_SYSTEM_PROMPT},
        {"role": "user", "content": f"Research question: {question.strip()}"},
    ]


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation to continue; `assistant_prefix` is text the answer is forced to start with."""

    messages: tuple[dict[str, str], ...]
    assistant_prefix: str = ""


def student_prompt(question: str) -> ChatPrompt:
    return ChatPrompt(tuple(student_messages(question)))


def render_prompt(tokenizer, prompt: ChatPrompt) -> str:
    """The model's own chat template, ending where the assistant's answer (after the prefix) begins."""
    text = tokenizer.apply_chat_template(
        list(prompt.messages), tokenize=False, add_generation_prompt=True, **CHAT_TEMPLATE_KWARGS
    )
    return text + prompt.assistant_prefix
