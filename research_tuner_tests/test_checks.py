"""Publish only what passed: a rerun whose blocking check fails leaves the last good partitions byte-identical
and the lake consistent, records the failed check and what was not published, and a later good run publishes."""

import dagster as dg
from upath import UPath

from research_tuner.lake import read_parquet
from research_tuner.lake_records import read_record
from research_tuner_tests.support import openai_server
from research_tuner_tests.support.data_runs import DATA_ASSETS, errors_of, run_data_job, run_data_jobs
from research_tuner_tests.support.openai_server import FakeOpenAIServer


def unreadable_approaches(real):
    """The teacher writes questions as before but approaches without any of the 7 sections."""

    def answer(messages, wants_json):
        if "level-2 Markdown headings" in messages[-1]["content"]:
            return "I would study this carefully and report the findings."
        return real(messages, wants_json)

    return answer


def test_a_failed_blocking_check_keeps_the_last_good_partition_byte_identical(tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    with FakeOpenAIServer() as server, dg.DagsterInstance.ephemeral() as instance:
        assert run_data_job(lake, "arts", server.base_url, tmp_path / "work1", instance).success
        before = {a: (UPath(lake) / a / "arts.parquet").read_bytes() for a in ("approaches", "dataset_split")}
        good = read_record(str(lake), "approaches", "arts")

        # the rerun: a fresh cache (so every request reaches the teacher), and the teacher's approaches are junk
        monkeypatch.setattr(openai_server, "answer_for", unreadable_approaches(openai_server.answer_for))
        result = run_data_job(lake, "arts", server.base_url, tmp_path / "work2", instance)
        message = errors_of(result, instance)

    assert not result.success
    for asset, data in before.items():
        assert (UPath(lake) / asset / "arts.parquet").read_bytes() == data, f"{asset} was replaced"
    assert read_record(str(lake), "approaches", "arts") == good  # the record still names the good version
    assert "approaches [arts]: blocking check(s) every_approach_has_7_sections failed" in message
    assert f"the last good version {good.version[:24]}" in message and "stays current" in message
    checks = [e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
              and e.asset_check_evaluation_data.asset_check_key.name == "every_approach_has_7_sections"]
    assert [c.passed for c in checks] == [False]  # the failed check is recorded, visible in the UI
    materialized = {e.asset_key.path[-1] for e in result.all_events if e.is_step_materialization}
    assert "approaches" not in materialized and "dataset_split" not in materialized
    observed = [e.asset_observation_data.asset_observation for e in result.all_events if e.is_asset_observation]
    assert [o.metadata["published"].value for o in observed if o.asset_key.path[-1] == "approaches"] == [False]
    # what follows the kept partition is the split made from it: the two still agree
    split = read_parquet(UPath(lake) / "dataset_split" / "arts.parquet")
    assert set(split["question_id"]) == set(read_parquet(UPath(lake) / "approaches" / "arts.parquet")["question_id"])


def test_a_passing_run_publishes_with_its_version_in_the_metadata(tmp_path):
    lake = tmp_path / "lake"
    with FakeOpenAIServer() as server, dg.DagsterInstance.ephemeral() as instance:
        results = run_data_jobs(lake, "humanities", server.base_url, tmp_path / "work", instance)
    assert all(r.success for r in results.values())
    result = results["data_job"]
    for asset in DATA_ASSETS:
        partition = {"question_clusters": None, "subdomains": "humanities|0", "raw_questions": "humanities|0"}.get(
            asset, "humanities")
        record = read_record(str(lake), asset, partition)
        run = results["round_job" if asset in ("subdomains", "raw_questions") else "data_job"]
        [mat] = run.asset_materializations_for_node(asset)
        assert mat.metadata["lake/version"].value == record.version[:24], asset
        assert record.rows == mat.metadata["lake/rows"].value > 0
        assert record.settings["profile"] == "paper" and record.run_id == run.run_id
    checks = [e.asset_check_evaluation_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert checks and all(c.passed for c in checks if c.asset_check_key.name != "no_failed_approaches")
    partitioned = [c for c in checks if c.asset_check_key.asset_key.path[-1] != "question_clusters"]
    assert all(c.target_materialization_data.run_id == result.run_id for c in partitioned), "each judges its output"
