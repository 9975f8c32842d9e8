"""Generation rounds: which the lake holds, registering them with a Dagster instance, and deleting one on purpose.

A round is a partition of the `generation_round` dimension (partitions.py). Each round's questions live in their
own files (`raw_questions/<field>/<round>.parquet`, and the subdomains it asked about), so adding a round never
touches another. Deleting one removes exactly those files and their lake records, and the round from the
instance; the next `data_job` of each field then rebuilds `question_clusters` and everything after it without
that round's questions. A later round's question that only duplicated a deleted one comes back as kept then:
that is what the data says once the earlier question is gone.
"""

from __future__ import annotations

from research_tuner.lake import lake_path, partition_file
from research_tuner.lake_records import asset_records, record_path
from research_tuner.partitions import field_and_round, round_number, round_partitions

#: The assets partitioned by field x round, in the order a round writes them.
ROUND_ASSETS = ("subdomains", "raw_questions")


def lake_rounds(root: str) -> list[str]:
    """The rounds the lake has published raw_questions for, in numeric order."""
    keys = {field_and_round(r.partition)[1] for r in asset_records(root, "raw_questions") if r.partition}
    return sorted(keys, key=round_number)


def round_summary(root: str) -> list[str]:
    """One line per round the lake holds: its questions in all and per field."""
    counts: dict[str, dict[str, int]] = {}
    for record in asset_records(root, "raw_questions"):
        field, round_ = field_and_round(record.partition)
        counts.setdefault(round_, {})[field] = record.rows or 0
    return [f"round {r}: {sum(counts[r].values())} questions in {len(counts[r])} field(s) "
            f"({', '.join(f'{f} {n}' for f, n in sorted(counts[r].items()))})" for r in lake_rounds(root)]


def register_rounds(instance, rounds: list[str]) -> list[str]:
    """Add to `instance` those of `rounds` it does not list yet; returns the ones added."""
    for round_ in rounds:
        round_number(round_)  # a clear error for a name that is not a round
    listed = set(instance.get_dynamic_partitions(round_partitions.name))
    new = [r for r in rounds if r not in listed]
    if new:
        instance.add_dynamic_partitions(round_partitions.name, new)
    return new


def delete_round(root: str, round_: str, instance=None) -> list[str]:
    """Remove round `round_` from the lake (its files and records, every field) and from `instance`; returns the
    files removed. Nothing downstream is rewritten here: run data_job per field afterwards."""
    round_number(round_)
    removed = []
    for asset in ROUND_ASSETS:
        for record in asset_records(root, asset):
            if record.partition is None or field_and_round(record.partition)[1] != round_:
                continue
            for path in (partition_file(root, asset, record.partition), record_path(root, asset, record.partition)):
                if path.exists():
                    path.unlink()
                    removed.append(str(path))
        for folder in lake_path(root, asset).glob("*"):  # a field folder left empty goes too
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    if instance is not None and instance.has_dynamic_partition(round_partitions.name, round_):
        instance.delete_dynamic_partition(round_partitions.name, round_)
    return removed
