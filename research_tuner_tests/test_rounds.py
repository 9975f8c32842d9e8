"""Generation rounds add data instead of replacing it: three rounds for two fields on one lake, through the real
round_job and data_job with the paper profile's OpenAI code path against a loopback teacher whose questions follow
the request's seed (so each round brings new ones).

Checked: every row of every round stays in the lake, byte-identical once written; the split only grows and no
question changes side; a round-3 copy of a round-1 question is removed from round 3, never the round-1 one; a
round that fails halfway and is rerun leaves rounds 1-2 byte-identical; deleting a round removes exactly its rows
downstream.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from research_tuner.lake import read_parquet
from research_tuner.rounds import delete_round, lake_rounds
from research_tuner_tests.support import openai_server
from research_tuner_tests.support.data_runs import DATA_ASSETS, errors_of, run_data_job
from research_tuner_tests.support.openai_server import FakeOpenAIServer

FIELDS = ("arts", "humanities")
ROUNDS = ("1", "2", "3")


def round_files(lake) -> dict[str, bytes]:
    """Every field x round file of the lake, by relative path."""
    root = UPath(lake)
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for asset in ("subdomains", "raw_questions") for p in sorted((root / asset).rglob("*.parquet"))}


def frame(lake, asset: str, partition: str | None = None) -> pd.DataFrame:
    return read_parquet(UPath(lake) / asset / f"{partition or asset}.parquet")


def sides(lake) -> dict[str, str]:
    return {qid: side for f in FIELDS for qid, side in zip(*frame(lake, "dataset_split", f)[["question_id", "split"]]
                                                           .T.to_numpy())}


def with_a_copy_of(question: str):
    """The teacher, except that its question lists also carry `question` (a copy of an earlier round's)."""
    real = openai_server.answer_for

    def answer(messages, wants_json, seed=None):
        text = real(messages, wants_json, seed)
        if '"questions"' in text:
            questions = json.loads(text)["questions"]
            return json.dumps({"questions": [questions[0], question, *questions[2:]]})
        return text

    return answer


@pytest.fixture(scope="module")
def three_rounds(tmp_path_factory):
    """Rounds 1-3 for both fields; round 3's arts lists repeat a round-1 arts question. Snapshots after each round."""
    tmp = tmp_path_factory.mktemp("rounds")
    lake, snapshots = tmp / "lake", {}
    patch = pytest.MonkeyPatch()
    with FakeOpenAIServer() as server, dg.DagsterInstance.ephemeral() as instance:
        server.questions_follow_seed = True
        for round_ in ROUNDS:
            for field in FIELDS:
                if (round_, field) == ("3", "arts"):
                    first = frame(lake, "raw_questions", "arts/1").sort_values("question_id").iloc[0]
                    patch.setattr(openai_server, "answer_for", with_a_copy_of(first["question"]))
                result = run_data_job(lake, field, server.base_url, tmp / "work", instance, round_=round_)
                patch.undo()
                assert result.success, errors_of(result, instance)
            snapshots[round_] = {"files": round_files(lake), "sides": sides(lake),
                                 "clusters": frame(lake, "question_clusters")}
        yield {"lake": lake, "tmp": tmp, "server": server, "instance": instance, "snapshots": snapshots,
               "copied": first}


def test_every_row_of_every_round_stays_and_round_files_are_never_rewritten(three_rounds):
    lake, snapshots = three_rounds["lake"], three_rounds["snapshots"]
    assert lake_rounds(str(lake)) == list(ROUNDS)
    final = snapshots["3"]["files"]
    assert sorted(final) == sorted(f"{a}/{f}/{r}.parquet" for a in ("subdomains", "raw_questions")
                                   for f in FIELDS for r in ROUNDS)
    for round_ in ROUNDS[:-1]:
        for path, data in snapshots[round_]["files"].items():
            assert final[path] == data, f"{path} was rewritten by a later round"
    clusters = snapshots["3"]["clusters"]
    for field in FIELDS:
        for round_ in ROUNDS:
            raw = frame(lake, "raw_questions", f"{field}/{round_}")
            assert (raw["generation_round"] == int(round_)).all()
            audited = clusters[(clusters["field"] == field) & (clusters["generation_round"] == int(round_))]
            assert sorted(audited["question"]) == sorted(raw["question"])  # every row of every round is audited


def test_the_split_only_grows_and_no_question_moves_side(three_rounds):
    snapshots = three_rounds["snapshots"]
    sizes = []
    for before, after in zip(ROUNDS, ROUNDS[1:]):
        earlier, later = snapshots[before]["sides"], snapshots[after]["sides"]
        assert {q: later.get(q) for q in earlier} == earlier  # every question kept, on its side
        sizes.append((len(earlier), len(later)))
    assert all(b > a for a, b in sizes), sizes  # each round added questions
    split = pd.concat([frame(three_rounds["lake"], "dataset_split", f) for f in FIELDS])
    assert set(split["generation_round"]) == {1, 2, 3}


def test_a_later_copy_of_an_earlier_question_is_removed_from_the_later_round(three_rounds):
    clusters, copied = three_rounds["snapshots"]["3"]["clusters"], three_rounds["copied"]
    rows = clusters[clusters["question"] == copied["question"]].set_index("generation_round")
    assert sorted(rows.index) == [1, 3]
    assert rows.loc[1, "keep"] and not rows.loc[3, "keep"]
    assert rows.loc[3, "kind"] == "exact" and rows.loc[3, "duplicate_of"] == copied["question_id"]


def test_a_round_that_fails_halfway_and_is_rerun_leaves_the_earlier_rounds_byte_identical(three_rounds, monkeypatch):
    lake, tmp, server, instance = (three_rounds[k] for k in ("lake", "tmp", "server", "instance"))
    before = round_files(lake)
    assert run_data_job(lake, "arts", server.base_url, tmp / "work4", instance, round_="4").success
    server.expected_key = "sk-another-key"  # the teacher refuses every request from here on (401: no step retry)
    try:
        failed = run_data_job(lake, "humanities", server.base_url, tmp / "work4", instance, round_="4")
    finally:
        server.expected_key = None
    assert not failed.success
    assert not (UPath(lake) / "raw_questions" / "humanities" / "4.parquet").exists()
    assert run_data_job(lake, "humanities", server.base_url, tmp / "work4", instance, round_="4").success
    after = round_files(lake)
    assert {p: after[p] for p in before} == before  # rounds 1-3 untouched by round 4, its failure and its rerun
    assert set(after) - set(before) == {f"{a}/{f}/4.parquet" for a in ("subdomains", "raw_questions") for f in FIELDS}

    # deleting round 4 removes exactly its rows downstream: the data is what it was after round 3
    removed = delete_round(str(lake), "4", instance)
    assert len(removed) == 8 and round_files(lake) == before  # 2 assets x 2 fields, a file and a record each
    assert "4" not in instance.get_dynamic_partitions("generation_round")
    for field in FIELDS:
        result = run_data_job(lake, field, server.base_url, tmp / "work4", instance, selection=list(DATA_ASSETS[2:]))
        assert result.success, errors_of(result, instance)
    assert sides(lake) == three_rounds["snapshots"]["3"]["sides"]
    clusters, expected = frame(lake, "question_clusters"), three_rounds["snapshots"]["3"]["clusters"]
    columns = ["question_id", "generation_round", "keep", "duplicate_of"]
    assert (clusters.sort_values(columns)[columns].reset_index(drop=True)
            .equals(expected.sort_values(columns)[columns].reset_index(drop=True)))


def test_the_cli_lists_the_rounds_and_refuses_to_delete_one_that_is_not_there(three_rounds, capsys):
    from research_tuner import cli

    lake = str(three_rounds["lake"])
    assert cli.main(["rounds", "--lake", lake]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["round 1", "round 2", "round 3"]
    assert all("in 2 field(s) (arts " in line for line in lines)
    assert cli.main(["delete-round", "7", "--lake", lake]) == 2
    assert "holds no round 7" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        cli.main(["run", "--round", "next", "--lake", lake])
    assert stopped.value.code == 2 and "'next' is not a round" in capsys.readouterr().err
