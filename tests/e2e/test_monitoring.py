"""Monitoring, proven live: every dashboard panel and every alert rule
evaluated by a real Prometheus that scrapes the real daemons.

The stack (all real processes, on free loopback ports):

* llama.cpp's ``llama-server`` with ``--metrics`` (the session fixture);
* ``hwc-model-router`` in front of it, with a ``cloud`` backend nothing
  listens on (so a model that lists it first falls back to llama, and the
  backend goes into cooldown), an ``auto`` model that escalates on the
  ``x-hwc-escalate`` header, and a key with a daily token budget;
* ``hwc-health-prober`` probing llama-server, the router, the manager and an
  ``ollama`` target that is down: Ollama's server can't be installed here,
  and a down target is what the probe-failing alert needs. Healing runs as a
  dry run (no system bus to restart units on);
* ``hwc-model-manager`` placing a small file model from a local HTTP server,
  and failing a second one whose sha256 is wrong;
* ``hwc-mcp-bridge`` with real MCP servers as its children (npm
  ``server-everything`` and PyPI ``mcp-server-time``) and one whose child
  exits at once (``false``), so it keeps restarting and stays down; tools/call
  traffic over plain HTTP (session era) that is answered, refused by the
  bridge's policy, a tool's own error, and timed out;
* ``hwc-agent-runner`` whose model is the scripted one of
  ``tests/vm/scripted_model.py`` (a real small model would not make the
  calls on demand): one job completes, one waits for an approval that is
  rejected and then completes, one is left waiting for its approval;
* a stand-in vLLM: vLLM can't run on this CPU-only machine, so a small HTTP
  server replays a recorded vLLM ``/metrics`` page
  (``tests/monitoring/fixtures/vllm-metrics.txt``) with its counters growing
  between scrapes;
* Debian's ``prometheus`` scraping all of them every second with the labels
  the NixOS module attaches (``host``, ``component``, ``model``), loading
  the alert rules the module loads (``modules/monitoring/alerts.rules.yml``).

After driving traffic through the router (including a fallback and an
escalation), the bridge and the runner, every panel query of every
dashboard in ``dashboards/`` must return data, every template variable must
have values, every alert rule must evaluate without error, and the alerts
whose conditions the stack creates on purpose must be pending or firing.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import (
    CACHE,
    REPO_ROOT,
    Proc,
    free_port,
    http_get,
    log_tail,
    start,
    wait_until_ready,
)

BIN_DIR = Path(os.environ.get("HWC_ROUTER_BIN") or REPO_ROOT / "target/debug/x").parent
PROBER_BIN = Path(os.environ.get("HWC_PROBER_BIN") or BIN_DIR / "hwc-health-prober")
MANAGER_BIN = Path(os.environ.get("HWC_MANAGER_BIN") or BIN_DIR / "hwc-model-manager")
ROUTER_BIN = Path(os.environ.get("HWC_ROUTER_BIN") or BIN_DIR / "hwc-model-router")
BRIDGE_BIN = Path(os.environ.get("HWC_BRIDGE_BIN") or BIN_DIR / "hwc-mcp-bridge")
RUNNER_BIN = Path(os.environ.get("HWC_RUNNER_BIN") or BIN_DIR / "hwc-agent-runner")
# The real MCP servers the bridge runs (scripts/setup.sh installs both; the
# same variables as crates/hwc-testkit/src/mcp.rs).
MCP_EVERYTHING = Path(
    os.environ.get("HWC_MCP_EVERYTHING")
    or CACHE / "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
)
MCP_TIME = Path(os.environ.get("HWC_MCP_TIME") or CACHE / "mcp-time/bin/mcp-server-time")
SCRIPTED_MODEL = REPO_ROOT / "tests" / "vm" / "scripted_model.py"

DASHBOARDS = sorted((REPO_ROOT / "dashboards").glob("*.json"))
ALERT_RULES = REPO_ROOT / "modules" / "monitoring" / "alerts.rules.yml"
VLLM_FIXTURE = REPO_ROOT / "tests" / "monitoring" / "fixtures" / "vllm-metrics.txt"

HOST = "e2e"
# What Grafana would put in for the template variables ("All") and the
# interval macros; the evaluation runs right after the traffic, inside
# these windows.
GRAFANA_VARS = {
    "host": ".*",
    "model": ".*",
    "server": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}
# Alerts the stack triggers on purpose (their `for:` may be long, so
# pending counts): the dead cloud backend in cooldown, the down `ollama`
# target, the file model with a wrong sha256; the bridge's server whose
# child exits at once (down, and restarted over and over), the timeouts
# that are a third of the calls to `everything`; the runner's job left
# waiting for its approval (30m `for:`, so pending).
EXPECTED_ACTIVE = {
    "HwcRouterBackendCooldown",
    "HwcProbeFailing",
    "HwcModelFailed",
    "HwcMcpServerDown",
    "HwcMcpChildRestarting",
    "HwcMcpCallsFailing",
    "HwcAgentApprovalWaiting",
}

TINY_MODEL = b"hwc-ai monitoring e2e: a file model\n" * 64


# --------------------------------------------------------------------------
# small HTTP peers: the file server and the vLLM stand-in


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *_args) -> None:  # keep pytest output clean
        pass


def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[http.server.HTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class FileHandler(_Quiet):
    """Serves the file model (any path)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(TINY_MODEL)))
        self.end_headers()
        self.wfile.write(TINY_MODEL)


_GROWING = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*?(?:_total|_count|_sum|_bucket))(\{[^}]*\})? (\S+)$")


def grown(text: str, factor: int) -> str:
    """The recorded page with every counter (and histogram part) times
    `factor`, so successive scrapes see them grow the way a busy server's do."""
    out = []
    for line in text.splitlines():
        m = _GROWING.match(line)
        if m and not line.startswith("#"):
            value = float(m.group(3)) * factor
            line = f"{m.group(1)}{m.group(2) or ''} {value:g}"
        out.append(line)
    return "\n".join(out) + "\n"


class VllmStandIn(_Quiet):
    """A recorded vLLM /metrics page, counters growing on every scrape."""

    scrapes = 0

    def do_GET(self) -> None:
        if self.path.startswith("/health"):
            body = b""
        elif self.path.startswith("/metrics"):
            VllmStandIn.scrapes += 1
            body = grown(VLLM_FIXTURE.read_text(), VllmStandIn.scrapes).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# --------------------------------------------------------------------------
# configs


def router_toml(port: int, dir: Path, llama_url: str, dead_port: int) -> str:
    (dir / "keys.toml").write_text(
        '[[keys]]\nname = "ops"\nsecret = "sk-ops"\ndaily_token_budget = 1000000\n'
    )
    return f"""\
[server]
listen = "127.0.0.1:{port}"
[auth]
keys_file = {json.dumps(str(dir / "keys.toml"))}
[state]
database = {json.dumps(str(dir / "router.sqlite"))}

[[backends]]
name = "llama-cpp"
kind = "openai"
urls = ["{llama_url}/v1"]

[[backends]]
name = "cloud"
kind = "openai"
locality = "cloud"
urls = ["http://127.0.0.1:{dead_port}/v1"]

[models.small]
targets = [{{ backend = "llama-cpp", model = "smollm2" }}]
[models.strong]
targets = [{{ backend = "llama-cpp", model = "smollm2-strong" }}]
# Cloud first, so every request to it falls back to llama (or skips the
# cooling-down cloud backend).
[models.resilient]
targets = [{{ backend = "cloud", model = "gpt" }}, {{ backend = "llama-cpp", model = "smollm2" }}]

[aliases]
default = "small"

[auto]
default_model = "small"
strong_model = "strong"
"""


def prober_toml(port: int, llama_url: str, router_url: str, manager_url: str, dead: str) -> str:
    return f"""\
[server]
listen = "127.0.0.1:{port}"
[auth]
token_files = []
[defaults]
interval = "1s"
timeout = "1s"
failure_threshold = 2
success_threshold = 1
[healing]
dry_run = true
backoff_initial = "1s"
backoff_max = "2s"
max_restarts_per_hour = 2

[[targets]]
name = "llama-cpp"
kind = "llama_cpp"
url = "{llama_url}"
[[targets]]
name = "router"
kind = "hwc"
url = "{router_url}"
[[targets]]
name = "model-manager"
kind = "hwc"
url = "{manager_url}"
[[targets]]
name = "ollama"
kind = "ollama"
url = "{dead}"
restart_unit = "ollama.service"
restart_after = 2
"""


def manager_toml(port: int, dir: Path, files_url: str, dead: str) -> str:
    good = hashlib.sha256(TINY_MODEL).hexdigest()
    return f"""\
[server]
listen = "127.0.0.1:{port}"
[auth]
token_files = []
[ollama]
url = "{dead}"
models_dir = {json.dumps(str(dir / "ollama"))}
[manager]
reserve = 1048576
attempts = 1
update_interval = "1h"

[[file_models]]
name = "tiny"
dir = {json.dumps(str(dir / "models" / "tiny"))}
[[file_models.files]]
url = "{files_url}/tiny.bin"
sha256 = "{good}"
name = "tiny.bin"

[[file_models]]
name = "corrupt"
dir = {json.dumps(str(dir / "models" / "corrupt"))}
[[file_models.files]]
url = "{files_url}/corrupt.bin"
sha256 = "{'0' * 64}"
name = "corrupt.bin"
"""


def bridge_toml(port: int) -> str:
    return f"""\
[server]
listen = "127.0.0.1:{port}"
[auth]
token_files = []

[[servers]]
name = "everything"
command = "node"
args = [{json.dumps(str(MCP_EVERYTHING))}, "stdio"]
denied_tools = ["get-env"]
# trigger-long-running-operation (4 s) takes longer: a bridge timeout. It
# also bounds node's start and the child's initialize (0.3 s idle here).
call_timeout = "2s"

[[servers]]
name = "time"
command = {json.dumps(str(MCP_TIME))}
args = ["--local-timezone", "Etc/UTC"]

# A child that exits at once: restarted over and over (never `failed`
# within the test), never up.
[[servers]]
name = "crashing"
command = "false"
required = false
[servers.restart]
base = "200ms"
max = "1s"
max_restarts = 100000
window = "5m"
"""


RUNNER_TOKENS = {"alice": ("requester", "tok-e2e-alice-requester"), "bob": ("approver", "tok-e2e-bob-approver")}


def runner_toml(port: int, dir: Path, model_url: str) -> str:
    tokens = ""
    for name, (role, secret) in RUNNER_TOKENS.items():
        (dir / f"{name}.token").write_text(secret)
        tokens += f"[[auth.tokens]]\nfile = {json.dumps(str(dir / f'{name}.token'))}\nname = \"{name}\"\nrole = \"{role}\"\n"
    (dir / "audit.key").write_text("22" * 32)
    # One eval run in the history, as `hwc-agent-runner eval --history` writes it.
    (dir / "eval-history.jsonl").write_text(json.dumps({
        "at": "2026-12-01T10:00:00Z", "at_unix": 1796119200, "mode": "replay", "model": "transcript",
        "runs": 26, "successes": 26, "success_rate": 1.0, "unsafe_actions": 0, "actions": 81,
        "evidence_completeness": 1.0}) + "\n")
    return f"""\
[server]
listen = "127.0.0.1:{port}"
[store]
url = "sqlite://{dir / 'runner.db'}"
[audit]
signing_key_file = {json.dumps(str(dir / "audit.key"))}
host = "{HOST}"
checkpoint_every = 8
[model]
url = "{model_url}/v1"
request_timeout = "10s"
max_attempts = 2
[limits]
max_steps = 6
[tools]
workspaces = {json.dumps(str(dir / "workspaces"))}
[eval]
history = {json.dumps(str(dir / "eval-history.jsonl"))}
{tokens}"""


def prometheus_yml(jobs: list[tuple[str, str, dict[str, str]]]) -> str:
    """Scrape jobs in the NixOS module's shape: job name, target, labels."""
    cfg = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERT_RULES)],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": [target], "labels": {"host": HOST, **labels}}],
            }
            for job, target, labels in jobs
        ],
    }
    return json.dumps(cfg, indent=2)  # JSON is YAML


# --------------------------------------------------------------------------
# the stack


def need(path: Path, hint: str) -> None:
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} not found; {hint}", pytrace=False)


def launch(cmd: list[str], log: Path, port: int, ready: str, what: str) -> Proc:
    proc = start(cmd, log, port)
    wait_until_ready(proc, ready, 60, what)
    return proc


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> dict:
        q = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}/api/v1/{path}?{q}", timeout=10)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {"status": "error", "error": f"HTTP {status}: {body[:300]!r}"}
        return doc

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)


@pytest.fixture(scope="module")
def stack(llama_server: Proc, tmp_path_factory: pytest.TempPathFactory):
    for b, what in [(ROUTER_BIN, "router"), (PROBER_BIN, "prober"), (MANAGER_BIN, "manager"),
                    (BRIDGE_BIN, "bridge"), (RUNNER_BIN, "runner")]:
        need(b, f"build the {what}: cargo build --bins")
    if not shutil.which("node"):
        pytest.fail("node not found; scripts/setup.sh installs it (the bridge runs npm server-everything)", pytrace=False)
    for f in [MCP_EVERYTHING, MCP_TIME]:
        if not f.is_file():
            pytest.fail(f"{f} not found; scripts/setup.sh installs it", pytrace=False)
    prometheus_bin = shutil.which("prometheus")
    if not prometheus_bin:
        pytest.fail("prometheus not found; scripts/setup.sh installs Debian's prometheus package", pytrace=False)
    for f in [ALERT_RULES, VLLM_FIXTURE, *DASHBOARDS]:
        assert f.is_file(), f"{f} is missing"
    assert DASHBOARDS, "no dashboards in dashboards/"

    tmp = tmp_path_factory.mktemp("monitoring")
    procs: list[Proc] = []
    servers = []
    try:
        files, files_url = serve(FileHandler)
        vllm, vllm_url = serve(VllmStandIn)
        servers += [files, vllm]
        dead = f"http://127.0.0.1:{free_port()}"

        router_port, prober_port, manager_port, prom_port = (free_port() for _ in range(4))
        bridge_port, runner_port, model_port = (free_port() for _ in range(3))
        router_url = f"http://127.0.0.1:{router_port}"
        manager_url = f"http://127.0.0.1:{manager_port}"
        (tmp / "router").mkdir()
        (tmp / "router.toml").write_text(router_toml(router_port, tmp / "router", llama_server.url, free_port()))
        (tmp / "manager.toml").write_text(manager_toml(manager_port, tmp, files_url, dead))
        (tmp / "prober.toml").write_text(
            prober_toml(prober_port, llama_server.url, router_url, manager_url, dead)
        )

        procs.append(launch([str(ROUTER_BIN), "--config", str(tmp / "router.toml")],
                            tmp / "router.log", router_port, "/readyz", "hwc-model-router"))
        procs.append(launch([str(MANAGER_BIN), "--config", str(tmp / "manager.toml")],
                            tmp / "manager.log", manager_port, "/healthz", "hwc-model-manager"))
        procs.append(launch([str(PROBER_BIN), "--config", str(tmp / "prober.toml")],
                            tmp / "prober.log", prober_port, "/healthz", "hwc-health-prober"))
        (tmp / "bridge.toml").write_text(bridge_toml(bridge_port))
        # /readyz: the required servers (everything, time) run; the crashing one is not required.
        procs.append(launch([str(BRIDGE_BIN), "--config", str(tmp / "bridge.toml")],
                            tmp / "bridge.log", bridge_port, "/readyz", "hwc-mcp-bridge"))
        model = start([sys.executable, str(SCRIPTED_MODEL), str(model_port)], tmp / "model.log", model_port)
        procs.append(model)
        (tmp / "runner").mkdir()
        (tmp / "runner.toml").write_text(runner_toml(runner_port, tmp / "runner", model.url))
        procs.append(launch([str(RUNNER_BIN), "--config", str(tmp / "runner.toml")],
                            tmp / "runner.log", runner_port, "/readyz", "hwc-agent-runner"))

        hostport = lambda url: url.removeprefix("http://")  # noqa: E731
        jobs = [
            ("hwc-router", hostport(router_url), {"component": "router"}),
            ("hwc-health-prober", f"127.0.0.1:{prober_port}", {"component": "health-prober"}),
            ("hwc-model-manager", hostport(manager_url), {"component": "model-manager"}),
            ("hwc-mcp-bridge", f"127.0.0.1:{bridge_port}", {"component": "mcp-bridge"}),
            ("hwc-agent-runner", f"127.0.0.1:{runner_port}", {"component": "agent-runner"}),
            ("hwc-llama-cpp", hostport(llama_server.url), {"component": "llama-cpp", "model": "smollm2"}),
            ("hwc-vllm-gpt-oss-20b", hostport(vllm_url), {"component": "vllm", "model": "openai/gpt-oss-20b"}),
        ]
        (tmp / "prometheus.yml").write_text(prometheus_yml(jobs))
        check = subprocess.run(
            ["promtool", "check", "config", str(tmp / "prometheus.yml")], capture_output=True, text=True
        )
        assert check.returncode == 0, f"promtool check config:\n{check.stdout}{check.stderr}"
        procs.append(launch(
            [prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
            tmp / "prometheus.log", prom_port, "/-/ready", "prometheus"))
        prom = Prometheus(f"http://127.0.0.1:{prom_port}")
        yield {"prom": prom, "router": router_url, "jobs": jobs, "procs": procs, "tmp": tmp,
               "urls": {"router": router_url, "manager": manager_url,
                        "prober": f"http://127.0.0.1:{prober_port}",
                        "bridge": f"http://127.0.0.1:{bridge_port}",
                        "runner": f"http://127.0.0.1:{runner_port}"}}
    finally:
        for p in reversed(procs):
            p.stop()
        for s in servers:
            s.shutdown()


def drive_traffic(router_url: str) -> int:
    """Requests through the router: plain, streamed, escalated, fallen back,
    and one unknown model. Returns how many model requests were answered."""
    import openai

    client = openai.OpenAI(base_url=router_url + "/v1", api_key="sk-ops", max_retries=0, timeout=60)
    msg = [{"role": "user", "content": "Say hi."}]
    sent = 0

    def chat(model: str, stream: bool = False, **kw) -> None:
        nonlocal sent
        sent += 1
        r = client.chat.completions.create(model=model, messages=msg, max_tokens=6, stream=stream, **kw)
        if stream:
            for _ in r:
                pass

    for _ in range(4):
        chat("small")
        chat("small", stream=True)
        chat("auto")
        chat("auto", extra_headers={"x-hwc-escalate": "strong"})
        chat("resilient")
    # An unknown model is refused before routing: an HTTP-level 404, not
    # a model request, so it is not in `sent`.
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=msg, max_tokens=4)
    return sent


def http_post(url: str, body: dict, headers: dict | None = None, timeout: float = 15) -> tuple[int, dict, dict]:
    """(status, headers, JSON body or {}) of a JSON POST."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, hdrs, text = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, e.headers, e.read()
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        doc = {}
    return status, {k.lower(): v for k, v in hdrs.items()}, doc


MCP_INITIALIZE = {"method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}}}


class Mcp:
    """A session-era MCP client of one bridge server, over plain HTTP
    (docs/mcp-bridge.md): initialize, then every request with the session."""

    def __init__(self, bridge_url: str, server: str) -> None:
        self.url = f"{bridge_url}/mcp/{server}"
        self.ids = 0
        self.session: str | None = None

    def initialize(self) -> "Mcp":
        status, headers, doc = self.post(MCP_INITIALIZE)
        assert status == 200 and "mcp-session-id" in headers, (self.url, status, doc)
        self.session = headers["mcp-session-id"]
        status, _, _ = self.post({"method": "notifications/initialized"}, notification=True)
        assert status == 202, status
        return self

    def post(self, msg: dict, notification: bool = False) -> tuple[int, dict, dict]:
        headers = {"accept": "application/json, text/event-stream"}
        if self.session:
            headers |= {"mcp-session-id": self.session, "mcp-protocol-version": "2025-11-25"}
        if not notification:
            self.ids += 1
            msg = {"id": self.ids, **msg}
        return http_post(self.url, {"jsonrpc": "2.0", **msg}, headers)

    def call(self, tool: str, arguments: dict) -> dict:
        status, _, doc = self.post({"method": "tools/call", "params": {"name": tool, "arguments": arguments}})
        assert status == 200, (tool, status, doc)
        return doc


def drive_bridge(everything: Mcp, clock: Mcp) -> None:
    """One round of tools/call through the bridge, each outcome once: answered,
    refused by the bridge's policy, timed out (a third of the calls to
    `everything`: HwcMcpCallsFailing), a tool's own error result (not a
    failure of the bridge). `live` runs two rounds some scrapes apart, so
    every series grows after Prometheus first saw it (the rate() of a
    series born at its final value is 0, and a latency quantile NaN)."""
    assert "result" in everything.call("echo", {"message": "hi"})
    assert everything.call("get-env", {})["error"]["code"] == -32602  # denied_tools
    assert everything.call("trigger-long-running-operation", {"duration": 4, "steps": 2})["error"]["code"] == -32001
    assert not clock.call("get_current_time", {"timezone": "Etc/UTC"})["result"].get("isError")
    assert clock.call("get_current_time", {"timezone": "Nowhere/Nothing"})["result"]["isError"] is True


def drive_runner(runner_url: str) -> None:
    """Three jobs of the scripted model: one only looks and completes; one
    proposes a restart (R2 in dev) whose approval is rejected, then
    finishes; one is left waiting for its approval."""
    alice = {"authorization": f"Bearer {RUNNER_TOKENS['alice'][1]}"}
    bob = {"authorization": f"Bearer {RUNNER_TOKENS['bob'][1]}"}

    def job(goal: str) -> str:
        status, _, doc = http_post(f"{runner_url}/agent/jobs", {"goal": goal, "environment": "dev"}, alice)
        assert status == 201, (status, doc)
        return doc["id"]

    def wait(id: str, states: set[str]) -> dict:
        deadline = time.monotonic() + 30
        doc: dict = {}
        while time.monotonic() < deadline:
            status, body = http_get(f"{runner_url}/agent/jobs/{id}", headers=alice)
            doc = json.loads(body) if status == 200 else {}
            if doc.get("state") in states:
                return doc
            time.sleep(0.2)
        pytest.fail(f"job {id} never reached {sorted(states)}: {doc}", pytrace=False)

    looked, rejected, waiting = job("how long has the host been up (uptime)?"), job("why is demo-web.service down?"), \
        job("is demo-web.service still down?")
    assert wait(looked, {"completed", "failed"})["state"] == "completed"
    wait(rejected, {"waiting_approval"})
    status, _, doc = http_post(f"{runner_url}/agent/jobs/{rejected}/reject", {"comment": "not now"}, bob)
    assert status == 200 and doc.get("rejected"), (status, doc)
    assert wait(rejected, {"completed", "failed"})["state"] == "completed"
    assert wait(waiting, {"waiting_approval"})["pending"]["risk"] == "R2"


def wait_for(prom: Prometheus, expr: str, ok, what: str, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    result: list = []
    while time.monotonic() < deadline:
        doc = prom.query(expr)
        result = doc.get("data", {}).get("result", [])
        if doc.get("status") == "success" and ok(result):
            return result
        time.sleep(0.5)
    pytest.fail(f"{what}: `{expr}` gave {result!r} after {timeout:.0f}s", pytrace=False)


@pytest.fixture(scope="module")
def live(stack):
    """The stack after traffic, with Prometheus holding the results."""
    prom: Prometheus = stack["prom"]
    jobs = stack["jobs"]
    wait_for(prom, 'up{host="e2e"} == 1', lambda r: len(r) == len(jobs), "every target scraped and up")
    urls = stack["urls"]
    everything, clock = (Mcp(urls["bridge"], s).initialize() for s in ("everything", "time"))
    drive_bridge(everything, clock)
    # The crashing server is never up: its initialize is refused.
    status, _, _ = Mcp(urls["bridge"], "crashing").post(MCP_INITIALIZE)
    assert status == 503, status
    drive_runner(urls["runner"])
    sent = drive_traffic(stack["router"])
    wait_for(prom, "sum(hwc_router_requests_total)",
             lambda r: r and float(r[0]["value"][1]) >= sent, "the router's requests scraped")
    wait_for(prom, "sum(hwc_router_fallbacks_total)", lambda r: r and float(r[0]["value"][1]) >= 1,
             "a fallback counted")
    wait_for(prom, 'sum(hwc_router_route_decisions_total{decision="auto-strong"})',
             lambda r: r and float(r[0]["value"][1]) >= 1, "an escalation counted")
    wait_for(prom, 'hwc_manager_model_present{model="tiny"} == 1', bool, "the file model placed", 60)
    wait_for(prom, 'hwc_manager_model_failed{model="corrupt"} == 1', bool, "the corrupt model failed", 60)
    drive_bridge(everything, clock)
    wait_for(prom, "sum by (server) (hwc_bridge_calls_total)",
             lambda r: {s["metric"]["server"]: float(s["value"][1]) for s in r} == {"everything": 6, "time": 4},
             "the bridge's calls scraped")
    wait_for(prom, 'increase(hwc_bridge_child_restarts_total{server="crashing"}[15m]) > 3', bool,
             "the crashing child's restarts counted")
    wait_for(prom, "hwc_runner_approvals_waiting == 1", bool, "the job waiting for approval")
    wait_for(prom, "hwc_runner_approval_wait_seconds_count == 1", bool, "the rejected approval counted")
    # The router's traffic once more: the waits above can take over a
    # minute on a slow machine, and a panel's rate(...[1m]) would then see
    # no stream's time to first token (CI failed on that once).
    sent += drive_traffic(stack["router"])
    wait_for(prom, "sum(hwc_router_requests_total)",
             lambda r: r and float(r[0]["value"][1]) >= sent, "the router's second round scraped")
    # A few more scrapes so every rate() window holds two points after the traffic.
    time.sleep(3)
    return stack


# --------------------------------------------------------------------------
# the checks


def substitute(expr: str) -> str:
    def var(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in GRAFANA_VARS:
            raise AssertionError(f"unknown Grafana variable ${name} in `{expr}`")
        return GRAFANA_VARS[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", var, expr)


def panels_of(dashboard: dict):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])  # collapsed rows


def has_value(result: list) -> bool:
    for series in result:
        values = [series["value"]] if "value" in series else series.get("values", [])
        for _, v in values:
            if not math.isnan(float(v)):
                return True
    return False


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_has_data(live, path: Path) -> None:
    """Every panel query of the dashboard parses and returns data (a value
    that is not NaN) from the live stack; a panel without fails by title."""
    prom: Prometheus = live["prom"]
    dashboard = json.loads(path.read_text())
    problems = []
    checked = 0
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                continue
            checked += 1
            q = substitute(expr)
            doc = prom.query(q)
            if doc.get("status") != "success":
                problems.append(f"panel {panel.get('title')!r}: `{q}` does not evaluate: {doc.get('error')}")
            elif not has_value(doc["data"]["result"]):
                problems.append(f"panel {panel.get('title')!r}: no data for `{q}`")
    assert checked, f"{path.name} has no panel queries"
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_template_variables_have_values(live, path: Path) -> None:
    """Each `label_values(metric, label)` variable lists values from the live stack."""
    prom: Prometheus = live["prom"]
    dashboard = json.loads(path.read_text())
    problems = []
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        query = v.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"\s*label_values\((?:(.+),\s*)?(\w+)\)\s*", query or "")
        assert m, f"variable {v.get('name')}: unsupported query {query!r}"
        params = {"match[]": substitute(m.group(1))} if m.group(1) else {}
        doc = prom.api(f"label/{m.group(2)}/values", **params)
        if doc.get("status") != "success" or not doc.get("data"):
            problems.append(f"variable {v.get('name')!r}: `{query}` has no values ({doc})")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_alert_rules_load_and_evaluate(live) -> None:
    """Prometheus loaded every rule of the module's rule file, evaluates each
    without error, and each expression parses as a query on its own."""
    prom: Prometheus = live["prom"]
    # Rules evaluate every second; give each group one evaluation after the traffic.
    time.sleep(2)
    doc = prom.api("rules")
    assert doc.get("status") == "success", doc
    rules = [r for g in doc["data"]["groups"] for r in g["rules"]]
    assert rules, f"no rules loaded from {ALERT_RULES}"
    bad = [f"{r['name']}: health={r.get('health')} {r.get('lastError', '')}" for r in rules
           if r.get("health") != "ok"]
    assert not bad, "rules that do not evaluate:\n" + "\n".join(bad)
    for r in rules:
        q = prom.query(r["query"])
        assert q.get("status") == "success", f"{r['name']}: `{r['query']}`: {q.get('error')}"


def test_alerts_fire_for_what_the_stack_breaks(live) -> None:
    """The conditions the stack creates on purpose (a dead cloud backend, a
    down target, a model with a wrong checksum) make their alerts pending or
    firing: the rules match the labels the daemons really export."""
    prom: Prometheus = live["prom"]
    deadline = time.monotonic() + 30
    active: dict[str, str] = {}
    while time.monotonic() < deadline:
        doc = prom.api("alerts")
        active = {a["labels"]["alertname"]: a["state"] for a in doc.get("data", {}).get("alerts", [])}
        if EXPECTED_ACTIVE <= active.keys():
            break
        time.sleep(1)
    missing = EXPECTED_ACTIVE - active.keys()
    assert not missing, f"alerts not pending or firing: {sorted(missing)}; active: {active}"
    healthy = {"HwcComponentDown"} & active.keys()
    assert not healthy, f"alerts active on a healthy part of the stack: {active}"


@pytest.mark.parametrize("daemon", ["router", "prober", "manager", "bridge", "runner"])
def test_metrics_pass_promtool(live, daemon: str) -> None:
    """Each daemon's /metrics, after traffic, is clean for `promtool check metrics`."""
    status, body = http_get(live["urls"][daemon] + "/metrics")
    assert status == 200, (status, body[:200])
    out = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert out.returncode == 0, (out.stdout + out.stderr).decode()
    assert not (out.stdout + out.stderr).strip(), (out.stdout + out.stderr).decode()


def test_logs_have_no_panics(live) -> None:
    for p in live["procs"]:
        text = p.log.read_text(errors="replace")
        assert "panicked" not in text, f"{p.log}:\n{log_tail(p.log)}"

