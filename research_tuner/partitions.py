"""The partitions, defined once and imported by every partitioned asset.

Assets are partitioned by research field; what the teacher writes per generation round (`subdomains`,
`raw_questions`) is partitioned by field x round, so each round is its own Parquet file
(`raw_questions/<field>/<round>.parquet`) and its own row in the UI, and a new round never rewrites an
earlier one. Rounds are dynamic: the regeneration schedule, `research-tuner run --round N` or the UI's
"add partition" create them; `research-tuner delete-round N` removes one on purpose.
"""

import dagster as dg

from research_tuner.lib.shared.taxonomy import field_keys

FIELDS: list[str] = field_keys()
#: The round every fresh lake starts with.
FIRST_ROUND = "0"

field_partitions = dg.StaticPartitionsDefinition(FIELDS)
round_partitions = dg.DynamicPartitionsDefinition(name="generation_round")
field_round_partitions = dg.MultiPartitionsDefinition({"field": field_partitions, "round": round_partitions})


def field_round_key(field: str, round_: str | int) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"field": field, "round": str(round_)})


def field_and_round(key: str) -> tuple[str, str]:
    """("arts", "3") from a field x round partition key ("arts|3", or the MultiPartitionKey that prints so)."""
    field, sep, round_ = str(key).partition("|")
    if not sep:
        raise ValueError(f"partition {key!r} is not a field x round key such as 'arts|0'")
    return field, round_


def round_number(round_key: str) -> int:
    """The round's integer, part of every teacher seed of the round, so a new round asks for new data."""
    if not round_key.isdigit():
        raise ValueError(f"generation round {round_key!r} is not a non-negative integer: name rounds 0, 1, 2, ... "
                         "(the schedule uses YYYYMMDDHH)")
    return int(round_key)
