"""Serving: `transformers serve` (transformers' own OpenAI-compatible server) started as `research-tuner serve` plans
it, on a tiny merged model on 127.0.0.1, answers the openai client with the model's greedy answer; the same server
is a teacher for the project's openai backend (teacher.base_url). Also the vLLM commands planned for a GPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from research_tuner import cli
from research_tuner.lib.release.serving import ADAPTER_NAME, server_plan
from research_tuner.lib.shared.chat import CHAT_TEMPLATE_KWARGS, student_messages, student_prompt
from research_tuner_tests.support.mlflow_server import free_port

QUESTION = "How does urban noise affect songbird breeding?"
MAX_TOKENS = 12


def _manifest(base: str, lora_r: int = 8) -> dict:
    return {"base_model": base, "training": {"lora_r": lora_r}}


@pytest.fixture(scope="module")
def adapter_folder(tiny_model_dir, tmp_path_factory):
    """A lora_adapter folder whose merged/ is the tiny model with a non-zero LoRA merged in."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("lora_adapter")
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                      init_lora_weights=False))  # random B: the merge changes the weights
    model.save_pretrained(folder / "adapter")
    model.merge_and_unload().save_pretrained(folder / "merged")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder / "merged")
    (folder / "manifest.json").write_text(json.dumps(_manifest(str(tiny_model_dir))))
    return folder


@pytest.fixture(scope="module")
def server(adapter_folder, tmp_path_factory):
    port = free_port()
    plan = server_plan(adapter_folder, _manifest("x"), port=port, engine="transformers")
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    with log_path.open("w") as log:
        env = {**os.environ, **plan.env}
        assert env["HF_HUB_OFFLINE"] == "1"  # a local folder: no Hub at all
        process = subprocess.Popen(plan.command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log_path.read_text()[-3000:]
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "transformers serve did not come up"
                    time.sleep(0.5)
            yield url, plan
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _greedy(adapter_folder) -> str:
    from research_tuner.lib.shared.inference import generate_batched
    from research_tuner.lib.shared.models import load_causal_lm, load_tokenizer

    merged = str(adapter_folder / "merged")
    tokenizer = load_tokenizer(merged)
    model = load_causal_lm(merged, precision="fp32", tokenizer=tokenizer)
    return generate_batched(model, tokenizer, [student_prompt(QUESTION)], max_new_tokens=MAX_TOKENS)[0].text


def test_the_server_answers_with_the_models_greedy_answer(server, adapter_folder):
    from openai import OpenAI

    url, plan = server
    assert plan.engine == "transformers" and plan.command[-8:-6] == ["--host", "127.0.0.1"]
    client = OpenAI(base_url=f"{url}/v1", api_key="not-needed")
    reply = client.chat.completions.create(
        model=plan.model, messages=student_messages(QUESTION), max_tokens=MAX_TOKENS, temperature=0,
        extra_body={"chat_template_kwargs": CHAT_TEMPLATE_KWARGS})
    expected = _greedy(adapter_folder)
    assert expected.strip()
    assert reply.choices[0].message.content == expected
    assert reply.usage.completion_tokens <= MAX_TOKENS


def test_the_server_can_be_the_teacher_of_another_run(server, tmp_path, monkeypatch):
    """The project's openai teacher backend, pointed at the server with teacher.base_url, gets its answers."""
    from research_tuner.lib.teacher.base import TeacherRequest, TeacherResponse, Usage
    from research_tuner.lib.teacher.factory import build_teacher
    from research_tuner.settings import TeacherSettings

    url, plan = server
    monkeypatch.setenv("OPENAI_API_KEY", "not-needed")  # the server checks none; the client wants one
    settings = TeacherSettings(backend="openai", model=plan.model, base_url=f"{url}/v1",
                               question_strategy="one_by_one", approach_strategy="by_section", max_retries=0)
    teacher = build_teacher(settings, tmp_path / "cache.sqlite")
    usage = Usage()
    try:
        (answer,) = teacher.complete([TeacherRequest(tuple(student_messages(QUESTION)), max_tokens=8,
                                                     temperature=0.0, top_p=1.0, seed=0)], usage)
    finally:
        teacher.close()
    assert isinstance(answer, TeacherResponse), answer
    assert answer.text.strip() and 0 < answer.completion_tokens <= 8


def test_cli_serve_prints_the_transformers_command(adapter_folder, tmp_path, capsys):
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "lora_adapter").symlink_to(adapter_folder)
    assert cli.main(["serve", "--lake", str(lake), "--engine", "transformers", "--port", "8123", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "transformers on http://127.0.0.1:8123/v1" in out and f"serve {lake / 'lora_adapter' / 'merged'} " in out


def test_without_a_merged_folder_transformers_serve_says_what_to_set(tmp_path):
    with pytest.raises(FileNotFoundError, match="training.export_merged=true"):
        server_plan(tmp_path, _manifest("x"), engine="transformers")


def test_vllm_serves_the_adapter_on_its_base_or_the_merged_folder(tmp_path):
    plan = server_plan(tmp_path, _manifest("embedded:SmolLM2-135M-Instruct", lora_r=12), port=9000, engine="vllm")
    assert plan.command[:4] == ["vllm", "serve", "HuggingFaceTB/SmolLM2-135M-Instruct", "--enable-lora"]
    assert "--max-lora-rank" in plan.command and plan.command[plan.command.index("--max-lora-rank") + 1] == "16"
    assert f"{ADAPTER_NAME}={tmp_path / 'adapter'}" in plan.command and plan.model == ADAPTER_NAME
    (tmp_path / "merged").mkdir()
    merged = server_plan(tmp_path, _manifest("x"), engine="vllm")
    assert merged.command[:3] == ["vllm", "serve", str(tmp_path / "merged")] and "--enable-lora" not in merged.command
