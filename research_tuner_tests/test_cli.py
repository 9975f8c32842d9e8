"""The CLI's bad input: each mistake is one line on stderr, exit status 2, naming the key, file or value at fault,
and nothing starts; `check` and `run` find a wrong key, an unknown model or an unreachable server in seconds."""

from __future__ import annotations

import time

import pytest

from research_tuner import cli
from research_tuner_tests.support.openai_server import FakeOpenAIServer, closed_port_url


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI in this process; assert it failed with status 2 and exactly one line on stderr; that line."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors exit
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_a_malformed_yaml_config_names_the_file_and_the_line(capsys, tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("training:\n  epochs: 2\n  target_modules: [q_proj, v_proj\n")
    line = one_line_error(capsys, ["check", "--config", str(config)])
    assert str(config) in line and "is not valid YAML" in line and "line 3" in line


def test_a_config_file_that_is_not_utf8_names_the_file(capsys, tmp_path):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("teacher:\n  model: caf\u00e9\n".encode("latin-1"))
    line = one_line_error(capsys, ["check", "--config", str(config)])
    assert str(config) in line and "not UTF-8" in line and "0xe9" in line


@pytest.mark.parametrize(("content", "expected"), [
    ("- training\n- teacher\n", "must hold a mapping of sections"),
    ("training:\n  lora_r: true\n", "training.lora_r: Input should be a valid integer (got True)"),
])
def test_a_config_file_with_the_wrong_shape_or_value_is_named(capsys, tmp_path, content, expected):
    config = tmp_path / "mine.yaml"
    config.write_text(content)
    assert expected in one_line_error(capsys, ["check", "--config", str(config)])


def test_a_config_path_that_is_a_folder_says_so(capsys, tmp_path):
    assert "is not a file" in one_line_error(capsys, ["check", "--config", str(tmp_path)])


def test_a_set_value_that_is_not_yaml_names_the_override(capsys):
    line = one_line_error(capsys, ["check", "--set", "teacher.model=[x"])
    assert "override 'teacher.model=[x'" in line and "not valid YAML" in line


@pytest.mark.parametrize(("assignment", "expected"), [
    ("training.epochs=.inf", "training.epochs: Input should be a finite number (got inf)"),
    ("training.epochs=.nan", "training.epochs: Input should be a finite number"),
    ("training.lora_r=true", "training.lora_r: Input should be a valid integer (got True)"),
    ("training.processes=true", "training.processes: Input should be a valid integer or 'auto' (got True)"),
    ("training.per_device_batch_size=2.5", "training.per_device_batch_size: Input should be a valid integer"),
    ("training.target_modules=[]", "training.target_modules: List should have at least 1 item"),
    ("training.lr_scheduler=cosin", "training.lr_scheduler: Input should be 'linear', 'cosine'"),
    ("split.seed=-1", "split.seed: Input should be greater than or equal to 0"),
    ("teacher.base_url=localhost:8000", "teacher.base_url: must be an http:// or https:// URL"),
    ("teacher.max_retries=-1", "teacher.max_retries: Input should be greater than or equal to 0"),
    ("teacher.model=", "teacher.model: Input should be a valid string (got None)"),
    ("evaluation.judge.enabled=1", "evaluation.judge.enabled: Input should be a valid boolean (got 1)"),
    ("training.lora_rank=8", "training.lora_rank: Extra inputs are not permitted"),
    ("training", "override 'training' is not of the form section.key=value"),
    ("training..epochs=1", "is not of the form section.key=value"),
])
def test_nonsense_settings_fail_check_with_the_key(capsys, assignment, expected):
    assert expected in one_line_error(capsys, ["check", "--set", assignment])


def test_a_key_pasted_where_its_variable_name_belongs_is_refused_and_not_echoed(capsys):
    secret = "sk-proj-pasted-by-mistake-1234"
    line = one_line_error(capsys, ["check", "--set", f"teacher.api_key_env={secret}"])
    assert "teacher.api_key_env: must be the name of an environment variable" in line
    assert secret not in line


@pytest.mark.parametrize(("fields", "expected"), [
    ("", "--fields is empty"),
    ("   ", "--fields is empty"),
    ("arts,", "--fields 'arts,' has an empty name"),
    ("arts,,humanities", "has an empty name"),
    ("arts,cooking", "unknown field(s) 'cooking'; known: arts, engineering"),
    ("arts,arts", "--fields names arts more than once"),
])
def test_a_bad_field_list_stops_run_before_anything_starts(capsys, tmp_path, fields, expected):
    lake = tmp_path / "lake"
    line = one_line_error(capsys, ["run", "--fields", fields, "--lake", str(lake)])
    assert expected in line
    assert not lake.exists()


def test_check_refuses_a_bad_field_list_too(capsys):
    assert "--fields is empty" in one_line_error(capsys, ["check", "--fields", ""])


@pytest.mark.parametrize("command", [["check"], ["run"], ["table"], ["answer", "How?"]])
def test_a_lake_url_of_no_installed_filesystem_is_named(capsys, command):
    line = one_line_error(capsys, [*command, "--lake", "nosuchfs://bucket/lake"])
    assert "--lake 'nosuchfs://bucket/lake'" in line and "nosuchfs" in line


def test_table_without_a_report_names_the_lake(capsys, tmp_path):
    line = one_line_error(capsys, ["table", "--lake", str(tmp_path)])
    assert f"no evaluation report in {tmp_path / 'eval_report'}" in line and "research-tuner run" in line


@pytest.mark.parametrize(("argv", "expected"), [
    (["answer", "How?", "--max-new-tokens", "0"], "--max-new-tokens: 0 is not a positive number"),
    (["answer", "How?", "--max-new-tokens", "many"], "'many' is not a whole number"),
    (["answer", "  "], "the question is empty"),
    (["train"], "invalid choice: 'train'"),
    (["check", "--profile"], "expected one argument"),
    (["check", "--profile", "huge"], "unknown profile 'huge': choose one of demo, paper"),
])
def test_bad_arguments_are_one_line(capsys, argv, expected):
    assert expected in one_line_error(capsys, argv)


# --- the server check: `check` and the start of `run` ask the teacher's (and judge's) server once -------------

SMALL_STUDENT = "training.base_model=embedded:SmolLM2-135M-Instruct"  # no Hub token or GPU problem beside the server's


@pytest.fixture
def server(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "JUDGE_KEY"):
        monkeypatch.delenv(var, raising=False)
    with FakeOpenAIServer() as srv:
        srv.known_models = {"gpt-4.1-mini", "judge-7b"}
        yield srv


def paper_check(base_url: str, *extra: str) -> list[str]:
    args = ["check", "--profile", "paper", "--set", f"teacher.base_url={base_url}", "--set", SMALL_STUDENT]
    for item in extra:
        args += ["--set", item]
    return args


def test_check_reports_a_good_server_and_is_ready(capsys, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-good")
    server.expected_key = "sk-good"
    assert cli.main(paper_check(server.base_url)) == 0
    out = capsys.readouterr()
    assert f"ok: teacher: {server.base_url} answered" in out.out and "profile paper: ready" in out.out
    assert out.err == "" and "sk-good" not in out.out


def test_check_fails_on_a_wrong_key_naming_url_and_variable(capsys, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret-0815")
    server.expected_key = "sk-good"
    line = one_line_error(capsys, paper_check(server.base_url))
    assert server.base_url in line and "refused the API key in OPENAI_API_KEY" in line
    assert "0815" not in line
    assert server.paths == {"GET /v1/models": 1}, "one probe, no completion"


def test_check_fails_on_an_unknown_model(capsys, server):
    line = one_line_error(capsys, paper_check(server.base_url, "teacher.model=gpt-4.1-mimi"))
    assert f"the teacher server {server.base_url} does not serve teacher.model='gpt-4.1-mimi'" in line
    assert "gpt-4.1-mini" in line


def test_check_names_the_judges_own_keys(capsys, server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-wrong")
    with FakeOpenAIServer() as judge:
        judge.expected_key, judge.known_models = "sk-judge-right", {"judge-7b"}
        line = one_line_error(capsys, paper_check(
            server.base_url, "evaluation.judge.enabled=true", f"evaluation.judge.base_url={judge.base_url}",
            "evaluation.judge.model=judge-7b", "evaluation.judge.api_key_env=JUDGE_KEY"))
    assert f"the evaluation.judge server {judge.base_url} refused the API key in JUDGE_KEY" in line
    assert "evaluation.judge.api_key_env" in line


def test_check_server_false_skips_the_probe(capsys, server):
    args = paper_check(server.base_url, "teacher.model=unlisted-deployment", "teacher.check_server=false")
    assert cli.main(args) == 0
    assert "profile paper: ready" in capsys.readouterr().out and server.paths == {}


def test_an_unreachable_server_fails_check_and_run_in_seconds(capsys, tmp_path):
    pytest.importorskip("torch")  # the training checks import it; its first import is not the server's time
    url = closed_port_url()
    started = time.monotonic()
    line = one_line_error(capsys, paper_check(url))
    assert time.monotonic() - started < 5
    assert f"cannot reach the teacher server {url} (connection refused)" in line and "teacher.base_url" in line
    lake = tmp_path / "lake"
    run = ["run", "--profile", "paper", "--lake", str(lake), "--set", f"teacher.base_url={url}", "--set", SMALL_STUDENT]
    assert f"cannot reach the teacher server {url}" in one_line_error(capsys, run)
    assert not lake.exists(), "nothing ran"


def test_a_server_without_a_model_list_is_a_warning_and_check_passes(capsys, server):
    server.known_models = None
    assert cli.main(paper_check(server.base_url)) == 0
    out = capsys.readouterr()
    assert "warning: the teacher server" in out.err and "does not list its models" in out.err
    assert "profile paper: ready (1 warning(s))" in out.out
