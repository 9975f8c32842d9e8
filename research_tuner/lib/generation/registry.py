"""Ways of asking the teacher by name (`teacher.question_strategy`, `teacher.approach_strategy`): name -> class.

The table holds import paths, not classes, and this module imports nothing, so the settings validate a name
against it while the strategy modules (which take the settings as their config) never become the settings'
imports. Adding a way of asking is a class in question_strategies.py or approach_strategies.py and a line here.
"""

from __future__ import annotations

import importlib
from typing import Any

#: `teacher.question_strategy` -> "module:class" of the strategy.
QUESTION_STRATEGIES: dict[str, str] = {
    "list": "research_tuner.lib.generation.question_strategies:ListOfQuestions",
    "one_by_one": "research_tuner.lib.generation.question_strategies:OneQuestionEach",
}
#: `teacher.approach_strategy` -> "module:class" of the strategy.
APPROACH_STRATEGIES: dict[str, str] = {
    "whole": "research_tuner.lib.generation.approach_strategies:WholeApproach",
    "by_section": "research_tuner.lib.generation.approach_strategies:ApproachBySection",
}


def load(table: dict[str, str], name: str) -> Any:
    """A new instance of the strategy `name` in `table` (the settings have checked that it is there)."""
    module, _, cls = table[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
