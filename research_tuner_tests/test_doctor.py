"""`research-tuner doctor` on a lake the real data job built: nothing to report in a good lake; a truncated, a
deleted and a schema-broken partition (and a damaged file with no record, a generation round's too) each reported with its repair command;
a folder asset with a file gone or resized; and a partition the Dagster instance materialized that the lake
lost every trace of."""

import contextlib
import io
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from research_tuner import cli
from research_tuner.doctor import check_lake
from research_tuner.lake import ParquetLakeIOManager, read_parquet, write_parquet_atomic
from research_tuner.lake_records import record_path
from research_tuner_tests.support.data_runs import run_data_job
from research_tuner_tests.support.openai_server import FakeOpenAIServer


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A lake with arts and humanities built by the data job, and the instance that ran them."""
    tmp = tmp_path_factory.mktemp("doctor")
    with FakeOpenAIServer() as server, dg.DagsterInstance.ephemeral() as instance:
        for field in ("arts", "humanities"):
            assert run_data_job(tmp / "lake", field, server.base_url, tmp / "work", instance).success
        yield tmp / "lake", instance


def doctor(lake) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["doctor", "--lake", str(lake)])
    return code, out.getvalue() + err.getvalue()


def copy_lake(lake, dest):
    shutil.copytree(lake, dest)
    return dest


def test_a_good_lake_has_nothing_to_report(built, monkeypatch):
    lake, _ = built
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    code, text = doctor(lake)
    assert code == 0, text
    assert "all 11 partition(s) readable and as published" in text  # 5 per-field assets x 2 + question_clusters


def test_truncated_deleted_and_schema_broken_files_are_each_reported_with_a_repair(built, tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    lake = copy_lake(built[0], tmp_path / "lake")
    root = UPath(lake)
    raw = root / "raw_questions" / "arts" / "0.parquet"
    raw.write_bytes(raw.read_bytes()[:300])
    (root / "approaches" / "humanities.parquet").unlink()
    split = read_parquet(root / "dataset_split" / "arts.parquet")
    write_parquet_atomic(split.rename(columns={"split": "side"}), root / "dataset_split" / "arts.parquet")
    legacy = root / "old_asset" / "arts.parquet"  # a file from before records: only its readability is known
    legacy.parent.mkdir()
    legacy.write_bytes(b"not parquet at all")
    (root / "raw_questions" / "arts" / "7.parquet").write_bytes(b"a round file nothing published")

    code, text = doctor(lake)
    assert code == 1
    findings = {f.label: f for f in check_lake(str(lake))[0]}
    assert sorted(findings) == ["approaches [humanities]", "dataset_split [arts]", "old_asset [arts]",
                                "raw_questions [arts|0]", "raw_questions [arts|7]"]
    assert findings["raw_questions [arts|7]"].problem.startswith("unreadable (")
    assert findings["raw_questions [arts|0]"].problem.startswith("unreadable (")
    assert findings["approaches [humanities]"].problem.startswith("missing although run ")
    assert findings["dataset_split [arts]"].problem == "schema differs: split gone, side added"
    assert findings["old_asset [arts]"].problem.startswith("unreadable (")
    for label, finding in findings.items():
        asset, partition = label.rstrip("]").split(" [")
        if "|" in partition:  # a generation round's file: the repair module adds the round, then rebuilds it
            assert finding.command.startswith(f"python -m research_tuner.repair --select {asset} "
                                              f"--partition '{partition}' --config-json ")
        else:
            assert finding.command.startswith("dagster asset materialize -m research_tuner.definitions "
                                              f"--select {asset} --partition {partition} --config-json ")
        assert f"- {label}: {finding.path}: {finding.problem}\n  repair: {finding.command}" in text
    assert '"profile":"paper"' in findings["raw_questions [arts|0]"].command  # the publishing run's settings


def test_a_changed_row_count_is_reported(built, tmp_path):
    lake = copy_lake(built[0], tmp_path / "lake")
    path = UPath(lake) / "deduped_questions" / "arts.parquet"
    write_parquet_atomic(read_parquet(path).head(1), path)
    [finding] = check_lake(str(lake))[0]
    assert finding.label == "deduped_questions [arts]" and finding.problem == "1 rows, 4 published"


def test_the_instance_knows_a_partition_the_lake_lost_every_trace_of(built):
    lake, instance = built
    assert check_lake(str(lake), instance)[0] == []  # lake and instance agree
    path = UPath(lake) / "approaches" / "arts.parquet"
    data, record = path.read_bytes(), record_path(str(lake), "approaches", "arts")
    saved = record.read_bytes()
    path.unlink(), record.unlink()
    try:
        [finding] = check_lake(str(lake), instance)[0]
        assert finding.label == "approaches [arts]" and "lake holds neither the file nor its record" in finding.problem
        assert '"profile":"paper"' in finding.command  # the settings come from the run the instance recorded
        assert check_lake(str(lake))[0] == []  # without the instance nothing says it ever existed
    finally:
        path.write_bytes(data), record.write_bytes(saved)


def test_a_folder_asset_with_a_file_gone_or_resized_is_reported(tmp_path):
    @dg.asset
    def adapter() -> Path:
        out = tmp_path / "built"
        (out / "adapter").mkdir(parents=True)
        (out / "adapter" / "weights.bin").write_bytes(b"\x00" * 64)
        (out / "manifest.json").write_text("{}")
        pd.DataFrame({"x": [1]}).to_parquet(out / "training_log.parquet")  # Parquet inside: not a partition
        return out

    lake = tmp_path / "lake"
    assert dg.materialize([adapter], resources={"io_manager": ParquetLakeIOManager(root=str(lake))}).success
    assert check_lake(str(lake)) == ([], 1)
    (lake / "adapter" / "manifest.json").unlink()
    (lake / "adapter" / "adapter" / "weights.bin").write_bytes(b"\x00" * 10)
    [gone, resized] = check_lake(str(lake))[0]
    assert (gone.label, gone.problem) == ("adapter", "1 file(s) gone: manifest.json")
    assert resized.problem == "1 file(s) changed size: adapter/weights.bin"
    assert "--select adapter --config-json" in gone.command and "--partition" not in gone.command
