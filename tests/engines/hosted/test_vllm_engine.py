"""The vllm engine's launch path against a stand-in ``vllm`` executable (vLLM needs a
GPU): command line, health wait, failure with the log tail, process-group shutdown."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine
from icrm_sgl.engines.hosted import vllm as eng
from icrm_sgl.errors import EngineError, InputError, MissingDependencyError
from icrm_sgl.judges import default_judge
from tests.engines.hosted.test_hosted_standin import VALID
from tests.engines.sglang.test_sglang_engine import child_pid, wait_dead

#: A stand-in for ``vllm serve``: records its argv, answers /health and the OpenAI chat
#: and completion endpoints with a valid verdict, and has a child that ignores SIGTERM.
VLLM_STANDIN = r"""
import argparse, json, signal, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("command")
parser.add_argument("model")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mode", default="ok")
parser.add_argument("--record")
args, _ = parser.parse_known_args()
if args.record:
    with open(args.record, "a") as f:
        f.write(json.dumps({"argv": sys.argv[1:]}) + "\n")
if args.mode == "exit":
    print("INFO loading model\nValueError: unknown quantization (stand-in)", flush=True)
    sys.exit(3)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
print(f"child {child.pid}", flush=True)
VERDICT = json.dumps(VALID)


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, {})
        elif self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": args.model, "object": "model"}]})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if args.record:
            with open(args.record, "a") as f:
                f.write(json.dumps({"path": self.path, "body": body}) + "\n")
        usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
        choice = {"index": 0, "text": VERDICT, "finish_reason": "stop"}
        self.reply(200, {"id": "c", "object": "text_completion", "created": 0,
                         "model": args.model, "choices": [choice], "usage": usage})

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
"""


@pytest.fixture
def vllm_standin(tmp_path: Path) -> Path:
    """The stand-in, an executable named ``vllm_standin``."""
    script = tmp_path / "vllm_standin"
    script.write_text(f"#!{sys.executable}\nVALID = {VALID!r}\n{VLLM_STANDIN}")
    script.chmod(0o755)
    return script


def test_launch_command_maps_the_original_parameters():
    options = eng.VllmOptions(
        model_name="org/m",
        num_workers=2,
        num_gpu_per_worker=4,
        dtype="bfloat16",
        quantization="awq",
        server_args="--max-model-len 8192",
        seed=7,
    )
    cmd = eng.launch_command("/bin/vllm", options, 8123)
    assert cmd[:3] == ["/bin/vllm", "serve", "org/m"]
    flags = " ".join(cmd[3:])
    for part in (
        "--port 8123",
        "--tensor-parallel-size 4",
        "--data-parallel-size 2",
        "--dtype bfloat16",
        "--quantization awq",
        "--seed 7",
    ):
        assert part in flags
    assert cmd[-2:] == ["--max-model-len", "8192"]


def test_launches_standin_scores_and_stops_the_process_group(
    vllm_standin, tmp_path, monkeypatch, pairwise_example
):
    record = tmp_path / "record.jsonl"
    log = tmp_path / "vllm.log"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    model = ICRM(
        model_name="standin/judge",
        rm_type="pairwise",
        engine="vllm",
        num_shots=1,
        num_workers=2,
        dtype="float16",
        executable=str(vllm_standin),
        server_args=["--record", str(record)],
        log_path=str(log),
        launch_timeout=20,
    )
    child = child_pid(str(log))
    result = model.judge(pairwise_example, max_tokens=100)
    model.close()
    default_judge("pairwise").validate(result.verdict)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    argv = lines[0]["argv"]
    assert argv[:2] == ["serve", "standin/judge"] and "--data-parallel-size" in argv
    assert argv[argv.index("--dtype") + 1] == "float16"
    request = lines[1]
    assert request["path"] == "/v1/completions"  # vLLM serves completion mode by default
    assert request["body"]["structured_outputs"]["json"]["properties"]["choice"]["enum"]
    assert result.meta["engine"] == "vllm" and model.model_name == "standin/judge"
    assert wait_dead(child), "the server's children must die with its process group"


def test_standin_that_exits_reports_its_log_tail(vllm_standin, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    log = tmp_path / "vllm.log"
    with pytest.raises(EngineError) as info:
        create_engine(
            "vllm",
            model_name="standin/judge",
            executable=str(vllm_standin),
            quantization="bogus",
            server_args="--mode exit",
            log_path=str(log),
            launch_timeout=20,
        )
    message = str(info.value)
    assert "vllm server exited with code 3" in message and str(log) in message
    assert "unknown quantization (stand-in)" in message


def test_too_few_gpus_fail_before_the_standin_starts(vllm_standin, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    record = tmp_path / "record.jsonl"
    with pytest.raises(EngineError, match=r"vllm engine: 4 GPU\(s\) needed"):
        create_engine(
            "vllm",
            model_name="m",
            executable=str(vllm_standin),
            num_gpu_per_worker=4,
            server_args=["--record", str(record)],
        )
    assert not record.exists()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_launch_without_the_vllm_package_is_one_line_with_the_install_hint():
    with pytest.raises(MissingDependencyError, match=r"pip install vllm") as info:
        create_engine("vllm", model_name="org/m")
    assert "\n" not in str(info.value)


def test_launch_options_with_an_endpoint_are_refused():
    with pytest.raises(InputError, match=r"engine 'vllm': .*dtype only apply when launching"):
        create_engine("vllm", model_name="m", endpoint="http://127.0.0.1:9/v1", dtype="half")
