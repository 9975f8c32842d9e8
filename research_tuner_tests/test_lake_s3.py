"""The data lake on object storage: the IO manager with an s3:// root against a real S3-compatible server
(moto's standalone server, in its own process on loopback, standing in for S3), through s3fs - partition
files, the fan-in over fields, folder assets, atomic writes, and a slice of the real graph."""

import os
import subprocess
import sys
import time
import urllib.request

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from research_tuner.lake import ParquetLakeIOManager, copy_folder_atomic, read_parquet, write_parquet_atomic
from research_tuner_tests.support.pg_server import free_port
from research_tuner_tests.test_lake import combined, folder, reads_folder, table

BUCKET = "research-tuner-test"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not start (exit {proc.poll()})")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture
def s3_lake(s3_server, monkeypatch, request):
    """An empty s3:// lake root; the endpoint and credentials come from the standard AWS variables,
    as they would for a real bucket (or MinIO / R2 through AWS_ENDPOINT_URL_S3)."""
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    root = f"s3://{BUCKET}/{request.node.name}"
    yield root, fs
    s3fs.S3FileSystem.clear_instance_cache()


def keys_under(fs, root: str) -> list[str]:
    prefix = root.removeprefix("s3://")
    return sorted(p.removeprefix(prefix + "/") for p in fs.find(prefix))


def test_partitions_fan_in_and_folders_on_s3(s3_lake):
    root, fs = s3_lake
    io = ParquetLakeIOManager(root=root)
    # the fan-in with no partition written yet fails and names what to materialize
    with pytest.raises(Exception, match=r"materialize table for partition\(s\) a, b first"):
        dg.materialize([table.to_source_asset(), combined], resources={"io_manager": io})
    assert dg.materialize([table], partition_key="a", resources={"io_manager": io}).success
    # with one of two partitions present, the fan-in proceeds with it
    assert dg.materialize([table.to_source_asset(), combined], resources={"io_manager": io}).success
    assert read_parquet(UPath(root) / "combined" / "combined.parquet")["field"].tolist() == ["a"]
    assert dg.materialize([table], partition_key="b", resources={"io_manager": io}).success
    assert dg.materialize([table.to_source_asset(), combined, folder, reads_folder],
                          resources={"io_manager": io}).success

    assert keys_under(fs, root) == [
        "_published/combined/combined.json", "_published/folder/folder.json",
        "_published/reads_folder/reads_folder.json", "_published/table/a.json", "_published/table/b.json",
        "combined/combined.parquet", "folder/manifest.json", "folder/sub/weights.bin",
        "reads_folder/reads_folder.parquet", "table/a.parquet", "table/b.parquet",
    ]  # each partition's record beside the data; no staging (.tmp) or replaced (.old) objects left behind
    assert read_parquet(UPath(root) / "combined" / "combined.parquet")["x"].tolist() == [6, 6]
    # the folder asset was downloaded for its reader and handed over as a local folder
    assert read_parquet(UPath(root) / "reads_folder" / "reads_folder.parquet")["files"].tolist() == [
        "manifest.json", "sub/weights.bin"]
    assert fs.cat(f"{root.removeprefix('s3://')}/folder/sub/weights.bin") == b"\x00\x01"
    # what a plain S3 client sees is ordinary Parquet
    with fs.open(f"{root.removeprefix('s3://')}/table/a.parquet", "rb") as handle:
        assert pd.read_parquet(handle)["field"].tolist() == ["a"] * 3


def test_a_failed_write_on_s3_leaves_the_old_object_whole(s3_lake, monkeypatch):
    root, fs = s3_lake
    target = UPath(root) / "t" / "a.parquet"
    write_parquet_atomic(pd.DataFrame({"x": [1]}), target)

    def fail(*_a, **_k):
        raise OSError("connection reset while uploading")

    monkeypatch.setattr(UPath, "rename", fail)  # the upload of the staged object worked, the move did not
    with pytest.raises(OSError):
        write_parquet_atomic(pd.DataFrame({"x": [2]}), target)
    monkeypatch.undo()
    assert read_parquet(target)["x"].tolist() == [1]
    write_parquet_atomic(pd.DataFrame({"x": [3]}), target)
    assert read_parquet(target)["x"].tolist() == [3]


def test_folder_replacement_on_s3_is_whole(s3_lake, tmp_path):
    root, fs = s3_lake
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    (v1 / "adapter").mkdir(parents=True)
    (v1 / "adapter" / "old.bin").write_bytes(b"1")
    v2.mkdir()
    (v2 / "new.txt").write_text("2")
    target = UPath(root) / "lora_adapter"
    copy_folder_atomic(v1, target)
    copy_folder_atomic(v2, target)
    assert [k for k in keys_under(fs, root) if not k.startswith(".")] == ["lora_adapter/new.txt"]
    assert not [k for k in keys_under(fs, root) if "/." in "/" + k], "no staging or trash objects left"


def test_a_real_slice_of_the_graph_writes_to_s3(s3_lake, tmp_path, monkeypatch):
    from research_tuner.definitions import defs

    root, fs = s3_lake
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("generation_round", ["0"])
    result = defs.resolve_job_def("round_job").execute_in_process(
        partition_key="life_sciences|0", asset_selection=[dg.AssetKey("subdomains")], instance=instance,
        run_config={"resources": {"io_manager": {"config": {"root": root}}}},
    )
    assert result.success
    frame = read_parquet(UPath(root) / "subdomains" / "life_sciences" / "0.parquet")
    assert len(frame) > 0 and (frame["field"] == "life_sciences").all()
    path = result.asset_materializations_for_node("subdomains")[0].metadata["path"].value
    assert path.startswith("s3://") and path.endswith("/subdomains/life_sciences/0.parquet")
