"""The Dagster instance: the embedded SQLite default under DAGSTER_HOME, and deploy/dagster-postgres.yaml
against a real PostgreSQL server started for the test, with runs and materializations read back from it."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

from research_tuner.definitions import defs
from research_tuner.lake import read_parquet
from research_tuner.partitions import field_round_key
from research_tuner.rounds import register_rounds
from research_tuner_tests.support.pg_server import PostgresServer

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def run_subdomains(instance: dg.DagsterInstance, lake: Path, field: str) -> dg.ExecuteInProcessResult:
    """A small real slice of the graph: the round job restricted to `subdomains` for one field, round 0."""
    register_rounds(instance, ["0"])
    return defs.resolve_job_def("round_job").execute_in_process(
        instance=instance,
        partition_key=str(field_round_key(field, "0")),
        asset_selection=[dg.AssetKey("subdomains")],
        run_config={"resources": {"io_manager": {"config": {"root": str(lake)}}}},
    )


def test_embedded_default_keeps_everything_under_dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        result = run_subdomains(instance, tmp_path / "lake", "arts")
        assert result.success
    assert (home / "history" / "runs.db").is_file()
    with dg.DagsterInstance.get() as again:  # a new process sees the same history
        assert again.get_run_by_id(result.run_id).is_success


def test_postgres_instance_stores_runs_and_materializations(tmp_path, monkeypatch):
    yaml_text = (DEPLOY / "dagster-postgres.yaml").read_text()
    with PostgresServer() as pg:
        assert pg.password not in yaml_text
        home = tmp_path / "home"
        home.mkdir()
        shutil.copy(DEPLOY / "dagster-postgres.yaml", home / "dagster.yaml")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        for key, value in pg.env.items():
            monkeypatch.setenv(key, value)
        lake = tmp_path / "lake"
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            runs = [run_subdomains(instance, lake, field) for field in ("arts", "humanities")]
            assert all(r.success for r in runs)
            latest = instance.get_latest_materialization_event(dg.AssetKey("subdomains"))
            assert latest is not None and latest.run_id == runs[-1].run_id

        # read back with a plain client: the run rows and the materialization events are in PostgreSQL
        with pg.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT run_id, status, pipeline_name FROM runs ORDER BY create_timestamp")
            stored_runs = cur.fetchall()
            cur.execute(
                "SELECT run_id, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                "AND asset_key = %s ORDER BY id",
                ('["subdomains"]',),
            )
            materializations = cur.fetchall()
            cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (runs[0].run_id,))
            (events_of_first_run,) = cur.fetchone()
        assert [(r[0], r[1], r[2]) for r in stored_runs] == [(r.run_id, "SUCCESS", "round_job") for r in runs]
        assert materializations == [(runs[0].run_id, "arts|0"), (runs[1].run_id, "humanities|0")]
        assert events_of_first_run > 5  # run start, step start/success, output, materialization, run success
    assert read_parquet(UPath(lake) / "subdomains" / "arts" / "0.parquet")["field"].eq("arts").all()


def test_postgres_yaml_takes_every_connection_setting_from_the_environment():
    import yaml

    config = yaml.safe_load((DEPLOY / "dagster-postgres.yaml").read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"
    assert set(db) == {"hostname", "port", "username", "password", "db_name"}
    assert all(set(value) == {"env"} for value in db.values()), "no literal connection settings"


@pytest.mark.parametrize("name", ["dagster.yaml", "dagster-postgres.yaml"])
def test_instance_yaml_is_valid_dagster_config(name):
    import yaml
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config_schema

    result = validate_config(dagster_instance_config_schema(), yaml.safe_load((DEPLOY / name).read_text()))
    assert result.success, result.errors
