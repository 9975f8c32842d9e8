"""The Parquet data lake: an IO manager that writes `<root>/<asset>/<partition>.parquet` atomically.

The root is any fsspec URL (a local folder, `s3://bucket/lake`, `gs://...`, `memory://...`): paths are
universal-pathlib UPaths, so moving the lake is configuration alone. A file is written under a temporary
name and renamed into place, so a killed run never leaves a half-written Parquet file that reads as
valid. An asset that returns a local folder (the LoRA adapter) is copied to `<root>/<asset>/` the same
way, and downstream assets receive a local folder back.

Each write also records the asset's data version as a hash of what was written. Dagster would otherwise
derive it from the code version and the inputs' versions, which cannot see that a teacher wrote new
data for a new generation round: with content hashes, new data marks what follows it stale in the UI,
and a rerun that writes the same bytes does not. The same version goes into the materialization's metadata
(`lake/version`) and into the partition's record (lake_records.py), so the UI, the lake and `doctor` agree
on which version is current.

Only what passed is published: the assets evaluate their blocking checks before they hand the IO manager a
frame (checks.py), so a failed check or step never reaches `handle_output`. Every read that fails names the
asset, partition and path and gives the command that rebuilds it (`LakeReadError`).
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from research_tuner.lake_records import (CHEAP, Record, asset_records, partition_stem, read_record, record_path,
                                         repair_command)

#: Set on an AssetIn that fans in over partitions and can do without a lost one (it logs an error and rebuilds
#: the partition's rows from elsewhere); without it, a lost partition fails the step.
LOST_PARTITIONS_OK = "lake/lost_partitions_ok"


def lake_path(root: str, *parts: str) -> UPath:
    return UPath(root).joinpath(*parts)


def write_bytes_atomic(data: bytes, target: UPath) -> str:
    """Write `data` to `target` via a staging name; returns the SHA-256 of the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    staging.write_bytes(data)
    staging.rename(target)  # an atomic replace on a local disk; a single object PUT on object stores
    return hashlib.sha256(data).hexdigest()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_parquet_atomic(frame: pd.DataFrame, target: UPath) -> str:
    """Write `frame` to `target` via a staging name; returns the SHA-256 of the bytes written."""
    return write_bytes_atomic(parquet_bytes(frame), target)


def arrow_schema(schema: pa.Schema) -> list[list[str]]:
    """A schema as [[column, type], ...]: what a record keeps and doctor compares."""
    return [[f.name, str(f.type)] for f in schema]


def read_parquet(path: UPath) -> pd.DataFrame:
    with path.open("rb") as handle:
        return pq.read_table(handle).to_pandas()


class LakeReadError(dg.Failure):
    """A lake file that should be there could not be read: names the asset, partition, path and the repair.

    A `dg.Failure` that is not retried: a retry reads the same damaged bytes."""

    def __init__(self, root: str, asset: str, partition: str | None, path: UPath, problem: str):
        record = read_record(root, asset, partition)
        where = asset + (f" partition {partition}" if partition is not None else "")
        command = repair_command(root, asset, partition, record.settings if record else None)
        self.path, self.command = path, command
        self.summary = f"{where}: cannot read {path}: {problem.rstrip('.')}"  # without the repair
        super().__init__(
            description=f"{self.summary}. Rematerialize it ({CHEAP}): {command}",
            metadata={"path": str(path), "repair": command},
            allow_retries=False,
        )


def read_partition(root: str, asset: str, partition: str | None) -> pd.DataFrame:
    """The published frame of `asset` (and partition); a missing or damaged file raises LakeReadError, or
    FileNotFoundError when the lake never published it (nothing to repair: it was never built)."""
    path = partition_file(root, asset, partition)
    try:
        data = path.read_bytes()  # a dropped connection to S3 is not damage: it propagates, and the step may retry
    except FileNotFoundError:
        record = read_record(root, asset, partition)
        if record is None:
            raise
        raise LakeReadError(root, asset, partition, path,
                            f"the file is gone although run {record.run_id or '?'} published it at "
                            f"{record.written_at}") from None
    try:
        return pq.read_table(pa.BufferReader(data)).to_pandas()
    except Exception as exc:  # whatever the bytes in hand fail with is damage: truncated, foreign, corrupt
        raise LakeReadError(root, asset, partition, path, f"{type(exc).__name__}: {exc}") from exc


def partition_file(root: str, asset: str, partition: str | None) -> UPath:
    """`<root>/<asset>/<partition>.parquet`; a field x round partition ("arts|3") is `<asset>/arts/3.parquet`."""
    return lake_path(root, asset, f"{partition_stem(partition) if partition is not None else asset.split('/')[-1]}.parquet")


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


def folder_problems(folder: UPath, record: Record) -> list[str]:
    """How a folder asset differs from what was published: files gone or of another size (cheap: no hashing)."""
    if not folder.exists():
        return [f"the folder is gone although run {record.run_id or '?'} published it at {record.written_at}"]
    # find() answers in the filesystem's own form of a path (absolute on a local disk, even for a relative lake
    # root such as the default data_lake), so the prefix is put in that form too
    prefix = folder.fs._strip_protocol(folder.path).rstrip("/") + "/"
    sizes = {key[len(prefix):]: int(info.get("size") or 0)
             for key, info in folder.fs.find(folder.path, detail=True).items() if info.get("type") != "directory"}
    gone = [name for name in record.files or {} if name not in sizes]
    changed = [name for name, size in (record.files or {}).items() if name in sizes and sizes[name] != size]
    return ([f"{len(gone)} file(s) gone: {', '.join(gone[:3])}"] if gone else []) + (
        [f"{len(changed)} file(s) changed size: {', '.join(changed[:3])}"] if changed else [])


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


def _run_settings(context: dg.OutputContext) -> tuple[str, dict | None]:
    """The run id and the run's `settings` resource config (None outside a run, or when the run gave none)."""
    step = getattr(context, "_step_context", None)
    if step is None:
        return "", None
    config = (step.run_config.get("resources") or {}).get("settings") or {}
    return step.run_id, config.get("config") or None


class ParquetLakeIOManager(dg.ConfigurableIOManager):
    """DataFrames as Parquet per partition; local folders copied whole. `root` is any fsspec URL."""

    root: str = "data_lake"

    def _asset_dir(self, context) -> UPath:
        return lake_path(self.root, *context.asset_key.path)

    def _file(self, context, partition: str | None) -> UPath:
        return partition_file(self.root, "/".join(context.asset_key.path), partition)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            return self._handle_partitions(context, obj)
        asset = "/".join(context.asset_key.path)
        partition = context.asset_partition_key if context.has_asset_partitions else None
        run_id, settings = _run_settings(context)
        if isinstance(obj, pd.DataFrame):
            target = self._file(context, partition)
            data = parquet_bytes(obj)
            digest = write_bytes_atomic(data, target)
            record = Record(asset, partition, digest, rows=len(obj), run_id=run_id, settings=settings,
                            schema=arrow_schema(pq.read_schema(pa.BufferReader(data))))
        elif isinstance(obj, Path) and obj.is_dir():
            target = self._asset_dir(context)
            digest = copy_folder_atomic(obj, target)
            files = {p.relative_to(obj).as_posix(): p.stat().st_size for p in sorted(obj.rglob("*")) if p.is_file()}
            record = Record(asset, partition, digest, files=files, run_id=run_id, settings=settings)
        else:
            raise TypeError(f"the lake stores DataFrames and local folders, not {type(obj).__name__}")
        write_bytes_atomic(record.to_json(), record_path(self.root, asset, partition))  # after the data
        _record_data_version(context, digest)
        context.add_output_metadata({
            "path": dg.MetadataValue.path(str(target)),
            "lake/version": digest[:24],  # the data version; the file's SHA-256 starts with it
            **({"lake/rows": record.rows} if record.rows is not None else {}),
        })

    def _handle_partitions(self, context: dg.OutputContext, frame: pd.DataFrame) -> None:
        """One output for several field partitions (a single-run backfill): each field's rows go to its own file
        and record, as a run per field would have written them."""
        if not isinstance(frame, pd.DataFrame) or "field" not in frame:
            raise TypeError("an output for several partitions must be a DataFrame with a `field` column")
        asset = "/".join(context.asset_key.path)
        run_id, settings = _run_settings(context)
        keys = sorted(context.asset_partition_keys)
        digests = []
        for key in keys:
            rows = frame[frame["field"] == key].reset_index(drop=True)
            data = parquet_bytes(rows)
            digest = write_bytes_atomic(data, self._file(context, key))
            record = Record(asset, key, digest, rows=len(rows), run_id=run_id, settings=settings,
                            schema=arrow_schema(pq.read_schema(pa.BufferReader(data))))
            write_bytes_atomic(record.to_json(), record_path(self.root, asset, key))
            digests.append(digest)
        combined = hashlib.sha256("".join(digests).encode()).hexdigest()  # one data version per materialization
        _record_data_version(context, combined)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(self._asset_dir(context))),
                                     "lake/version": combined[:24], "lake/rows": len(frame),
                                     "lake/partitions": len(keys)})

    def load_input(self, context: dg.InputContext):
        upstream = context.upstream_output
        asset = "/".join(upstream.asset_key.path)
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if len(keys) == 1:
                return self._read_one(asset, keys[0])
            return self._fan_in(context, asset, keys)
        record = read_record(self.root, asset, None)
        folder = self._asset_dir(upstream)
        is_folder = record.files is not None if record else (not self._file(upstream, None).exists()
                                                             and folder.exists())
        if not is_folder:
            return self._read_one(asset, None)
        if record is None:
            return local_copy(folder)
        problems = folder_problems(folder, record)
        if problems:
            raise LakeReadError(self.root, asset, None, folder, "; ".join(problems))
        return local_copy(folder)

    def _read_one(self, asset: str, partition: str | None) -> pd.DataFrame:
        try:
            return read_partition(self.root, asset, partition)
        except LakeReadError:
            raise
        except FileNotFoundError:
            path = partition_file(self.root, asset, partition)
            which = f" for partition(s) {partition}" if partition is not None else ""
            raise FileNotFoundError(f"{path} is missing: materialize {asset}{which} first") from None

    def _fan_in(self, context: dg.InputContext, asset: str, keys: list[str]) -> pd.DataFrame:
        """All partitions that exist. One never built is skipped (a run may build only some fields); one that
        was published and is now gone or damaged fails the step, unless the input says it can do without
        (LOST_PARTITIONS_OK), when it is logged as an error, not a warning."""
        frames, never_built, lost = [], [], []
        for key in keys:
            try:
                frames.append(read_partition(self.root, asset, key))
            except LakeReadError as exc:
                lost.append(exc)
            except FileNotFoundError:
                never_built.append(key)
        if lost and not context.definition_metadata.get(LOST_PARTITIONS_OK):
            raise lost[0] if len(lost) == 1 else dg.Failure(
                description="\n".join(e.description for e in lost), allow_retries=False)
        for exc in lost:
            context.log.error(exc.description)
        if not frames:
            raise FileNotFoundError(
                f"{partition_file(self.root, asset, keys[0])} is missing: materialize {asset} for partition(s) "
                f"{', '.join(never_built)} first"
            )
        if never_built:
            context.log.info(f"{asset}: {len(frames)} of {len(keys)} partitions; never built: {', '.join(never_built)}")
        return pd.concat(frames, ignore_index=True) if len(frames) != 1 else frames[0]


def published_partitions(io_manager, asset: str) -> set[str]:
    """Every partition the lake has published for `asset` (by their records; empty for another IO manager)."""
    root = getattr(io_manager, "root", None)
    return {r.partition for r in asset_records(root, asset) if r.partition is not None} if isinstance(root, str) else set()


def stored_frame(io_manager, asset: str, partition: str | None = None, log=None) -> pd.DataFrame | None:
    """What an earlier run published for `asset` (and partition), or None: how an asset reads its own last output.

    Only the Parquet lake knows where that is; with any other IO manager there is no earlier output to read. A
    damaged earlier output is logged (to `log`) and treated as absent: the run that reads it replaces it, so it
    must not be blocked by it.
    """
    root = getattr(io_manager, "root", None)
    if not isinstance(root, str):
        return None
    try:
        return read_partition(root, asset, partition)
    except FileNotFoundError:
        return None
    except LakeReadError as exc:
        if log is not None:
            log.error(f"{exc.summary}. Going on without it: this run replaces it.")
        return None
