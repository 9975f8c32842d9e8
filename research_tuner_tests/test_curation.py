"""Question cleaning, exact duplicate removal, the seeded split and the evaluation sample."""

import pandas as pd

from research_tuner.lib.dedup import remove_exact_duplicates
from research_tuner.lib.questions import clean_question, question_id
from research_tuner.lib.sections import SECTIONS, assemble_markdown, section_coverage
from research_tuner.lib.split import evaluation_sample, split_by_subdomain


def frame(questions, subdomain="logic"):
    return pd.DataFrame([
        {"question_id": question_id("formal_sciences", subdomain, q), "field": "formal_sciences",
         "subdomain": subdomain, "question": q} for q in questions
    ])


def test_clean_question_keeps_one_question():
    assert clean_question("1. how does sleep affect memory in adults? And more text") == (
        "How does sleep affect memory in adults?")
    assert clean_question("This is not a question.") is None
    assert clean_question("Why?") is None  # too short to design a study around


def test_exact_duplicates_after_normalising_are_removed_with_a_pointer():
    rows = frame(["How does sleep affect memory?", "how does SLEEP affect memory ?!", "Why do cats purr loudly?"])
    kept, removed = remove_exact_duplicates(rows)
    assert kept["question"].tolist() == ["How does sleep affect memory?", "Why do cats purr loudly?"]
    assert removed["duplicate_of"].tolist() == [rows["question_id"][0]]
    assert removed["kind"].tolist() == ["exact"]


def test_split_is_stratified_deterministic_and_order_free():
    rows = pd.concat([frame([f"Question {i} about topic {s}?" for i in range(12)], s) for s in ("a", "b", "c")])
    first = split_by_subdomain(rows, 0.25, seed=7)
    shuffled = split_by_subdomain(rows.sample(frac=1, random_state=1), 0.25, seed=7)
    assert first.set_index("question_id")["split"].equals(shuffled.set_index("question_id")["split"].loc[first["question_id"]])
    assert (first.groupby("subdomain")["split"].apply(lambda s: (s == "validation").sum()) == 3).all()
    assert not split_by_subdomain(rows, 0.25, seed=8)["split"].equals(first["split"])


def test_evaluation_sample_reads_only_validation_rows():
    rows = split_by_subdomain(frame([f"Question number {i} on logic?" for i in range(20)]), 0.25, seed=0)
    sample = evaluation_sample(rows, per_subdomain=2, seed=0)
    assert len(sample) == 2 and (sample["split"] == "validation").all()


def test_section_coverage_counts_the_seven_sections():
    full = assemble_markdown({s: "text" for s in SECTIONS})
    assert section_coverage(full) == 1.0
    assert section_coverage("**Hypothesis:** x\n\n### 2. Methodology\ny") == 2 / 7
    assert section_coverage("no structure at all") == 0.0


def test_a_plain_name_colon_line_inside_a_marked_section_is_prose():
    from research_tuner.lib.sections import split_sections

    text = assemble_markdown({s: "text" for s in SECTIONS}).replace(
        "## Hypothesis\ntext", "## Hypothesis\nKey Steps: first we measure, then we compare.")
    bodies = split_sections(text)
    assert bodies["Hypothesis"].startswith("Key Steps: first") and bodies["Key Steps"] == "text"
    assert section_coverage(text) == 1.0


def test_section_bodies_lose_a_repeated_label():
    from research_tuner.lib.approaches import clean_section_body

    assert clean_section_body("Key steps: 1. Collect data. 2. Analyse it.") == "1. Collect data. 2. Analyse it."
    assert clean_section_body("## Heading\nA sentence. Half a sent") == "A sentence."
