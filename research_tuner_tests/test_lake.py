"""The Parquet lake: partition files, atomic writes, folder assets, a non-local fsspec root, and reads of a damaged
or deleted partition that name the asset, partition, path and repair command."""

import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from research_tuner.lake import (
    LOST_PARTITIONS_OK,
    LakeReadError,
    ParquetLakeIOManager,
    copy_folder_atomic,
    read_parquet,
    write_parquet_atomic,
)
from research_tuner.lake_records import repair_command

parts = dg.StaticPartitionsDefinition(["a", "b"])


@dg.asset(partitions_def=parts)
def table(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"field": [context.partition_key] * 3, "x": [1, 2, 3]})


@dg.asset(ins={"table": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def combined(table: pd.DataFrame) -> pd.DataFrame:
    return table.groupby("field", as_index=False)["x"].sum()


@dg.asset
def folder() -> Path:
    out = Path(tempfile.mkdtemp())
    (out / "sub").mkdir()
    (out / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    (out / "manifest.json").write_text("{}")
    return out


@dg.asset
def reads_folder(folder: Path) -> pd.DataFrame:
    return pd.DataFrame({"files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())})


@pytest.mark.parametrize("root_kind", ["local", "relative", "memory"])
def test_partitions_folders_and_fan_in(tmp_path, root_kind, monkeypatch):
    # "relative": a root such as the default data_lake, resolved against the working directory
    monkeypatch.chdir(tmp_path)
    root = {"local": str(tmp_path / "lake"), "relative": "lake", "memory": f"memory://lake-{tmp_path.name}"}[root_kind]
    io = ParquetLakeIOManager(root=root)
    for key in ("a", "b"):
        assert dg.materialize([table], partition_key=key, resources={"io_manager": io}).success
    assert dg.materialize([table.to_source_asset(), combined, folder, reads_folder],
                          resources={"io_manager": io}).success
    lake = UPath(root)
    assert read_parquet(lake / "table" / "a.parquet")["field"].tolist() == ["a"] * 3
    assert read_parquet(lake / "combined" / "combined.parquet")["x"].tolist() == [6, 6]
    assert read_parquet(lake / "reads_folder" / "reads_folder.parquet")["files"].tolist() == [
        "manifest.json", "sub/weights.bin"]
    assert (lake / "folder" / "sub" / "weights.bin").read_bytes() == b"\x00\x01"
    assert not [p for p in (lake / "table").iterdir() if p.name.endswith(".tmp")]


def test_fan_in_uses_the_partitions_present_and_fails_on_none(tmp_path):
    io = ParquetLakeIOManager(root=str(tmp_path))
    with pytest.raises(Exception, match=r"materialize table for partition\(s\) a, b first"):
        dg.materialize([table.to_source_asset(), combined], resources={"io_manager": io})
    assert dg.materialize([table], partition_key="a", resources={"io_manager": io}).success
    assert dg.materialize([table.to_source_asset(), combined], resources={"io_manager": io}).success
    assert read_parquet(UPath(tmp_path) / "combined" / "combined.parquet")["field"].tolist() == ["a"]


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    target = UPath(tmp_path) / "t" / "a.parquet"
    write_parquet_atomic(pd.DataFrame({"x": [1]}), target)

    class Boom(Exception):
        pass

    def fail(*_a, **_k):
        raise Boom

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)
    with pytest.raises(Boom):
        write_parquet_atomic(pd.DataFrame({"x": [2]}), target)
    monkeypatch.undo()
    assert read_parquet(target)["x"].tolist() == [1]


def test_folder_replacement_is_whole(tmp_path):
    src1, src2 = tmp_path / "v1", tmp_path / "v2"
    src1.mkdir(), src2.mkdir()
    (src1 / "old.txt").write_text("1")
    (src2 / "new.txt").write_text("2")
    target = UPath(tmp_path) / "lake" / "adapter"
    copy_folder_atomic(src1, target)
    copy_folder_atomic(src2, target)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


def truncate(path: UPath) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_damaged_partition_names_asset_partition_path_and_repair(tmp_path):
    io = ParquetLakeIOManager(root=str(tmp_path))
    for key in ("a", "b"):
        assert dg.materialize([table], partition_key=key, resources={"io_manager": io}).success
    truncate(UPath(tmp_path) / "table" / "a.parquet")
    with pytest.raises(LakeReadError) as err:
        dg.materialize([table.to_source_asset(), combined], resources={"io_manager": io})
    message = str(err.value)
    path = UPath(tmp_path) / "table" / "a.parquet"
    assert f"table partition a: cannot read {path}" in message and "magic bytes" in message
    assert "Rematerialize it" in message and "response cache" in message
    assert err.value.command == repair_command(str(tmp_path), "table", "a")
    assert "--select table --partition a" in err.value.command and str(tmp_path) in err.value.command


def test_a_deleted_published_partition_is_an_error_one_never_built_is_not(tmp_path):
    io = ParquetLakeIOManager(root=str(tmp_path))
    assert dg.materialize([table], partition_key="a", resources={"io_manager": io}).success
    assert dg.materialize([table.to_source_asset(), combined], resources={"io_manager": io}).success  # b: never built
    assert dg.materialize([table], partition_key="b", resources={"io_manager": io}).success
    (UPath(tmp_path) / "table" / "b.parquet").unlink()
    with pytest.raises(LakeReadError, match=r"table partition b: cannot read .*b\.parquet: the file is gone although "
                                            r"run \S+ published it"):
        dg.materialize([table.to_source_asset(), combined], resources={"io_manager": io})


def test_an_input_that_can_do_without_a_lost_partition_logs_an_error(tmp_path):
    @dg.asset(ins={"table": dg.AssetIn(partition_mapping=dg.AllPartitionMapping(),
                                       metadata={LOST_PARTITIONS_OK: True})})
    def tolerant(table: pd.DataFrame) -> pd.DataFrame:
        return table

    io = ParquetLakeIOManager(root=str(tmp_path))
    for key in ("a", "b"):
        assert dg.materialize([table], partition_key=key, resources={"io_manager": io}).success
    truncate(UPath(tmp_path) / "table" / "b.parquet")
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([table.to_source_asset(), tolerant], resources={"io_manager": io}, instance=instance)
        errors = [r.user_message for r in instance.all_logs(result.run_id) if r.level >= 40]
    assert result.success
    assert read_parquet(UPath(tmp_path) / "tolerant" / "tolerant.parquet")["field"].unique().tolist() == ["a"]
    assert len(errors) == 1 and "table partition b: cannot read" in errors[0] and "--partition b" in errors[0]


def test_a_folder_asset_with_a_file_gone_names_it(tmp_path):
    io = ParquetLakeIOManager(root=str(tmp_path))
    assert dg.materialize([folder], resources={"io_manager": io}).success
    (UPath(tmp_path) / "folder" / "sub" / "weights.bin").unlink()
    with pytest.raises(LakeReadError, match=r"folder: cannot read .*folder: 1 file\(s\) gone: sub/weights.bin"):
        dg.materialize([folder.to_source_asset(), reads_folder], resources={"io_manager": io})
