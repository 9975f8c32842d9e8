"""The 7 sections: recognised headings in their many forms, coverage, and prose that only looks like a heading."""

from research_tuner.lib.shared.sections import SECTIONS, assemble_markdown, section_coverage, split_sections


def test_section_coverage_counts_the_seven_sections():
    full = assemble_markdown({s: "text" for s in SECTIONS})
    assert section_coverage(full) == 1.0
    assert section_coverage("**Hypothesis:** x\n\n### 2. Methodology\ny") == 2 / 7
    assert section_coverage("no structure at all") == 0.0


def test_a_plain_name_colon_line_inside_a_marked_section_is_prose():
    text = assemble_markdown({s: "text" for s in SECTIONS}).replace(
        "## Hypothesis\ntext", "## Hypothesis\nKey Steps: first we measure, then we compare.")
    bodies = split_sections(text)
    assert bodies["Hypothesis"].startswith("Key Steps: first") and bodies["Key Steps"] == "text"
    assert section_coverage(text) == 1.0
