"""Ways of asking for approaches: a small teacher's section body cleaned of labels, headings and half sentences."""

from research_tuner.lib.generation.approach_strategies import clean_section_body


def test_section_bodies_lose_a_repeated_label():
    assert clean_section_body("Key steps: 1. Collect data. 2. Analyse it.") == "1. Collect data. 2. Analyse it."
    assert clean_section_body("## Heading\nA sentence. Half a sent") == "A sentence."
