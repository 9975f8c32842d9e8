"""Publish only what passed: an asset's blocking checks decide, before the IO manager sees the frame.

Dagster stores an asset's output when the asset yields it (`handle_output` runs then) and fails the step for a
blocking check only after the asset has finished, so a check that failed after the Output had already replaced the
last good partition in the lake: the approaches of a field became 0 rows while its dataset_split still held the
old ones. The assets therefore compute their check results first and hand them to `publish_if_checks_pass`:

- every check passed (or only non-blocking ones failed): the Output, then the results, as before, so each
  result is attached to the materialization it judged;
- a blocking check failed: the results are recorded (they show in the UI and the run log, attached to the
  last good materialization, which stays current), no Output is yielded, and the step fails with a
  non-retryable `dg.Failure` that says the partition was kept. Nothing reached the lake, the data version
  and the Dagster materialization history are untouched, and what follows does not run.

Why not a staging folder promoted afterwards: Dagster records the materialization (with its metadata and
data version) when the output is handled, so a staged-but-never-promoted partition would still be the
"latest materialization" in the UI and in `doctor`'s view; a promotion hook runs only in jobs that carry
it (not in a UI materialization or `dg.materialize`); and a crash between checks and promotion would leave
orphans to clean. Deciding before the write keeps one rule: a materialization event exists iff its bytes
were published.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import dagster as dg

from research_tuner.lake_records import read_record


def failed_blocking(context: dg.AssetExecutionContext, checks: Iterable[dg.AssetCheckResult]) -> list[str]:
    """Names of the blocking checks among `checks` that failed with ERROR severity."""
    blocking = {spec.name for spec in context.assets_def.check_specs if spec.blocking}
    return [c.check_name for c in checks
            if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR and c.check_name in blocking]


def publish_if_checks_pass(
    context: dg.AssetExecutionContext, output: dg.Output, checks: list[dg.AssetCheckResult]
) -> Iterator:
    """Yield `output` and the check results, or, when a blocking check failed, only the results and then fail
    the step: the last good version of the partition stays in the lake."""
    failed = failed_blocking(context, checks)
    if not failed:
        yield output
        yield from checks
        return
    asset = context.assets_def.key.to_user_string()
    partition = context.partition_key if context.has_partition_key else None
    # what the unpublished output was (rows, teacher cost, failures) stays visible as an observation
    yield dg.AssetObservation(asset_key=context.assets_def.key, partition=partition,
                              metadata={**(output.metadata or {}), "published": False})
    yield from checks
    label = asset + (f" [{partition}]" if partition is not None else "")
    root = getattr(getattr(context.resources, "io_manager", None), "root", None)
    record = read_record(root, asset, partition) if isinstance(root, str) else None
    kept = (f"the last good version {record.version[:24]} (run {record.run_id or '?'}, {record.rows} rows, "
            f"{record.written_at}) stays current" if record else "nothing was published for it before")
    raise dg.Failure(
        description=f"{label}: blocking check(s) {', '.join(failed)} failed, so this run's output was not "
        f"written; {kept}. The checks' metadata says what was wrong.",
        metadata={"failed_checks": ", ".join(failed), "kept_version": record.version[:24] if record else ""},
        allow_retries=False,
    )
