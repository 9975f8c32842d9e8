"""The Parquet data lake: an IO manager that writes `<root>/<asset>/<partition>.parquet` atomically.

The root is any fsspec URL (a local folder, `s3://bucket/lake`, `gs://...`, `memory://...`): paths are
universal-pathlib UPaths, so moving the lake is configuration alone. A file is written under a temporary
name and renamed into place, so a killed run never leaves a half-written Parquet file that reads as
valid. An asset that returns a local folder (the LoRA adapter) is copied to `<root>/<asset>/` the same
way, and downstream assets receive a local folder back.

Each write also records the asset's data version as a hash of what was written. Dagster would otherwise
derive it from the code version and the inputs' versions, which cannot see that a teacher wrote new
data for a new generation round: with content hashes, new data marks what follows it stale in the UI,
and a rerun that writes the same bytes does not.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
from upath import UPath


def lake_path(root: str, *parts: str) -> UPath:
    return UPath(root).joinpath(*parts)


def write_parquet_atomic(frame: pd.DataFrame, target: UPath) -> str:
    """Write `frame` to `target` via a staging name; returns the SHA-256 of the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    staging.write_bytes(data)
    staging.rename(target)  # an atomic replace on a local disk; a single object PUT on object stores
    return hashlib.sha256(data).hexdigest()


def read_parquet(path: UPath) -> pd.DataFrame:
    with path.open("rb") as handle:
        return pq.read_table(handle).to_pandas()


def copy_folder_atomic(source: Path, target: UPath) -> str:
    """Replace `target` with a copy of the local folder `source`; the old copy goes only once the new one is
    whole. Returns a SHA-256 over the files' relative paths and contents."""
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    digest = hashlib.sha256()
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = file.relative_to(source)
        data = file.read_bytes()
        digest.update(relative.as_posix().encode() + b"\0" + hashlib.sha256(data).digest())
        dest = staging.joinpath(*relative.parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    trash = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
    if target.exists():
        _move_folder(target, trash)
    _move_folder(staging, target)
    if trash.exists():
        trash.fs.rm(trash.path, recursive=True)
    return digest.hexdigest()


def _move_folder(source: UPath, target: UPath) -> None:
    """A rename on a local disk; on object stores, which have no folders to rename, a copy of each object
    and then the removal of the source (fsspec's recursive mv trips over S3's implied folder keys)."""
    if _is_local(source):
        source.rename(target)
        return
    fs, prefix, dest = source.fs, source.path.rstrip("/"), target.path.rstrip("/")
    for key in fs.find(prefix):
        fs.copy(key, f"{dest}/{key[len(prefix) + 1:]}")
    fs.rm(prefix, recursive=True)


def _is_local(path: UPath) -> bool:
    return not path.protocol or path.protocol == "file"


def local_copy(folder: UPath) -> Path:
    """A local folder with the contents of `folder`: itself when local, else a downloaded copy."""
    if _is_local(folder):
        return Path(folder.path)
    dest = Path(tempfile.mkdtemp(prefix="lake-"))
    folder.fs.get(folder.path.rstrip("/") + "/", str(dest), recursive=True)
    return dest


def _record_data_version(context: dg.OutputContext, digest: str) -> None:
    """The content hash becomes the materialization's data version (read after handle_output returns)."""
    step = getattr(context, "_step_context", None)  # absent when an OutputContext is built by hand
    if step is not None and context.has_asset_key:
        step.set_data_version(context.asset_key, dg.DataVersion(digest[:24]))


class ParquetLakeIOManager(dg.ConfigurableIOManager):
    """DataFrames as Parquet per partition; local folders copied whole. `root` is any fsspec URL."""

    root: str = "data_lake"

    def _asset_dir(self, context) -> UPath:
        return lake_path(self.root, *context.asset_key.path)

    def _file(self, context, partition: str | None) -> UPath:
        name = partition if partition is not None else context.asset_key.path[-1]
        return self._asset_dir(context) / f"{name}.parquet"

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        if isinstance(obj, pd.DataFrame):
            partition = context.asset_partition_key if context.has_asset_partitions else None
            target = self._file(context, partition)
            _record_data_version(context, write_parquet_atomic(obj, target))
            context.add_output_metadata({"path": dg.MetadataValue.path(str(target))})
        elif isinstance(obj, Path) and obj.is_dir():
            target = self._asset_dir(context)
            _record_data_version(context, copy_folder_atomic(obj, target))
            context.add_output_metadata({"path": dg.MetadataValue.path(str(target))})
        else:
            raise TypeError(f"the lake stores DataFrames and local folders, not {type(obj).__name__}")

    def load_input(self, context: dg.InputContext):
        upstream = context.upstream_output
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            paths = {key: self._file(upstream, key) for key in keys}
            present = [key for key in keys if paths[key].exists()]
            missing = [key for key in keys if key not in present]
            if missing and (len(keys) == 1 or not present):
                raise FileNotFoundError(
                    f"{paths[missing[0]]} is missing: materialize {context.asset_key.to_user_string()} for "
                    f"partition(s) {', '.join(missing)} first"
                )
            if missing:  # a fan-in over fields proceeds with the fields that exist, and says so
                context.log.warning(
                    f"{context.asset_key.to_user_string()}: using {len(present)} of {len(keys)} partitions; "
                    f"not materialized: {', '.join(missing)}"
                )
            frames = [read_parquet(paths[key]) for key in present]
            return pd.concat(frames, ignore_index=True) if len(frames) != 1 else frames[0]
        file = self._file(upstream, None)
        if file.exists():
            return read_parquet(file)
        folder = self._asset_dir(upstream)
        if folder.exists():
            return local_copy(folder)
        raise FileNotFoundError(f"{folder} is missing: materialize {context.asset_key.to_user_string()} first")


def stored_frame(io_manager, asset: str, partition: str | None = None) -> pd.DataFrame | None:
    """What an earlier run wrote for `asset` (and partition), or None: how an asset reads its own last output.

    Only the Parquet lake knows where that is; with any other IO manager there is no earlier output to read.
    """
    root = getattr(io_manager, "root", None)
    if not isinstance(root, str):
        return None
    path = lake_path(root, asset, f"{partition if partition is not None else asset}.parquet")
    return read_parquet(path) if path.exists() else None
