"""The question gates on a hand-labelled set (research_tuner_tests/data/question_gates.tsv) and on the dedup
benchmark's questions, and curation: rejected questions stay in the audit with their reason and take no part in
the duplicate search."""

from pathlib import Path

import pandas as pd
import pytest

from research_tuner.lib.curation.curate import counts_per_field, curate_questions, gate_summary
from research_tuner.lib.curation.dedup import kept_questions, removed_pairs
from research_tuner.lib.curation.question_gates import repeated_phrase, text_gate
from research_tuner.lib.shared.ids import question_id
from research_tuner.settings import DedupSettings, GateSettings, QuestionGateSettings, SettingsError, load_profile

DATA = Path(__file__).parents[1] / "data"
LABELLED = pd.read_csv(DATA / "question_gates.tsv", sep="\t", comment="#", keep_default_na=False)
QUADS = pd.read_csv(DATA / "paraphrase_quads.tsv", sep="\t", comment="#")
GOOD = LABELLED[LABELLED["label"] == "good"]
BAD = LABELLED[LABELLED["label"] == "bad"]
TEXT_ONLY = QuestionGateSettings(on_topic=False)
LEXICAL_ONLY = DedupSettings(semantic=False)
ISSUE_EXAMPLES = ["How can I help you?", "How does this question sound?",
                  "How does the current open problem in law compare to the current open problem in law?"]


def rows(items):
    return pd.DataFrame([{"question_id": question_id(f, s, q), "field": f, "subdomain": s, "question": q,
                          "teacher_model": "t", "generation_round": 0} for f, s, q in items])


def test_the_labelled_set_is_big_enough_and_covers_every_field():
    assert len(GOOD) >= 50 and len(BAD) >= 20
    assert GOOD["field"].nunique() == 8 and (GOOD["field"].value_counts() >= 6).all()
    assert BAD["gate"].nunique() >= 6  # every gate has bad questions of its own


@pytest.mark.parametrize("question", ISSUE_EXAMPLES)
def test_the_issues_degenerate_questions_are_rejected_by_text_alone(question):
    assert text_gate(question, TEXT_ONLY) is not None


@pytest.mark.parametrize("row", list(BAD[BAD["gate"] != "off_topic"].itertuples()), ids=lambda r: r.question[:40])
def test_each_bad_question_is_rejected_by_the_gate_it_is_labelled_with(row):
    verdict = text_gate(row.question, TEXT_ONLY)
    assert verdict is not None and verdict[0] == row.gate, verdict


def test_the_good_questions_pass_the_text_gates():
    """Real research questions of every field, and the 272 of the dedup benchmark: at most 1 in 50 rejected."""
    texts = list(GOOD["question"]) + [t for c in ("question", "paraphrase", "light_edit", "hard_negative")
                                      for t in QUADS[c]]
    rejected = [(t, text_gate(t, TEXT_ONLY)) for t in texts if text_gate(t, TEXT_ONLY)]
    assert len(rejected) <= len(texts) / 50, rejected


def test_repetition_spares_a_long_question_that_names_a_pair_twice():
    long_one = ("What is the accuracy gap between models trained with federated learning and models trained "
                "centrally on hospital data?")
    assert repeated_phrase(long_one, 3, 0.3) is None
    assert repeated_phrase("How does language change affect language change in linguistics?", 3, 0.3)
    assert repeated_phrase("What is the effect of the the gene on proteins?", 3, 0.3) == "the the"
    # written by the demo's SmolLM2 teacher
    assert repeated_phrase("What role does physics play in the context of mathematics, particularly in the realm of "
                           "mathematics of mathematics?", 3, 0.3) == "mathematics x3"


def test_thresholds_come_from_the_settings():
    short = "Why do bees dance?"
    assert text_gate(short, TEXT_ONLY)[0] == "length"
    assert text_gate(short, QuestionGateSettings(on_topic=False, min_words=3)) is None
    with pytest.raises(SettingsError, match="gates.questions.min_words"):
        load_profile("demo", overrides={"gates": {"questions": {"min_words": 9, "max_words": 8}}})
    profile = load_profile("demo", overrides={"gates": {"questions": {"repeat_ngram": 4}}})
    assert profile.gates.questions.repeat_ngram == 4


def test_rejected_questions_stay_in_the_audit_with_their_reason_and_in_no_cluster():
    good = "How does urban light pollution alter the foraging behaviour of nocturnal pollinators?"
    raw = rows([("life_sciences", "ecology", good),
                ("life_sciences", "ecology", "How can I help you with ecology today, dear user?"),
                ("professional", "law", ISSUE_EXAMPLES[2]),
                ("arts", "theatre", ISSUE_EXAMPLES[1]),
                ("life_sciences", "zoology", good.lower())])  # an exact duplicate of the first
    audit, pairs = curate_questions(raw, LEXICAL_ONLY, TEXT_ONLY)
    assert len(audit) == len(raw) and set(audit["question_id"]) == set(raw["question_id"])  # none dropped silently
    rejected = audit[audit["gate"].notna()]
    assert set(rejected["gate"]) == {"boilerplate", "repetition", "self_reference"}
    assert len(rejected) == 3 and not rejected["keep"].any() and rejected["cluster"].isna().all()
    assert rejected["gate_reason"].str.len().gt(5).all()
    kept, mine = kept_questions(audit, "life_sciences")
    assert len(kept) == 1 and kept["question"].iloc[0].lower() == good.lower() and len(mine) == 3
    dup = removed_pairs(audit)  # the duplicate points at the kept one; gated rows are no pair
    assert dup["duplicate_of_question"].tolist() == kept["question"].tolist() and dup["kind"].tolist() == ["exact"]
    assert len(pairs) == 1
    summary = gate_summary(audit)
    assert summary["rejected_by_gates"] == 3 and summary["rejected_repetition"] == 1
    table = counts_per_field(audit)
    assert table.loc["life_sciences", "questions_in"] == 3 and table.loc["life_sciences", "kept"] == 1
    assert table.loc["life_sciences", "removed_as_duplicates"] == 1 and table.loc["professional", "kept"] == 0


def test_a_degenerate_question_cannot_push_its_good_duplicate_out():
    """Kept by id order it would win the cluster; gated first, it never enters the search."""
    good = "How does sleep restriction affect emotional regulation in adolescents?"
    bad = "How does sleep restriction affect emotional regulation in adolescents and sleep restriction?"
    raw = rows([("social_sciences", "psychology", q) for q in (good, bad)])
    audit, _ = curate_questions(raw, LEXICAL_ONLY, TEXT_ONLY)
    assert audit.loc[audit["keep"], "question"].tolist() == [good]


def test_disabled_gates_pass_everything_and_all_rejected_still_writes_the_audit():
    raw = rows([("arts", "music", q) for q in ISSUE_EXAMPLES])
    audit, _ = curate_questions(raw, LEXICAL_ONLY, QuestionGateSettings(enabled=False))
    assert audit["gate"].isna().all() and audit["keep"].sum() == 3
    audit, pairs = curate_questions(raw, LEXICAL_ONLY, TEXT_ONLY)
    assert audit["gate"].notna().all() and not audit["keep"].any() and len(pairs) == 0


def test_every_profile_has_the_gates_on():
    for name in ("demo", "paper"):
        gates = load_profile(name).gates
        assert isinstance(gates, GateSettings) and gates.questions.enabled and gates.approaches.enabled


# --- the off-topic gate: MiniLM embeddings ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled_audit():
    raw = rows(LABELLED[["field", "subdomain", "question"]].itertuples(index=False))
    audit, _ = curate_questions(raw, DedupSettings(semantic=False), QuestionGateSettings())
    return audit.merge(LABELLED[["question", "label", "gate"]].rename(columns={"gate": "expected"}), on="question")


def test_off_topic_questions_are_rejected_and_at_most_1_in_50_good_ones_wrongly(labelled_audit):
    good = labelled_audit[labelled_audit["label"] == "good"]
    wrongly = good[good["gate"].notna()]
    assert len(wrongly) <= len(good) / 50, wrongly[["question", "gate_reason"]].to_string()
    bad = labelled_audit[labelled_audit["label"] == "bad"]
    text_bad = bad[bad["expected"] != "off_topic"]
    assert text_bad["gate"].notna().all(), text_bad[text_bad["gate"].isna()]["question"].tolist()
    off = bad[bad["expected"] == "off_topic"]
    # MiniLM against the subdomain's name is a weak topic model: 15 of the 16 (one held-out question of bees
    # filed under law scores 0.114); the gate is for drift far off the topic, not for fine field boundaries
    assert (off["gate"] == "off_topic").mean() >= 0.9, off[["question", "topic_similarity"]].to_string()


def test_the_assets_show_per_field_what_each_gate_removed_with_a_preview(tmp_path):
    """question_clusters and deduped_questions called directly: counts per gate and field, and the rejected rows
    with their reasons, in the metadata a person reads in the UI."""
    import dagster as dg

    from research_tuner.lake import ParquetLakeIOManager
    from research_tuner.questions.assets import deduped_questions, question_clusters
    from research_tuner.resources import PipelineSettings, TeacherResource

    settings = PipelineSettings(profile="demo", dedup={"semantic": False},
                                gates={"questions": {"on_topic": False}})
    raw = rows([("professional", "law", q) for q in ISSUE_EXAMPLES]
               + [("professional", "law", "How have data protection rules changed court rulings on workplace "
                   "surveillance?"), ("arts", "music", "How does tempo affect how fast shoppers walk in stores?")])
    context = dg.build_asset_context()
    output, check = list(question_clusters(context, settings=settings, io_manager=ParquetLakeIOManager(
        root=str(tmp_path)), teacher=TeacherResource(), raw_questions=raw))  # borderline pairs off: never built
    meta = output.metadata
    assert check.passed and meta["rejected_by_gates"].value == 3 and meta["questions_kept"].value == 2
    per_field = meta["per_field"].value
    assert "rejected_boilerplate" in per_field and "rejected_repetition" in per_field
    assert "current open problem" in meta["rejected_preview"].value
    output, _ = list(deduped_questions(dg.build_asset_context(partition_key="professional"),
                                       question_clusters=output.value))
    meta = output.metadata
    assert len(output.value) == 1 and meta["rejected_by_gates"].value == 3
    assert meta["rejected_per_gate"].value == {"boilerplate": 1, "repetition": 1, "self_reference": 1}
    assert "How can I help you?" in meta["rejected_preview"].value
    assert "assistant chatter: 'How can I help'" in meta["rejected_preview"].value
