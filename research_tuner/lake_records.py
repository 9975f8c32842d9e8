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

from research_tuner.settings.profile import format_assignments, without_nulls

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


def partition_stem(partition: str) -> str:
    """A partition key as a relative path: "arts" stays, a field x round key "arts|3" becomes "arts/3"."""
    return partition.replace("|", "/")


def record_path(root: str, asset: str, partition: str | None) -> UPath:
    return UPath(root).joinpath(RECORDS, asset, f"{partition_stem(partition) if partition is not None else asset}.json")


def read_record(root: str, asset: str, partition: str | None) -> Record | None:
    """The record of what was last published there, or None (never published, or by a version before records)."""
    path = record_path(root, asset, partition)
    try:
        return Record(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # a damaged record says nothing trustworthy; doctor reports the file itself
        return None


def asset_records(root: str, asset: str) -> list[Record]:
    """The records of every published partition of `asset` (nested folders hold field x round partitions)."""
    folder = UPath(root) / RECORDS / asset
    if not folder.exists():
        return []
    found = []
    for file in sorted(folder.rglob("*.json"), key=lambda p: str(p)):
        stem = file.relative_to(folder).as_posix().removesuffix(".json")
        record = read_record(root, asset, None if stem == asset else stem.replace("/", "|"))
        if record is not None:
            found.append(record)
    return found


def all_records(root: str) -> list[Record]:
    folder = UPath(root) / RECORDS
    if not folder.exists():
        return []
    return [r for asset_dir in sorted(folder.iterdir(), key=lambda p: p.name) for r in asset_records(root, asset_dir.name)]


def current_settings_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run's `settings` config as this version takes it, for a repair command: without the null keys and empty
    sections a scaffolded launchpad config is full of (the same settings, short enough to read), and with an
    earlier version's untyped `overrides` mapping turned into `set` assignments (the same settings again)."""
    config = without_nulls(config)
    legacy = config.pop("overrides", None)
    if legacy:
        config["set"] = format_assignments(legacy) + list(config.get("set") or [])
    return config


def repair_command(root: str, asset: str, partition: str | None, settings: dict[str, Any] | None = None) -> str:
    """A command that rematerializes just this partition into this lake, with the settings of the run that
    published it when the record kept them (the same settings hit the response cache)."""
    resources: dict[str, Any] = {"io_manager": {"config": {"root": root}}}
    if settings:
        resources["settings"] = {"config": current_settings_config(settings)}
    words = ["dagster", "asset", "materialize", "-m", "research_tuner.definitions", "--select", asset]
    if partition is not None and "|" in partition:  # a generation round: research_tuner/repair.py adds it first
        words = ["python", "-m", "research_tuner.repair", "--select", asset]
    if partition is not None:
        words += ["--partition", partition]
    words += ["--config-json", json.dumps({"resources": resources}, separators=(",", ":"))]
    return shlex.join(words)
