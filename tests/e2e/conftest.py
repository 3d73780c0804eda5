"""Session fixtures for the router's end-to-end tests.

They start two real processes and stop them when the session ends:

* llama.cpp's ``llama-server`` serving SmolLM2-135M-Instruct on a free port
  (``scripts/test-runtime.sh`` builds and caches both);
* ``hwc-model-router`` on another free port, with a config and keys file
  written to a temporary directory. Its ``llama`` backend is the llama-server
  above, and its ``cloud`` backend points at a port nothing listens on.

Environment overrides: ``LLAMA_SERVER`` (binary), ``HWC_TEST_MODEL`` (GGUF
file), ``HWC_ROUTER_BIN`` (router binary; default
``<repo>/target/debug/hwc-model-router``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import openai
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwc-ai"

LLAMA_SERVER = Path(
    os.environ.get("LLAMA_SERVER") or CACHE / "llama.cpp" / "build" / "bin" / "llama-server"
)
TEST_MODEL = Path(
    os.environ.get("HWC_TEST_MODEL") or CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
)
ROUTER_BIN = Path(
    os.environ.get("HWC_ROUTER_BIN") or REPO_ROOT / "target" / "debug" / "hwc-model-router"
)

LLAMA_START_TIMEOUT = 120.0
ROUTER_START_TIMEOUT = 30.0

KEYS_TOML = """\
[[keys]]
name = "alice"
secret = "sk-alice"

[[keys]]
name = "local"
secret = "sk-local"
privacy = "local-only"

[[keys]]
name = "limited"
secret = "sk-limited"
requests_per_minute = 1
"""


def free_port() -> int:
    """A TCP port that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 2.0, headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET; status 0 when nothing answered."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
        return 0, b""


def log_tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


@dataclass
class Proc:
    """A process the fixtures started, its address and its log."""

    popen: subprocess.Popen
    url: str
    log: Path

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        return self.popen.returncode


def wait_until_ready(proc: Proc, path: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last = (0, b"")
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            pytest.fail(
                f"{what} exited with code {proc.popen.returncode} before it was ready; "
                f"last lines of {proc.log}:\n{log_tail(proc.log)}",
                pytrace=False,
            )
        last = http_get(proc.url + path)
        if last[0] == 200:
            return
        time.sleep(0.2)
    proc.stop()
    pytest.fail(
        f"{what} was not ready within {timeout:.0f}s (last GET {path}: {last[0]} {last[1][:200]!r}); "
        f"last lines of {proc.log}:\n{log_tail(proc.log)}",
        pytrace=False,
    )


def start(cmd: list[str], log: Path, port: int) -> Proc:
    fh = open(log, "wb")
    try:
        popen = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )
    finally:
        fh.close()
    return Proc(popen=popen, url=f"http://127.0.0.1:{port}", log=log)


# --------------------------------------------------------------------------
# llama-server


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Proc:
    if not (LLAMA_SERVER.is_file() and os.access(LLAMA_SERVER, os.X_OK)):
        pytest.fail(
            f"llama-server not found at {LLAMA_SERVER}; run scripts/test-runtime.sh "
            "(or set LLAMA_SERVER to a llama-server binary)",
            pytrace=False,
        )
    if not TEST_MODEL.is_file():
        pytest.fail(
            f"test model not found at {TEST_MODEL}; run scripts/test-runtime.sh "
            "(or set HWC_TEST_MODEL to a GGUF file)",
            pytrace=False,
        )
    tmp = tmp_path_factory.mktemp("llama")
    proc = None
    # The port is free when picked but another process could take it before
    # llama-server binds; try a few ports before giving up.
    for attempt in range(3):
        port = free_port()
        log = tmp / f"llama-server-{attempt}.log"
        proc = start(
            [
                str(LLAMA_SERVER),
                "-m", str(TEST_MODEL),
                "--host", "127.0.0.1",
                "--port", str(port),
                "--metrics",
                # 4096 tokens a slot: a Codex turn (tests/e2e/test_codex_cli.py)
                # is about 2.2k tokens of instructions and tools. An answer
                # is cut at 256 tokens where the request sets no limit, so
                # the bigger context does not make unbounded answers slow.
                "-c", "8192",
                "-n", "256",
                "-t", "2",
                "-np", "2",
            ],
            log,
            port,
        )
        time.sleep(0.3)
        if proc.popen.poll() is None:
            break
        if "bind" not in log_tail(proc.log).lower():
            break
    assert proc is not None
    try:
        # /health answers 503 while the model loads and 200 {"status":"ok"} after.
        wait_until_ready(proc, "/health", LLAMA_START_TIMEOUT, "llama-server")
        yield proc
    finally:
        proc.stop()


# --------------------------------------------------------------------------
# the router


@dataclass
class Router:
    """A running router and what it was configured with."""

    proc: Proc
    url: str
    config: Path
    dir: Path

    def client(self, api_key: str = "sk-alice", **kw) -> openai.OpenAI:
        """An official SDK client for this router. No retries: a test that
        expects an error must see the first answer, and a 429's Retry-After
        (up to 60 s) must not make the SDK sleep."""
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 60.0)
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, **kw)


def router_config(
    *, port: int, keys_file: Path, database: Path, llama_url: str, dead_port: int
) -> str:
    return f"""\
[server]
listen = "127.0.0.1:{port}"

[auth]
keys_file = {json.dumps(str(keys_file))}

[state]
database = {json.dumps(str(database))}

[[backends]]
name = "llama"
kind = "openai"
locality = "local"
urls = ["{llama_url}/v1"]

[[backends]]
name = "cloud"
kind = "openai"
locality = "cloud"
urls = ["http://127.0.0.1:{dead_port}/v1"]

[models.small]
targets = [{{ backend = "llama", model = "smollm2" }}]

[models.cloudonly]
targets = [{{ backend = "cloud", model = "gpt" }}]

[aliases]
default = "small"

[auto]
default_model = "small"
"""


def start_router(tmp: Path, llama_url: str) -> Router:
    if not (ROUTER_BIN.is_file() and os.access(ROUTER_BIN, os.X_OK)):
        pytest.fail(
            f"router binary not found at {ROUTER_BIN}; run `cargo build -p hwc-model-router` "
            f"in {REPO_ROOT} (or set HWC_ROUTER_BIN)",
            pytrace=False,
        )
    keys = tmp / "keys.toml"
    keys.write_text(KEYS_TOML)
    proc = None
    for attempt in range(3):
        port = free_port()
        # A port nothing listens on: picked free and never bound.
        dead_port = free_port()
        config = tmp / "router.toml"
        config.write_text(
            router_config(
                port=port,
                keys_file=keys,
                database=tmp / "router.sqlite",
                llama_url=llama_url,
                dead_port=dead_port,
            )
        )
        log = tmp / f"router-{attempt}.log"
        proc = start([str(ROUTER_BIN), "--config", str(config)], log, port)
        time.sleep(0.3)
        if proc.popen.poll() is None:
            break
        if "address" not in log_tail(proc.log).lower():
            break
    assert proc is not None
    wait_until_ready(proc, "/readyz", ROUTER_START_TIMEOUT, "hwc-model-router")
    return Router(proc=proc, url=proc.url, config=config, dir=tmp)


def tokens_today(router: Router, key: str = "sk-alice", name: str = "alice") -> int:
    """Tokens the router charged key `name` today, from its /status."""
    status, body = http_get(router.url + "/status", headers={"Authorization": f"Bearer {key}"})
    assert status == 200, body
    return json.loads(body)["usage"]["tokens_by_key"].get(name, 0)


def requests_by_outcome(router: Router, model: str) -> dict[str, float]:
    """hwc_router_requests_total for `model`, by outcome."""
    status, body = http_get(router.url + "/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("hwc_router_requests_total{") and f'model="{model}"' in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = out.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def start_router_with(tmp: Path, config: Path, port: int) -> Router:
    """A router on `port` with the config file `config` a test wrote
    itself, ready; the caller stops it (``router.proc.stop()``)."""
    proc = start([str(ROUTER_BIN), "--config", str(config)], tmp / "router.log", port)
    wait_until_ready(proc, "/readyz", ROUTER_START_TIMEOUT, "hwc-model-router")
    return Router(proc=proc, url=proc.url, config=config, dir=tmp)


@pytest.fixture(scope="session")
def router(llama_server: Proc, tmp_path_factory: pytest.TempPathFactory) -> Router:
    r = start_router(tmp_path_factory.mktemp("router"), llama_server.url)
    try:
        yield r
    finally:
        r.proc.stop()


@pytest.fixture(scope="session")
def router_factory(
    llama_server: Proc, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], Router]:
    """Starts extra routers (for tests that stop them); all stopped at the end."""
    started: list[Router] = []

    def make() -> Router:
        r = start_router(tmp_path_factory.mktemp("router-extra"), llama_server.url)
        started.append(r)
        return r

    try:
        yield make
    finally:
        for r in started:
            r.proc.stop()


@pytest.fixture
def alice(router: Router) -> openai.OpenAI:
    return router.client("sk-alice")
