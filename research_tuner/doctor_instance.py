"""Doctor's second witness: the Dagster instance's last materialization of each partition written to this lake.

The lake's records say what the lake published; the instance says what Dagster believes is current (and what the
UI shows). They disagree when the lake was restored from a backup, copied from elsewhere, or its records were
removed: a different version or row count, or a partition the instance materialized that the lake has no trace of.
Only materializations whose `path` lies in this lake are compared, so an instance shared by several lakes (tests,
a staging and a production lake) is fine.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from dagster._core.storage.event_log.base import AssetRecordsFilter
from upath import UPath

from research_tuner.lake import lake_path
from research_tuner.lake_records import Record


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> Iterator[tuple[str | None, dg.AssetMaterialization,
                                                                                 str]]:
    """(partition, materialization, run id) of the last materialization of each partition of `key`."""
    partitions = instance.get_materialized_partitions(key)
    if not partitions:
        event = instance.get_latest_materialization_event(key)
        if event is not None and event.asset_materialization is not None:
            yield None, event.asset_materialization, event.run_id
        return
    for partition in sorted(partitions):
        found = instance.fetch_materializations(AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), 1)
        if found.records:
            entry = found.records[0].event_log_entry
            yield partition, entry.asset_materialization, entry.run_id


def _run_settings(instance: dg.DagsterInstance, run_id: str) -> dict | None:
    """The `settings` resource config of a run, for a repair command that hits the same cache entries."""
    run = instance.get_run_by_id(run_id) if run_id else None
    config = ((run.run_config or {}).get("resources") or {}).get("settings") or {} if run else {}
    return config.get("config") or None


def _value(metadata, name):
    entry = metadata.get(name)
    return getattr(entry, "value", entry) if entry is not None else None


def instance_problems(instance: dg.DagsterInstance, root: str, records: list[Record]) -> Iterator[tuple]:
    """(asset, partition, path, problem, settings) for each partition where the instance and the lake disagree."""
    by_key = {(r.asset, r.partition): r for r in records}
    prefix = str(lake_path(root)).rstrip("/") + "/"
    for key in instance.get_asset_keys():
        asset = "/".join(key.path)
        for partition, mat, run in _latest(instance, key):
            path = _value(mat.metadata, "path")
            if not isinstance(path, str) or not path.startswith(prefix):
                continue  # written to another lake, or by another IO manager
            record = by_key.get((asset, partition))
            version = _value(mat.metadata, "lake/version")
            rows = _value(mat.metadata, "lake/rows")
            rows = _value(mat.metadata, "num_rows") if rows is None else rows  # written before lake/rows existed
            if record is None:
                if not UPath(path).exists():
                    yield asset, partition, path, f"missing: the instance's last materialization (run {run}) wrote " \
                        "it and the lake holds neither the file nor its record", _run_settings(instance, run)
                continue
            if version and version != record.version[:24]:
                yield asset, partition, path, (f"the lake holds version {record.version[:24]} but the instance's "
                                               f"last materialization{f' (run {run})' if run else ''} is {version}"), \
                    record.settings
            elif rows is not None and record.rows is not None and rows != record.rows:
                yield asset, partition, path, f"{record.rows} rows published, the instance recorded {rows}", \
                    record.settings
