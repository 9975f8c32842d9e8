"""The web UI as a person uses it: scripts/ui.sh starts `dagster dev` (webserver + daemon) on 127.0.0.1,
runs are launched through the GraphQL API (paper profile against the loopback OpenAI server, tiny
student), and a real headless Chromium checks the asset graph, the field partitions and the evaluation
plot. Screenshots go to test-artifacts/ui/. Also: the webserver listens on loopback only; a field whose
teacher calls fail is recorded by the failure sensor and reruns from failure alone; and the API key is
nowhere in what the UI's runs wrote (lake, work dir, instance storage, compute logs, server log)."""

import json
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from research_tuner.lake import read_parquet
from research_tuner_tests.support.dagster_ui import REPO, DagsterDev
from research_tuner_tests.support.openai_server import FakeOpenAIServer, Fault
from research_tuner_tests.support.pg_server import free_port
from research_tuner_tests.support.secrets_scan import files_containing, sqlite_row_count

pytestmark = pytest.mark.slow

SECRET = "sk-ui-test-this-must-never-be-written-9876543210"
ARTIFACTS = REPO / "test-artifacts" / "ui"
ASSETS = ["subdomains", "raw_questions", "deduped_questions", "approaches", "dataset_split", "lora_adapter",
          "eval_generations", "eval_preferences", "eval_scores", "eval_report"]
FIELDS = ["arts", "engineering", "formal_sciences", "humanities", "life_sciences", "natural_sciences",
          "professional", "social_sciences"]


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_model_dir):
    """`dagster dev` with a fresh DAGSTER_HOME, and the whole graph materialized for one field through GraphQL."""
    tmp = tmp_path_factory.mktemp("ui")
    with FakeOpenAIServer() as server:
        server.expected_key = SECRET  # it answers 401 to a request without the key, so answers prove it was sent
        profile = tmp / "profile.yaml"  # what a person would put in RESEARCH_TUNER_CONFIG
        profile.write_text(json.dumps({
            "teacher": {"base_url": server.base_url, "questions_per_request": 4, "max_retries": 0},
            "generation": {"subdomains_per_field": 2, "questions_per_subdomain": 8},
            "training": {"base_model": str(tiny_model_dir), "epochs": 1, "max_length": 256,
                         "gradient_checkpointing": False},
            "evaluation": {"max_new_tokens": 12},
        }))
        env = {
            "DAGSTER_HOME": str(tmp / "dagster_home"),
            "RESEARCH_TUNER_PROFILE": "paper",
            "RESEARCH_TUNER_CONFIG": str(profile),
            "RESEARCH_TUNER_LAKE": str(tmp / "lake"),
            "RESEARCH_TUNER_WORK": str(tmp / "work"),
            "OPENAI_API_KEY": SECRET,
            "PYTHONPATH": str(REPO),  # the checkout under test wins over any installed copy
            "RESEARCH_TUNER_RETRY_DELAY_S": "0.2",  # the teacher steps' retry policy, without the 30 s waits
            # each run in one process: a process per step (test_executors.py checks that executor) would cost the
            # 16 runs of the parallel backfill below minutes of imports on 2 cores; runs still run side by side,
            # and the pools hold across runs whatever the executor
            "RESEARCH_TUNER_EXECUTOR": "in_process",
        }
        env.pop("RESEARCH_TUNER_UI_HOST", None)
        with DagsterDev(free_port(), env, tmp / "dagster_dev.log") as dev:
            dev.add_round("0")
            round_run = dev.run_job("round_job", "arts|0")
            # the curate_new_rounds sensor (on by default) runs the field's data_job after its round
            runs = [round_run, dev.run_launched_after(round_run), dev.run_job("training_job"),
                    dev.run_job("evaluation_job", "arts"), dev.run_job("report_job")]
            yield dev, tmp, runs, server


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the LISTEN sockets on `port`, from /proc/net/tcp and tcp6."""
    found = set()
    for name, width in (("tcp", 8), ("tcp6", 32)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            address, port_hex = cols[1].split(":")
            if int(port_hex, 16) == port and cols[3] == "0A":  # 0A: LISTEN
                if width == 8:
                    found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add(address)
    return found


def test_the_ui_listens_on_loopback_only(ui):
    dev, *_ = ui
    assert listening_addresses(dev.port) == {"127.0.0.1"}
    assert f"Serving dagster-webserver on http://127.0.0.1:{dev.port}" in dev.log_path.read_text()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tmp_path_factory.mktemp("chromium-profile")
    # flags that keep Chromium off the network (the machine has none) and let it run as root, headless
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1600,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait_for(driver, condition, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:  # the page is still rendering
            pass
        time.sleep(0.5)
    shot = ARTIFACTS / "timeout.png"
    driver.save_screenshot(str(shot))
    raise AssertionError(f"timed out waiting for {what}; screenshot {shot}; page text:\n"
                         + driver.find_element("tag name", "body").text[:2000])


def open_page(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(driver, lambda: driver.find_element(By.TAG_NAME, "nav") or True, "the page")
    time.sleep(1)
    skip_first_visit_dialog(driver)


def skip_first_visit_dialog(driver) -> None:
    """Dismiss the UI's first-visit newsletter dialog, which can open seconds after the page on a busy machine."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        button.click()


def click(driver, element, what: str) -> None:
    """Click once nothing lies over the element: a late first-visit dialog is skipped, a closing one waited out.
    `element` may be a callable that finds it, for pages that redraw it (a stale element is looked up again)."""
    from selenium.common.exceptions import ElementClickInterceptedException

    def clicked() -> bool:
        skip_first_visit_dialog(driver)
        try:
            (element() if callable(element) else element).click()
        except ElementClickInterceptedException:
            return False
        return True

    wait_for(driver, clicked, what)


def shot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def test_asset_graph_shows_every_asset_and_group(ui, browser):
    from selenium.webdriver.common.by import By

    dev, *_ = ui
    open_page(browser, f"{dev.url}/assets/eval_report?view=lineage&lineageScope=upstream&lineageDepth=10")

    def graph_labels():
        texts = {e.text.strip() for e in browser.find_elements(By.XPATH, "//*[not(*)]") if e.text.strip()}
        return texts if set(ASSETS) <= texts else None

    labels = wait_for(browser, graph_labels, "all nine asset nodes in the lineage graph")
    assert {"questions", "approaches", "training", "evaluation"} <= labels
    assert browser.find_elements(By.CSS_SELECTOR, "svg path"), "the graph's edges are drawn"
    shot(browser, "1_asset_graph")


def test_eval_scores_shows_the_field_partitions(ui, browser):
    dev, *_ = ui
    open_page(browser, f"{dev.url}/assets/eval_scores?view=partitions")
    body = lambda: browser.find_element("tag name", "body").text  # noqa: E731
    wait_for(browser, lambda: "Materialized (1)" in body(), "the partition counts")
    text = body()
    assert "Missing (7)" in text and "8 Partitions" in text
    assert all(field in text for field in FIELDS)
    shot(browser, "2_eval_scores_partitions")


def test_eval_report_shows_the_evaluation_plots(ui, browser):
    from selenium.webdriver.common.by import By

    dev, *_ = ui
    open_page(browser, f"{dev.url}/assets/eval_report")
    body = browser.find_element(By.TAG_NAME, "body")
    wait_for(browser, lambda: "scores_by_field" in body.text, "the report's metadata")
    assert "fine_tuned" in body.text and "arts" in body.text  # the per-field score table
    # the paper profile's pairwise judge (here the loopback teacher): the verdict and the win-rate figure
    assert "win_rate_vs_base" in body.text and "preferred the fine-tuned answer" in body.text
    for index, figure in enumerate(("figure1_rouge_l", "figure2_meteor", "figure4_win_rate")):
        link = browser.find_element(
            By.XPATH, f"//tr[.//*[contains(text(),'{figure}')]]//a[normalize-space()='[Show Markdown]']")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
        click(browser, link, f"the {figure} link")
        dialog = wait_for(browser, lambda: browser.find_element(By.CSS_SELECTOR, "[role=dialog]"), "the figure")
        image = wait_for(browser, lambda: dialog.find_element(By.CSS_SELECTOR, "img[src^='data:image/png']"),
                         "the plot image")
        wait_for(browser, lambda: image.get_property("naturalWidth") > 300, "the plot to decode")
        # Selenium reads only visible text: wait out the dialog's fade-in before reading its title
        wait_for(browser, lambda: figure in dialog.text, f"the dialog's title {figure}")
        time.sleep(1)  # let the dialog's fade-in finish before the screenshot
        shot(browser, f"{3 + index}_eval_report_{figure}")
        click(browser, dialog.find_element(By.XPATH, ".//button[normalize-space()='Close']"), "Close")
        wait_for(browser, lambda: not browser.find_elements(By.CSS_SELECTOR, "[role=dialog]"), "the dialog to close")


def test_a_changed_training_setting_shows_only_the_adapter_stale(ui, browser):
    dev, tmp, *_ = ui
    assert dev.stale("lora_adapter") == ("FRESH", [])
    profile = tmp / "profile.yaml"
    settings = json.loads(profile.read_text())
    settings["training"]["lora_r"] = 8  # a person edits the profile, then clicks Reload definitions
    profile.write_text(json.dumps(settings))
    dev.reload_code_location()
    assert dev.stale("lora_adapter") == ("STALE", ["CODE"])
    for asset in ("dataset_split", "approaches", "eval_scores"):
        assert dev.stale(asset, "arts") == ("FRESH", []), asset
    open_page(browser, f"{dev.url}/assets/lora_adapter")
    body = browser.find_element("tag name", "body")
    wait_for(browser, lambda: "Unsynced" in body.text, "the Unsynced (stale) badge on lora_adapter")
    shot(browser, "6_lora_adapter_stale")


def partitioned_assets() -> set[str]:
    from research_tuner.definitions import defs

    graph = defs.resolve_asset_graph()
    return {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).is_partitioned}


def test_a_failed_field_is_recorded_and_reruns_from_failure_alone(ui, browser):
    dev, tmp, runs, server = ui
    lake = tmp / "lake"
    arts_files = {p: p.stat().st_mtime_ns for p in [*lake.glob("*/arts.parquet"), *lake.glob("*/arts/0.parquet")]}
    assert {p.relative_to(lake).parts[0] for p in arts_files} == partitioned_assets()  # arts ran in full
    assert dev.start_sensor("record_run_failures") == "RUNNING"
    # the teacher server answers 503 to everything while humanities runs: all 3 attempts of the step fail
    server.inject(*[Fault(status=503) for _ in range(500)])
    failed = dev.launch("round_job", "humanities|0")
    assert dev.wait(failed) == "FAILURE"
    steps = dev.step_stats(failed)
    assert steps["subdomains"]["status"] == "SUCCESS"
    assert steps["raw_questions"]["status"] == "FAILURE" and len(steps["raw_questions"]["attempts"]) == 3
    assert "approaches" not in steps or steps["approaches"]["status"] != "SUCCESS"
    runs.append(failed)

    server.faults.clear()
    before = server.requests
    rerun = dev.reexecute_from_failure(failed)
    assert dev.wait(rerun) == "SUCCESS"
    runs.append(rerun)
    steps = dev.step_stats(rerun)
    assert "subdomains" not in steps  # done before the failure: not run again
    assert steps["raw_questions"]["status"] == "SUCCESS"
    curated = dev.run_launched_after(rerun)  # the sensor takes the new round on through the split
    runs.append(curated)
    assert {k for k, v in dev.step_stats(curated).items() if v["status"] == "SUCCESS"} >= {
        "question_clusters", "deduped_questions", "approaches", "dataset_split"}
    assert server.requests > before
    assert (lake / "dataset_split" / "humanities.parquet").is_file()
    assert {p: p.stat().st_mtime_ns for p in arts_files} == arts_files  # arts untouched

    record_file = tmp / "dagster_home" / "run_failures.jsonl"
    deadline = time.monotonic() + 90  # the sensor ticks every 30 s
    while time.monotonic() < deadline and failed not in (record_file.read_text() if record_file.exists() else ""):
        time.sleep(1)
    records = [json.loads(line) for line in record_file.read_text().splitlines()]
    record = next(r for r in records if r["run_id"] == failed)
    assert record["partition"] == "humanities|0" and record["failed_steps"] == ["raw_questions"]

    open_page(browser, f"{dev.url}/runs")
    body = browser.find_element("tag name", "body")
    wait_for(browser, lambda: failed[:8] in body.text and rerun[:8] in body.text, "both runs in the run list")
    shot(browser, "5_runs_failed_and_rerun")


def test_raw_questions_shows_a_field_by_round_grid(ui, browser):
    """Rounds are partitions: raw_questions has a field x generation_round grid in the UI (round 0 of arts and
    humanities materialized by the tests above), and a round added later is a new column, not a rewrite."""
    dev, *_ = ui
    dev.add_round("1")
    open_page(browser, f"{dev.url}/assets/raw_questions?view=partitions")
    body = lambda: browser.find_element("tag name", "body").text  # noqa: E731
    # 8 fields x rounds 0 and 1, with arts and humanities of round 0 materialized
    wait_for(browser, lambda: "16 Partitions" in body() and "Materialized (2)" in body(), "the field x round grid")
    assert all(field in body() for field in FIELDS)
    shot(browser, "7_raw_questions_rounds")


def sequential_clusters(tmp, server) -> pd.DataFrame:
    """question_clusters of the UI tests' history (round 0 of arts and humanities, then round 1 of every field)
    run one job at a time in this process, round runs first, on a lake of its own: the reference."""
    from research_tuner.definitions import defs
    from research_tuner.rounds import register_rounds

    lake = tmp / "sequential_lake"
    config = {"resources": {"settings": {"config": {"profile": "paper", "config_file": str(tmp / "profile.yaml"),
                                                    "work_dir": str(tmp / "sequential_work")}},
                            "io_manager": {"config": {"root": str(lake)}}}}
    with pytest.MonkeyPatch.context() as mp, dg.DagsterInstance.ephemeral() as instance:
        mp.setenv("OPENAI_API_KEY", SECRET)
        register_rounds(instance, ["0", "1"])
        for round_, fields in (("0", ["arts", "humanities"]), ("1", FIELDS)):
            server.questions_follow_seed = round_ == "1"
            for field in fields:
                assert defs.resolve_job_def("round_job").execute_in_process(
                    run_config=config, instance=instance, partition_key=f"{field}|{round_}").success
            for field in fields:
                assert defs.resolve_job_def("data_job").execute_in_process(
                    run_config=config, instance=instance, partition_key=field).success
    return read_parquet(UPath(lake) / "question_clusters" / "question_clusters.parquet")


def test_the_launchpad_shows_the_settings_typed(ui, browser):
    """A person types a section into the launchpad's run config: the editor's help lists that section's keys with
    their descriptions and both profiles' defaults, and the config checks as valid."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    dev, *_ = ui
    open_page(browser, f"{dev.url}/locations/{dev.location[0]}/jobs/training_job/playground")
    body = lambda: browser.find_element("tag name", "body").text  # noqa: E731
    profile_line = lambda: next(e for e in browser.find_elements("css selector", ".CodeMirror-line")  # noqa: E731
                                if "profile: paper" in e.text)
    wait_for(browser, profile_line, "the run config editor")
    # the editor redraws its lines as the launchpad fills the config in, so the line is looked up at each try:
    # a line found once can be stale by the time it is clicked
    click(browser, profile_line, "the profile line")
    ActionChains(browser).send_keys(Keys.END, Keys.ENTER, "training:", Keys.ENTER, "  epochs: 1").perform()
    wait_for(browser, lambda: "Passes over the train split (the paper: 2). (demo 1.0, paper 2.0" in body(),
             "the training section's keys in the editor's help")
    assert "LoRA rank (the paper: 16). (default 16" in body() and "No errors" in body()
    shot(browser, "8_launchpad_typed_settings")


def test_a_parallel_backfill_of_all_fields_curates_as_a_sequential_run_does(ui):
    """Round 1 for all 8 fields as one backfill: its runs, and the data runs the sensor starts after each, run side
    by side (8 runs at once, the question_clusters pool lets one clustering in at a time). The final question
    clusters equal those of the same history run one job at a time."""
    dev, tmp, runs, server = ui
    server.questions_follow_seed = True  # round 1 brings new questions
    dev.add_round("1")
    backfill = dev.launch_backfill("round_job", [f"{field}|1" for field in FIELDS])
    deadline = time.monotonic() + 600
    while len(round_runs := dev.runs_tagged("dagster/backfill", backfill)) < len(FIELDS):
        assert time.monotonic() < deadline, f"the backfill launched {len(round_runs)} runs:\n{dev.log_tail()}"
        time.sleep(1)
    for run in round_runs:
        assert dev.wait(run["runId"], timeout=600) == "SUCCESS", dev.log_tail()
    curated = [dev.run_launched_after(run["runId"], timeout=600) for run in round_runs]
    runs.extend([r["runId"] for r in round_runs] + curated)
    parallel = read_parquet(UPath(tmp / "lake") / "question_clusters" / "question_clusters.parquet")

    reference = sequential_clusters(tmp, server)
    columns = ["question_id", "field", "generation_round", "keep", "cluster", "duplicate_of", "kind"]
    ordered = lambda frame: frame[columns].sort_values(["question_id", "generation_round"]).reset_index(drop=True)  # noqa: E731
    assert set(parallel["generation_round"]) == {0, 1} and len(parallel) > 8 * 4
    pd.testing.assert_frame_equal(ordered(parallel), ordered(reference))


def test_the_api_key_is_nowhere_the_ui_runs_wrote(ui):
    dev, tmp, runs, server = ui
    assert server.answered > 0  # the server answers only requests that carry the key: the runs sent it
    home = tmp / "dagster_home"
    assert sqlite_row_count(home, "runs") == len(runs)  # the instance storage holds the runs scanned below
    assert sqlite_row_count(home, "event_logs") > 50
    compute_logs = [p for p in (home / "storage").rglob("*") if p.suffix in {".out", ".err", ".complete"}]
    assert compute_logs, "compute logs are written under DAGSTER_HOME/storage"
    query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { runConfigYaml tags { key value } } } }"
    for run_id in runs:
        run = dev.graphql(query, {"id": run_id})["runOrError"]
        assert SECRET not in json.dumps(run)
    assert files_containing(tmp, SECRET) == []


def test_sigterm_stops_the_webserver_daemon_and_code_servers(ui):
    """`kill <ui.sh>` (what a service manager sends) stops everything ui.sh started, as Ctrl-C does (on a quiet
    machine within a few seconds; the bound here is generous, since a loaded one is slower, and a process
    that outlived SIGTERM never stops at all). Runs last in this module: it ends the module's `dagster dev`."""
    dev, *_ = ui
    started = dev.processes()
    assert len(started) >= 4  # ui.sh, dagster dev, the webserver, the daemon (and the code servers)
    t0 = time.monotonic()
    dev.proc.terminate()
    while time.monotonic() < t0 + 60 and running(started):
        time.sleep(0.2)
    print(f"every process ui.sh started had stopped {time.monotonic() - t0:.1f} s after SIGTERM")
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
            for pid in running(started)}
    assert left == {}, f"still running 60 s after SIGTERM\n{dev.log_tail()}"


def running(pids: set[int]) -> set[int]:
    """Those of `pids` that still run (a zombie, ended but not yet reaped by its parent, does not)."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive
