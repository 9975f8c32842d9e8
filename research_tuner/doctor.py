"""`research-tuner doctor`: check every file in the data lake against what was published, and say how to repair.

Each partition the lake published has a record (lake_records.py) with its SHA-256, row count and Arrow schema;
doctor opens every such file and reports it when it is missing, unreadable (not Parquet, truncated), of another
schema or row count, or changed in any other byte. A folder asset (the LoRA adapter, the report) is checked for
files gone or of another size. Where the Dagster instance is persistent (DAGSTER_HOME), doctor also compares
each partition with the instance's last materialization into this lake: a version or row count that differs,
or a partition the instance materialized that the lake holds no trace of. Parquet files with no record (a lake
written before records existed) are checked for readability. Each finding comes with the command that
rematerializes just that partition, with the settings of the run that published it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass

import pyarrow.parquet as pq
from upath import UPath

from research_tuner.doctor_instance import instance_problems
from research_tuner.lake import arrow_schema, folder_problems, lake_path, partition_file
from research_tuner.lake_records import CHEAP, RECORDS, Record, all_records, repair_command
from research_tuner.partitions import field_round_key
from research_tuner.rounds import ROUND_ASSETS


@dataclass(frozen=True)
class Finding:
    label: str  # asset [partition]
    path: str
    problem: str
    command: str


def _file_problems(path: UPath, record: Record | None) -> list[str]:
    if not path.exists():
        when = f" although run {record.run_id or '?'} published it at {record.written_at}" if record else ""
        return [f"missing{when}"]
    try:
        with path.open("rb") as handle:
            meta = pq.ParquetFile(handle)
            rows, schema = meta.metadata.num_rows, arrow_schema(meta.schema_arrow)
    except Exception as exc:  # a truncated or foreign file: pyarrow says which
        return [f"unreadable ({type(exc).__name__}: {exc})"]
    if record is None:
        return []
    problems = []
    if record.schema is not None and schema != record.schema:
        problems.append("schema differs: " + _schema_change(record.schema, schema))
    if record.rows is not None and rows != record.rows:
        problems.append(f"{rows} rows, {record.rows} published")
    if not problems and hashlib.sha256(path.read_bytes()).hexdigest() != record.version:
        problems.append(f"changed since run {record.run_id or '?'} published version {record.version[:24]}")
    return problems


def _schema_change(published: list[list[str]], found: list[list[str]]) -> str:
    old, new = dict(map(tuple, published)), dict(map(tuple, found))
    parts = [f"{c} gone" for c in old if c not in new] + [f"{c} added" for c in new if c not in old]
    parts += [f"{c} {old[c]} -> {new[c]}" for c in old if c in new and old[c] != new[c]]
    return ", ".join(parts) or "column order changed"


def _unrecorded_files(root: str, recorded: set[tuple[str, str | None]]) -> list[tuple[str, str | None, UPath]]:
    """Parquet partition files no record describes: `<asset>/<field>.parquet`, and for a field x round asset
    `<asset>/<field>/<round>.parquet`. A folder asset (subfolders or other files beside its Parquet files, like
    the report's figures) is not a set of partitions and is skipped."""
    base = lake_path(root)
    if not base.exists():
        return []
    found = []
    for asset_dir in sorted(base.iterdir(), key=lambda p: p.name):
        if not asset_dir.is_dir() or asset_dir.name.startswith((".", "_")):
            continue
        if asset_dir.name in ROUND_ASSETS:
            files = [(str(field_round_key(field.name, file.name.removesuffix(".parquet"))), file)
                     for field in _visible(asset_dir) if field.is_dir()
                     for file in _visible(field) if file.name.endswith(".parquet")]
        else:
            entries = _visible(asset_dir)
            if any(p.is_dir() or not p.name.endswith(".parquet") for p in entries):
                continue
            files = [(file.name.removesuffix(".parquet"), file) for file in entries]
        for stem, file in files:
            partition = None if stem == asset_dir.name else stem
            if (asset_dir.name, partition) not in recorded:
                found.append((asset_dir.name, partition, file))
    return found


def _visible(folder: UPath) -> list[UPath]:
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def check_lake(root: str, instance=None) -> tuple[list[Finding], int]:
    """(what is damaged or missing, how many partitions were checked)."""
    findings, checked = [], 0
    records = all_records(root)

    def report(asset: str, partition: str | None, path: UPath, problems: list[str], settings=None) -> None:
        label = asset + (f" [{partition}]" if partition is not None else "")
        command = repair_command(root, asset, partition, settings)
        findings.extend(Finding(label, str(path), problem, command) for problem in problems)

    for record in records:
        checked += 1
        if record.files is not None:
            folder = lake_path(root, record.asset)
            report(record.asset, None, folder, folder_problems(folder, record), record.settings)
        else:
            path = partition_file(root, record.asset, record.partition)
            report(record.asset, record.partition, path, _file_problems(path, record), record.settings)
    recorded = {(r.asset, r.partition) for r in records}
    for asset, partition, path in _unrecorded_files(root, recorded):
        checked += 1
        report(asset, partition, path, _file_problems(path, None))
    if instance is not None:
        for asset, partition, path, problem, settings in instance_problems(instance, root, records):
            report(asset, partition, path, [problem], settings)
    return findings, checked


def main(root: str) -> int:
    """Print the findings; exit status 1 when anything is damaged or missing."""
    instance = None
    if os.environ.get("DAGSTER_HOME"):
        import dagster as dg

        instance = dg.DagsterInstance.get()
    findings, checked = check_lake(root, instance)
    where = f"data lake {lake_path(root)}"
    if not checked and not findings:
        print(f"{where}: no published partition found (nothing under {RECORDS}/ and no Parquet files)")
        return 0
    if not findings:
        print(f"{where}: all {checked} partition(s) readable and as published")
        return 0
    print(f"{where}: {len(findings)} problem(s) in {checked} partition(s) checked", file=sys.stderr)
    for finding in findings:
        print(f"- {finding.label}: {finding.path}: {finding.problem}\n  repair: {finding.command}", file=sys.stderr)
    print(f"(each repair rematerializes one partition; {CHEAP})", file=sys.stderr)
    return 1
