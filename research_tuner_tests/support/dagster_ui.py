"""`dagster dev` (webserver + daemon) started through scripts/ui.sh for a test, and a small GraphQL client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

ADD_PARTITION = """
mutation AddPartition($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

RUNS_TAGGED = """
query Tagged($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    __typename
    ... on Runs { results { runId jobName status tags { key value } } }
  }
}
"""

LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

RUN_STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } }
}
"""

REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchRunReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

STEP_STATS = """
query Steps($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status stepStats { stepKey status attempts { startTime } } } }
}
"""

START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""

RELOAD = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry { loadStatus locationOrLoadError { __typename ... on PythonError { message } } }
    ... on PythonError { message }
  }
}
"""

STALE = """
query Stale($key: AssetKeyInput!, $partition: String) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { staleStatus(partition: $partition) staleCauses(partition: $partition) { category reason } }
  }
}
"""

REPOSITORIES = """
{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name location { name } } }
                        ... on PythonError { message } } }
"""


class DagsterDev:
    """`with DagsterDev(port, env, log) as ui:` -> ui.url, ui.graphql(...), ui.run_job(...)."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path, host: str | None = None):
        self.port, self.log_path = port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **env, "RESEARCH_TUNER_UI_PORT": str(port)}
        if host is not None:
            self.env["RESEARCH_TUNER_UI_HOST"] = host
        # the venv that runs the tests provides `dagster` (scripts/test.sh activates it; so does ui.sh)
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.proc: subprocess.Popen | None = None
        self.location: tuple[str, str] | None = None

    def __enter__(self) -> DagsterDev:
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(["bash", str(REPO / "scripts" / "ui.sh")], cwd=REPO, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_until_loaded(timeout=180)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            # SIGTERM to ui.sh, as `kill` or a service manager sends it; ui.sh stops dagster dev's whole process
            # group (webserver, daemon, code servers). Whatever still runs after 20 s is killed.
            group = descendant_groups(self.proc.pid)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            for pgid in group | {self.proc.pid}:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
        self._log.close()

    def processes(self) -> set[int]:
        """Pids of ui.sh and everything it started (dagster dev, webserver, daemon, code servers)."""
        return {self.proc.pid} | descendants(self.proc.pid)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def _wait_until_loaded(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                data = self.graphql(REPOSITORIES)["repositoriesOrError"]
                nodes = data.get("nodes") or []
                if nodes:
                    self.location = (nodes[0]["location"]["name"], nodes[0]["name"])
                    return
                last = data
            except OSError as exc:
                last = exc
            time.sleep(1)
        raise TimeoutError(f"dagster dev did not load the code location in {timeout} s ({last}):\n{self.log_tail()}")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def launch(self, job: str, partition: str | None = None) -> str:
        location, repository = self.location
        tags = [{"key": "dagster/partition", "value": partition}] if partition else []
        params = {
            "selector": {"repositoryLocationName": location, "repositoryName": repository, "jobName": job},
            "executionMetadata": {"tags": tags},
            "runConfigData": {},
        }
        result = self.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launching {job} [{partition}] failed: {result}")
        return result["run"]["runId"]

    def add_round(self, round_: str) -> None:
        """What *Add partition* on a field x round asset does: a new generation round."""
        location, repository = self.location
        result = self.graphql(ADD_PARTITION, {"selector": {"repositoryLocationName": location,
                                                            "repositoryName": repository},
                                              "name": "generation_round", "key": round_})["addDynamicPartition"]
        if result["__typename"] not in {"AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"}:
            raise RuntimeError(f"adding round {round_} failed: {result}")

    def launch_backfill(self, job: str, partitions: list[str]) -> str:
        """What *Materialize -> backfill* of a job's partitions does; returns the backfill id."""
        location, repository = self.location
        selector = {"partitionSetName": f"{job}_partition_set",
                    "repositorySelector": {"repositoryLocationName": location, "repositoryName": repository}}
        result = self.graphql(LAUNCH_BACKFILL, {"params": {"selector": selector, "partitionNames": partitions}})
        result = result["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"the backfill of {job} {partitions} failed to launch: {result}")
        return result["backfillId"]

    def runs_tagged(self, key: str, value: str) -> list[dict]:
        """[{runId, jobName, status, tags}] of the runs with this tag, newest first."""
        data = self.graphql(RUNS_TAGGED, {"tags": [{"key": key, "value": value}]})["runsOrError"]
        return data["results"]

    def run_launched_after(self, round_run: str, timeout: float = 300) -> str:
        """The data_job run the curate_new_rounds sensor launched after `round_run`, once it finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs_tagged("research_tuner/after_round_run", round_run)
            if runs:
                run_id = runs[0]["runId"]
                status = self.wait(run_id, max(1.0, deadline - time.monotonic()))
                if status != "SUCCESS":
                    raise AssertionError(f"data_job after {round_run} ended {status}:\n{self.log_tail()}")
                return run_id
            time.sleep(1)
        raise TimeoutError(f"no data_job launched after round run {round_run} in {timeout} s:\n{self.log_tail()}")

    def reexecute_from_failure(self, run_id: str) -> str:
        result = self.graphql(REEXECUTE, {"params": {"parentRunId": run_id, "strategy": "FROM_FAILURE"}})
        result = result["launchRunReexecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"re-executing {run_id} failed: {result}")
        return result["run"]["runId"]

    def step_stats(self, run_id: str) -> dict[str, dict]:
        run = self.graphql(STEP_STATS, {"runId": run_id})["runOrError"]
        return {s["stepKey"]: s for s in run["stepStats"]}

    def start_sensor(self, name: str) -> str:
        location, repository = self.location
        selector = {"repositoryLocationName": location, "repositoryName": repository, "sensorName": name}
        result = self.graphql(START_SENSOR, {"selector": selector})["startSensor"]
        if result["__typename"] != "Sensor":
            raise RuntimeError(f"starting sensor {name} failed: {result}")
        return result["sensorState"]["status"]

    def reload_code_location(self) -> None:
        """What *Reload definitions* does: the code location imports the code (and the profile) again."""
        result = self.graphql(RELOAD, {"name": self.location[0]})["reloadRepositoryLocation"]
        error = (result.get("locationOrLoadError") or {}).get("message") or result.get("message")
        if result["__typename"] != "WorkspaceLocationEntry" or error:
            raise RuntimeError(f"reloading the code location failed: {result}")

    def stale(self, asset: str, partition: str | None = None) -> tuple[str, list[str]]:
        node = self.graphql(STALE, {"key": {"path": [asset]}, "partition": partition})["assetNodeOrError"]
        return node["staleStatus"], sorted({c["category"] for c in node["staleCauses"]})

    def wait(self, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
            if status in {"SUCCESS", "FAILURE", "CANCELED"}:
                return status
            time.sleep(1)
        raise TimeoutError(f"run {run_id} not finished after {timeout} s")

    def run_job(self, job: str, partition: str | None = None, timeout: float = 300) -> str:
        run_id = self.launch(job, partition)
        status = self.wait(run_id, timeout)
        if status != "SUCCESS":
            raise AssertionError(f"{job} [{partition}] ended {status} (run {run_id}):\n{self.log_tail()}")
        return run_id


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def descendant_groups(pid: int) -> set[int]:
    """Process groups of the processes below `pid` (dagster dev runs in its own group under ui.sh)."""
    groups = set()
    for child in descendants(pid):
        try:
            groups.add(os.getpgid(child))
        except ProcessLookupError:
            pass
    return groups
