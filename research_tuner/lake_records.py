"""What the lake has published: one small JSON record per partition, and the command that rebuilds one.

The IO manager (lake.py) writes `<root>/_published/<asset>/<partition>.json` right after it publishes a partition: the
version (the SHA-256 of the bytes, whose first 24 characters are the materialization's data version), the row
count and Arrow schema, the run that wrote it and the run's `settings` resource config. The record lives in the
lake beside the data, not only in the Dagster instance, because `research-tuner run` without DAGSTER_HOME uses a
throwaway instance and a lake on S3 outlives any one machine: the lake itself must say what it should hold.
That is how a read tells "this field was never built" (skip it) from "this partition was published and is now
gone or damaged" (an error with the repair command), and what `research-tuner doctor` checks every file against.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from upath import UPath

RECORDS = "_published"
#: Said after every repair command: why rematerializing is cheap.
CHEAP = "the teacher's response cache answers every request it has seen, so this costs no new teacher calls"


@dataclass(frozen=True)
class Record:
    """One published partition (`partition` None: an unpartitioned asset; `files`: a folder asset's files)."""

    asset: str
    partition: str | None
    version: str
    rows: int | None = None
    schema: list[list[str]] | None = None  # [[column, arrow type], ...]
    files: dict[str, int] | None = None  # folder assets: relative path -> size in bytes
    run_id: str = ""
    settings: dict[str, Any] | None = None  # the run's `settings` resource config (secret-free by design)
    written_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def label(self) -> str:
        return self.asset + (f" [{self.partition}]" if self.partition is not None else "")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()


def record_path(root: str, asset: str, partition: str | None) -> UPath:
    return UPath(root).joinpath(RECORDS, asset, f"{partition if partition is not None else asset}.json")


def read_record(root: str, asset: str, partition: str | None) -> Record | None:
    """The record of what was last published there, or None (never published, or by a version before records)."""
    path = record_path(root, asset, partition)
    try:
        return Record(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # a damaged record says nothing trustworthy; doctor reports the file itself
        return None


def all_records(root: str) -> list[Record]:
    folder = UPath(root) / RECORDS
    if not folder.exists():
        return []
    found = []
    for asset_dir in sorted(folder.iterdir(), key=lambda p: p.name):
        for file in sorted(asset_dir.glob("*.json"), key=lambda p: p.name):
            stem = file.name.removesuffix(".json")
            record = read_record(root, asset_dir.name, None if stem == asset_dir.name else stem)
            if record is not None:
                found.append(record)
    return found


def repair_command(root: str, asset: str, partition: str | None, settings: dict[str, Any] | None = None) -> str:
    """A command that rematerializes just this partition into this lake, with the settings of the run that
    published it when the record kept them (the same settings hit the response cache)."""
    resources: dict[str, Any] = {"io_manager": {"config": {"root": root}}}
    if settings:
        resources["settings"] = {"config": settings}
    words = ["dagster", "asset", "materialize", "-m", "research_tuner.definitions", "--select", asset]
    if partition is not None:
        words += ["--partition", partition]
    words += ["--config-json", json.dumps({"resources": resources}, separators=(",", ":"))]
    return shlex.join(words)
