"""The research-field partitions, defined once and imported by every partitioned asset."""

import dagster as dg

from research_tuner.lib.shared.taxonomy import field_keys

FIELDS: list[str] = field_keys()

field_partitions = dg.StaticPartitionsDefinition(FIELDS)
