"""Borderline near-duplicate pairs to the teacher (dedup.teacher_borderline): only pairs just below the semantic
bar are asked, once each (then from the cache), and a yes links them as a duplicate of kind 'teacher'."""

import pandas as pd
import pytest

from research_tuner.lib.curation.borderline import borderline_candidates, read_yes, teacher_pairs
from research_tuner.lib.curation.curate import curate_questions
from research_tuner.lib.shared.ids import question_id
from research_tuner.lib.shared.similarity.pairs import duplicate_pairs
from research_tuner.lib.teacher.base import Usage
from research_tuner.lib.teacher.factory import build_teacher
from research_tuner.settings import DedupSettings, QuestionGateSettings, load_profile
from research_tuner_tests.support.openai_server import FakeOpenAIServer

ON = DedupSettings(teacher_borderline=True, borderline_margin=0.15)
# a paraphrase pair (one study), a same-topic pair (two studies), and an unrelated question
TEXTS = ["How does sleep deprivation affect working memory in university students?",
         "What is the impact of insufficient sleep on the short-term memory of college students?",
         "How does sleep deprivation affect reaction time in long-haul truck drivers?",
         "Which sorting algorithm is fastest on nearly sorted arrays of integers?"]


def test_only_pairs_just_below_the_bar_and_not_linked_yet_are_candidates():
    found = duplicate_pairs(TEXTS, ON)
    pairs, sims = borderline_candidates(TEXTS, ON, found)
    linked = {(int(a), int(b)) for a, b in zip(found.a, found.b)}
    assert not linked & {tuple(map(int, p)) for p in pairs}
    assert all(3 not in p for p in pairs.tolist())  # the unrelated question is far from every bar
    assert list(sims) == sorted(sims, reverse=True)
    assert len(borderline_candidates(TEXTS, ON.model_copy(update={"borderline_max_pairs": 1}), found)[0]) <= 1


def test_the_teachers_yes_links_a_pair_and_a_rerun_asks_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    with FakeOpenAIServer() as server:
        cfg = load_profile("paper", overrides={"teacher": {"base_url": server.base_url}}).teacher
        teacher = build_teacher(cfg, tmp_path / "cache.sqlite")
        found = duplicate_pairs(TEXTS, ON)
        candidates, _ = borderline_candidates(TEXTS, ON, found)
        usage = Usage()
        merged, asked = teacher_pairs(teacher, TEXTS, ON, found, usage)
        assert asked == len(candidates) == server.answered and usage.requests_sent == asked
        added = merged.frame().iloc[len(found):]
        assert (added["kind"] == "teacher").all()
        # the loopback teacher says yes to pairs that share a quarter of their content words (a fake rule), so
        # what it said shows in the merged pairs exactly
        said_yes = [r["messages"][-1]["content"] for r in server.bodies]
        assert len(added) == sum(server.said_yes(m) for m in said_yes) >= 1
        assert {(int(a), int(b)) for a, b in zip(added["a"], added["b"])} == {(0, 1)}  # the paraphrase pair
        raw = pd.DataFrame([{"question_id": question_id("x", "y", q), "field": "life_sciences",
                             "subdomain": "neuroscience", "question": q, "teacher_model": "t",
                             "generation_round": 0} for q in TEXTS])
        again = Usage()
        audit, _ = curate_questions(raw, ON, QuestionGateSettings(on_topic=False), teacher=teacher, usage=again)
        assert again.requests_sent == 0 and again.cache_hits == asked
        assert (audit["kind"] == "teacher").sum() == len(added)  # the paraphrase is removed as the teacher's duplicate
        assert audit["keep"].sum() == len(TEXTS) - 1


def test_an_answer_is_yes_only_when_it_says_yes():
    assert read_yes("Yes.") and read_yes(" yes, the same study")
    assert not read_yes("No") and not read_yes("Maybe yes") and not read_yes("")


@pytest.mark.parametrize("on", [False, True])
def test_it_is_off_by_default_and_its_settings_do_not_make_the_split_stale(on):
    from research_tuner import versions

    assert not load_profile("paper").dedup.teacher_borderline
    base = versions.code_versions(load_profile("paper"))
    other = versions.code_versions(load_profile("paper", overrides={"dedup": {"teacher_borderline": on,
                                                                              "borderline_margin": 0.2}}))
    assert {a for a in base if base[a] != other[a]} == {"question_clusters"}
