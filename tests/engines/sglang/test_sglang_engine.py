"""The sglang engine: launch command, GPU check, health wait and process-group shutdown
against a stand-in server (a small local HTTP process that answers like sglang), prefix
tracing of the judging programs, and an end-to-end run on a real server (GPU only)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from sglang.lang.backend.base_backend import BaseBackend
from sglang.lang.chat_template import get_chat_template
from sglang.lang.tracer import extract_prefix_by_tracing

from icrm_sgl import ICRM
from icrm_sgl.engines import create_engine
from icrm_sgl.engines import server_process as sp
from icrm_sgl.engines.sglang.client import fetch_model_info
from icrm_sgl.engines.sglang.launch import create, launch_command
from icrm_sgl.engines.sglang.options import SglangOptions
from icrm_sgl.errors import EngineError, InputError
from icrm_sgl.judges import default_judge
from icrm_sgl.programs.judge import ProgramConfig, build_program

#: A stand-in for ``sglang.launch_server``: health, model info and /generate endpoints,
#: plus a child process that ignores SIGTERM, so only a process-group SIGKILL ends it.
STANDIN = r"""
import argparse, json, signal, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("-m", dest="module")
parser.add_argument("--model-path", default="standin/judge-model")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mode", default="ok")
parser.add_argument("--record")
parser.add_argument("--dp-size", type=int, default=1)
args, _ = parser.parse_known_args()

if args.mode == "exit":
    print("loading weights\nRuntimeError: CUDA out of memory (stand-in)", flush=True)
    sys.exit(3)
if args.mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
print(f"child {child.pid}", flush=True)
INFO = {"model_path": args.model_path, "served_model_name": args.model_path}


def completion(body):
    text, params = body["text"], body.get("sampling_params", {})
    if body.get("return_logprob"):  # scoring one select choice: shorter scores higher
        return {"text": "", "meta_info": {
            "prompt_tokens": len(text), "output_token_logprobs": [],
            "input_token_logprobs": [[None, 1, "x"], [-0.01 * len(text), 2, "y"]]}}
    generated = "" if params.get("max_new_tokens") == 0 else 'fine"'
    return {"text": generated, "meta_info": {
        "prompt_tokens": len(text), "cached_tokens": 7, "completion_tokens": 2,
        "finish_reason": {"type": "stop"}}}


BUSY = {"left": int(args.mode.split(":")[1]) if args.mode.startswith("busy:") else 0}
BUSY_LOCK = threading.Lock()


def busy():
    # --mode busy:N: the first N /generate requests are answered 503 (a worker that is
    # briefly unavailable), each logged as "busy".
    with BUSY_LOCK:
        if BUSY["left"] <= 0:
            return False
        BUSY["left"] -= 1
    print("busy", flush=True)
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as sglang's server: routers pool connections

    def reply(self, code, obj=None, headers=()):
        data = json.dumps(obj if obj is not None else {}).encode()
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        if self.headers["Content-Length"] is not None:
            return self.rfile.read(int(self.headers["Content-Length"]))
        data = b""  # chunked, as a router streaming the request sends it
        while size := int(self.rfile.readline().strip(), 16):
            data += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        return data

    def do_GET(self):
        if self.path in ("/health", "/health_generate"):
            self.reply(503 if args.mode == "never-healthy" else 200)
        elif self.path in ("/model_info", "/get_model_info"):
            self.reply(200, INFO)
        elif self.path == "/server_info":
            self.reply(200, {"dp_size": args.dp_size})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.body())
        if args.record:
            with open(args.record, "a") as f:
                f.write(json.dumps(body) + "\n")
        if args.mode == "reject":
            self.reply(400, {"error": {"message": "bad request (stand-in)"}})
        elif self.path == "/generate" and busy():
            self.reply(503, {"error": "busy (stand-in)"}, [("Retry-After", "0")])
        else:
            self.reply(200, completion(body))

    def log_message(self, *a):
        pass


# socketserver's listen backlog of 5 overflows when the engine's 64 threads connect at
# once on a loaded machine (the kernel then resets some connections); sglang's own server
# listens with uvicorn's 2048.
ThreadingHTTPServer.request_queue_size = 128
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
"""


@pytest.fixture
def standin(tmp_path: Path) -> Path:
    """The stand-in server as an executable script, usable as the engine's ``python``."""
    script = tmp_path / "standin_server.py"
    script.write_text(f"#!{sys.executable}\n{STANDIN}")
    script.chmod(0o755)
    return script


def start_standin(
    script: Path, tmp_path: Path, *args: str, timeout: float = 10
) -> sp.ServerProcess:
    port = sp.free_port()
    cmd = [sys.executable, str(script), "--port", str(port), *args]
    return sp.serve(cmd, port, timeout, str(tmp_path / "server.log"))


def child_pid(log_path: str) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in Path(log_path).read_text().splitlines():
            if line.startswith("child "):
                return int(line.split()[1])
        time.sleep(0.05)
    raise AssertionError("the stand-in did not report its child")


def is_dead(pid: int) -> bool:
    """Gone, or a zombie waiting for a parent that no longer exists to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_dead(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not is_dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- options and launch command ------------------------------------------------------------


def test_launch_command_has_parallelism_port_seed_and_passthrough_args():
    opts = SglangOptions(
        model_name="Qwen/Qwen2.5-7B-Instruct",
        num_workers=2,
        num_gpu_per_worker=4,
        server_args="--mem-fraction-static 0.8 --chat-template 'my template.jinja'",
        seed=7,
        api_key="k",
        python="/opt/py/bin/python",
    )
    cmd = launch_command(opts.model_name, opts, 31234)
    assert cmd[:5] == [
        "/opt/py/bin/python",
        "-m",
        "sglang.launch_server",
        "--model-path",
        opts.model_name,
    ]
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert flags["--tp-size"] == "4" and flags["--dp-size"] == "2"
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "31234"
    assert flags["--random-seed"] == "7" and flags["--api-key"] == "k"
    assert cmd[-4:] == ["--mem-fraction-static", "0.8", "--chat-template", "my template.jinja"]
    typed = SglangOptions(model_name="m", dtype="bfloat16", quantization="fp8")
    typed_flags = launch_command("m", typed, 1)
    assert typed_flags[typed_flags.index("--dtype") + 1] == "bfloat16"
    assert typed_flags[typed_flags.index("--quantization") + 1] == "fp8"
    cpu = SglangOptions(model_name="m", device="cpu")
    assert cpu.device == "cpu" and "--device" not in launch_command("m", opts, 1)
    assert launch_command("m", cpu, 1)[-4:-2] == ["--device", "cpu"]
    unseeded = SglangOptions(model_name="m", seed=None, server_args=["--x"])
    assert "--random-seed" not in launch_command("m", unseeded, 1)
    assert launch_command("m", unseeded, 1)[-1] == "--x"


def test_routed_workers_each_get_their_own_gpus_and_one_data_parallel_rank():
    opts = SglangOptions(model_name="m", num_workers=3, num_gpu_per_worker=2)
    flags = [
        dict(zip(c[3::2], c[4::2], strict=False))
        for c in (launch_command("m", opts, 1000 + i, worker=i) for i in range(3))
    ]
    assert [f["--dp-size"] for f in flags] == ["1", "1", "1"]
    assert [f.get("--base-gpu-id") for f in flags] == [None, "2", "4"]
    cpu = SglangOptions(model_name="m", num_workers=2, device="cpu")
    assert "--base-gpu-id" not in launch_command("m", cpu, 1, worker=1)


def test_server_env_takes_key_value_text_as_the_cli_gives_it():
    opts = SglangOptions(model_name="m", server_env="A=1,PYTHONPATH=/x/y=z")
    assert opts.server_env == {"A": "1", "PYTHONPATH": "/x/y=z"}
    with pytest.raises(ValidationError, match="KEY=VALUE"):
        SglangOptions(model_name="m", server_env="A=1,oops")


def test_router_command_is_loopback_sticky_and_passes_extra_flags():
    from icrm_sgl.engines.sglang.router import router_command

    urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    cmd = router_command("/py", 9, urls, "round_robin", True, "k", ["--log-level", "warn"])
    assert cmd[:3] == ["/py", "-m", "smg.launch_router"]
    at = cmd.index("--worker-urls")
    assert cmd[at + 1 : at + 3] == urls
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "9"
    assert cmd[cmd.index("--policy") + 1] == "round_robin"
    assert cmd[cmd.index("--prometheus-host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--health-check-interval-secs") + 1] == "10"
    assert cmd[cmd.index("--health-success-threshold") + 1] == "1"
    assert "--routing-key-override" in cmd and cmd[cmd.index("--api-key") + 1] == "k"
    assert cmd[cmd.index("--assignment-mode") + 1] == "min_load"
    assert cmd[-2:] == ["--log-level", "warn"]
    assert "--routing-key-override" not in router_command("/py", 9, urls, "random", False, None, [])
    hashed = router_command("/py", 9, urls, "consistent_hashing", True, None, [])
    assert "--routing-key-override" not in hashed  # the policy itself hashes the key


def test_a_real_router_without_live_workers_is_refused_in_one_line(tmp_path):
    """sglang's router (smg, real) in front of a port where nothing listens."""
    from icrm_sgl.engines.sglang.router import spawn_router

    dead = f"http://127.0.0.1:{sp.free_port()}"
    router = spawn_router(sys.executable, [dead], "consistent_hashing", True, None, [],
                          str(tmp_path / "router.log"))  # fmt: skip
    try:
        router.wait_ready(30, "/health", {}, "router")
        with pytest.raises(EngineError, match=r"router at .* has no healthy worker"):
            create_engine("sglang", endpoint=router.url, request_timeout=5)
    finally:
        router.stop()
    assert router.proc.poll() is not None


def test_a_briefly_busy_worker_behind_a_real_router_is_retried(standin, tmp_path):
    """sglang's router (smg, real, its own retries off so that the busy answers reach the
    engine) in front of a stand-in worker whose first three /generate requests get 503:
    the engine retries them and every verdict is valid."""
    from icrm_sgl.engines.sglang.router import spawn_router, wait_for_workers

    worker = start_standin(standin, tmp_path, "--mode", "busy:3")
    router = spawn_router(sys.executable, [worker.url], "consistent_hashing", True, None,
                          ["--disable-retries"], str(tmp_path / "router.log"))  # fmt: skip
    try:
        router.wait_ready(30, "/health", {}, "router")
        wait_for_workers(router, 1, {}, 30)
        model = ICRM(rm_type="individual", engine="sglang", endpoint=router.url, num_shots=0)
        example = {"conversation": [{"role": "user", "content": "Hi"},
                                    {"role": "assistant", "content": "Hello!"}]}  # fmt: skip
        results = list(model.judge_batch([example, example], max_tokens=8))
        model.close()
    finally:
        router.stop()
        worker.stop()
    assert all(r.ok for r in results), [r.error for r in results]
    for result in results:
        default_judge("individual").validate(result.verdict)
    assert Path(worker.log_path).read_text().count("busy") == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give a model"),
        ({"endpoint": "localhost:30000"}, "http(s)://"),
        ({"endpoint": "http://127.0.0.1:1", "num_workers": 2}, "only apply when launching"),
        ({"endpoint": "http://127.0.0.1:1", "router_policy": "random"}, "only apply when"),
        ({"model_name": "m", "router_policy": "fastest"}, "consistent_hashing"),
        ({"model_name": "m", "routing": "mesh"}, "'router' or 'dp'"),
        ({"model_name": "m", "router_args": "--policy 'unclosed"}, "closing quotation"),
        ({"model_name": "m", "threads": 3}, "Extra inputs"),
        ({"model_name": "m", "busy_timeout": 0}, "greater than 0"),
        ({"model_name": "m", "max_attempts": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_options_are_rejected(options, message):
    with pytest.raises(ValidationError, match=message):
        SglangOptions(**options)


def test_sglang_without_model_or_endpoint_says_which_flags_to_give():
    with pytest.raises(InputError) as info:
        create_engine("sglang")
    assert str(info.value) == (
        "engine 'sglang': give a model to launch a server (--model), "
        "or the URL of a running one (--endpoint)"
    )


def test_registry_reports_bad_options_as_input_error():
    with pytest.raises(InputError, match="engine 'sglang': bad option"):
        create_engine("sglang", model_name="m", num_workers=0)


def test_free_port_is_bindable():
    port = sp.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# -- GPU count -----------------------------------------------------------------------------


@pytest.mark.parametrize(("visible", "count"), [("", 0), ("-1", 0), ("0", 1), ("0,1,2", 3)])
def test_count_gpus_honours_cuda_visible_devices(monkeypatch, visible, count):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert sp.count_gpus() == count


def test_count_gpus_asks_nvidia_smi(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: H100 (UUID: a)'\necho 'GPU 1: H100 (UUID: b)'\n")
    smi.chmod(0o755)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert sp.count_gpus() == 2


def test_too_few_gpus_fail_before_anything_is_launched(monkeypatch, tmp_path):
    marker = tmp_path / "launched"
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake_python.chmod(0o755)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(EngineError, match=r"4 GPU\(s\) needed .* but 1 visible"):
        create("m", num_workers=2, num_gpu_per_worker=2, python=str(fake_python))
    assert not marker.exists()


# -- health wait and shutdown against a stand-in server ------------------------------------


def test_wait_and_shutdown_with_standin_server(standin, tmp_path):
    server = start_standin(standin, tmp_path)
    child = child_pid(server.log_path)
    info = fetch_model_info(server.url, timeout=5)
    assert info["model_path"] == "standin/judge-model"
    assert server.proc.poll() is None and not is_dead(child)
    started = time.monotonic()
    server.stop(grace=5)
    assert server.proc.returncode is not None
    assert wait_dead(child), "a child that ignores SIGTERM must die with the group"
    assert time.monotonic() - started < 8
    server.stop()  # idempotent


def test_stop_kills_a_standin_server_that_ignores_sigterm(standin, tmp_path):
    server = start_standin(standin, tmp_path, "--mode", "stubborn")
    child = child_pid(server.log_path)
    started = time.monotonic()
    sp.stop_process_group(server.proc, grace=0.3)
    assert server.proc.returncode == -signal.SIGKILL
    assert wait_dead(child) and time.monotonic() - started < 5


def test_standin_server_that_exits_early_reports_its_log_tail(standin, tmp_path):
    with pytest.raises(EngineError) as info:
        start_standin(standin, tmp_path, "--mode", "exit")
    message = str(info.value)
    assert "exited with code 3" in message and str(tmp_path / "server.log") in message
    assert "CUDA out of memory (stand-in)" in message


def test_standin_server_never_healthy_times_out_and_is_stopped(standin, tmp_path, monkeypatch):
    started = []
    real_start = sp.start_process
    monkeypatch.setattr(
        sp, "start_process", lambda *a: started.append(real_start(*a)) or started[-1]
    )
    with pytest.raises(EngineError, match=r"not healthy after 1.5 s"):
        start_standin(standin, tmp_path, "--mode", "never-healthy", timeout=1.5)
    assert started[0].returncode is not None


def test_a_real_ctrl_c_during_the_health_wait_stops_the_standin_server(
    standin, tmp_path, monkeypatch
):
    """SIGINT to this process while the health poll runs (a request or a pause).

    The timer starts once the server process exists, so a slow start under load cannot
    move the interrupt before it.
    """
    started = []
    real_start = sp.start_process
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))

    def start_then_arm(*args):
        started.append(real_start(*args))
        timer.start()
        return started[-1]

    monkeypatch.setattr(sp, "start_process", start_then_arm)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            start_standin(standin, tmp_path, "--mode", "never-healthy", timeout=30)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert started[0].returncode is not None


def test_interrupt_during_wait_stops_the_standin_server(standin, tmp_path, monkeypatch):
    procs = []

    def interrupted(url, proc, *args, **kwargs):
        procs.append(proc)
        raise KeyboardInterrupt

    monkeypatch.setattr(sp, "wait_healthy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        start_standin(standin, tmp_path)
    assert procs[0].returncode is not None


# -- connecting ----------------------------------------------------------------------------


def test_connecting_to_an_unreachable_url_fails_fast():
    url = f"http://127.0.0.1:{sp.free_port()}"
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"cannot reach .*/health"):
        create("m", endpoint=url, request_timeout=2)
    assert time.monotonic() - started < 5


def test_standin_serving_another_model_is_refused(standin, tmp_path):
    server = start_standin(standin, tmp_path, "--model-path", "org/other-model")
    try:
        with pytest.raises(EngineError, match=r"serves 'org/other-model', not 'org/my-model'"):
            create("org/my-model", endpoint=server.url)
        backend = create("/models/other-model", endpoint=server.url + "/")
        assert backend.get_model_name() == "org/other-model"
        backend.shutdown()  # connected, not launched: the server keeps running
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_server_http_errors_become_engine_errors(standin, tmp_path):
    server = start_standin(standin, tmp_path, "--mode", "reject")
    try:
        backend = create(None, endpoint=server.url)
        with pytest.raises(EngineError, match=r"HTTP 400: .*bad request"):
            backend.cache_prefix("x" * 100)
    finally:
        server.stop()


# -- prefix warm-up ------------------------------------------------------------------------


class TemplateOnly(BaseBackend):
    """A backend that only has a known chat template, for tracing."""

    def __init__(self, template: str) -> None:
        super().__init__()
        self.chat_template = get_chat_template(template)


@pytest.mark.parametrize("rm_type", ["individual", "pairwise"])
@pytest.mark.parametrize("template", ["chatml", "llama-3-instruct"])
def test_traced_prefix_is_the_constant_prompt_text(rm_type, template):
    judge = default_judge(rm_type)
    prompt = judge.prompt(list(judge.shots_pool)[:3])
    constant = prompt.segments[0]
    assert isinstance(constant, str) and len(constant) > 64  # run_batch caches > 64 chars
    backend = TemplateOnly(template)
    user_prefix, _ = backend.chat_template.get_prefix_and_suffix("user", [])
    for completion, expected in ((True, constant), (False, user_prefix + constant)):
        program = build_program(ProgramConfig(judge=judge, prompt=prompt, completion=completion))
        assert extract_prefix_by_tracing(program, backend) == expected


def test_launch_with_standin_server_warms_each_worker_and_pins_each_verdict(
    standin, tmp_path, monkeypatch, pairwise_example
):
    """What a CPU server cannot show: two data-parallel workers (a stand-in, named so)."""
    record = tmp_path / "requests.jsonl"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    model = ICRM(
        model_name="standin/judge-model",
        rm_type="pairwise",
        engine="sglang",
        num_workers=2,
        routing="dp",
        python=str(standin),
        server_args=["--record", str(record)],
        log_path=str(tmp_path / "launched.log"),
        launch_timeout=20,
    )
    backend = model.backend
    assert backend.batch_threads == 64 and backend.dp_size == 2
    child = child_pid(str(tmp_path / "launched.log"))
    examples = []
    for i in range(6):
        ex = json.loads(json.dumps(pairwise_example))
        ex["conversation_B"][-1]["content"] = f"marker-{i}"
        examples.append(ex)
    results = list(model.judge_batch(examples))
    model.close()

    assert all(r.ok for r in results), [r.error for r in results]
    assert results[0].verdict["choice"] == "A+" and results[0].meta["cached_tokens"] == 7
    requests = [json.loads(line) for line in record.read_text().splitlines()]
    prefix = model.definition.prompt(model.default_shots).segments[0]
    warm = [r for r in requests if r["text"] == prefix]
    assert sorted(r["routed_dp_rank"] for r in warm) == [0, 1]
    for i in range(6):
        mine = [r for r in requests if f"marker-{i}" in r["text"]]
        assert len(mine) >= 7  # text fields, then one request per choice
        assert len({r["routed_dp_rank"] for r in mine}) == 1, "a verdict spans two workers"
    assert backend.server is None and wait_dead(child)


# -- the real thing ------------------------------------------------------------------------


@pytest.mark.gpu
def test_real_sglang_server_end_to_end(pairwise_example):
    if sp.count_gpus() == 0:
        pytest.skip("no NVIDIA GPU visible (nvidia-smi -L / CUDA_VISIBLE_DEVICES)")
    model_name = os.environ.get("ICRM_GPU_MODEL")
    if not model_name:
        pytest.skip("set ICRM_GPU_MODEL to a small HF model name or path")
    with ICRM(model_name=model_name, rm_type="pairwise", engine="sglang") as model:
        first = model.judge(pairwise_example)
        second = model.judge(pairwise_example)
    assert first.ok and second.ok
    assert second.meta["cached_tokens"] > 0, second.meta
