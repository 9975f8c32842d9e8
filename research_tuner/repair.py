"""Rebuild one field x round partition (`python -m research_tuner.repair --select raw_questions --partition
'arts|0' --config-json '{...}'`): what `dagster asset materialize` does for the other partitions, which it cannot
do for a generation round that its instance does not list (an instance without DAGSTER_HOME lists none). The
round is added first, then round_job runs the one asset. lake_records.repair_command prints this command."""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", required=True, help="the asset: subdomains or raw_questions")
    parser.add_argument("--partition", required=True, help="field|round, e.g. arts|0")
    parser.add_argument("--config-json", default="{}", help="run config, as the failed read printed it")
    args = parser.parse_args(argv)

    import dagster as dg

    from research_tuner.definitions import defs
    from research_tuner.partitions import field_and_round
    from research_tuner.rounds import ROUND_ASSETS, register_rounds

    if args.select not in ROUND_ASSETS:
        parser.error(f"{args.select} is not partitioned by round: use dagster asset materialize")
    _, round_ = field_and_round(args.partition)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    register_rounds(instance, [round_])
    result = defs.resolve_job_def("round_job").execute_in_process(
        run_config=json.loads(args.config_json), instance=instance, partition_key=args.partition,
        asset_selection=[dg.AssetKey(args.select)], raise_on_error=False,
    )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
