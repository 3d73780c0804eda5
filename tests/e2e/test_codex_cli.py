"""The real Codex CLI (npm ``@openai/codex``) through the router.

Codex speaks only the Responses API, so these are the two ways a Codex user
reaches a model behind the router:

* **translated**: a backend that speaks only chat completions. It is
  scripted here (a small HTTP server in this file) because the one model the
  tests can run, SmolLM2-135M, does not call tools: its first answer is an
  ``exec_command`` call, its second an ``apply_patch`` edit (Codex's
  freeform tool, which has to come back as a ``custom_tool_call`` or the
  edit silently never happens), its third a summary. Codex runs the command
  and applies the patch for real in a temporary workspace.
* **passthrough**: llama-server's own ``/v1/responses``, serving SmolLM2.

After each, the router's books are checked: every turn ``ok`` (Codex closes
the connection right after ``response.completed``, which once made every
turn a cancellation with no tokens) and its tokens charged to the key.

Environment: ``HWC_CODEX_BIN`` (default: the copy scripts/setup.sh installs
under ``~/.cache/hwc-ai/npm``), plus conftest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import conftest
from conftest import CACHE, Router, free_port, requests_by_outcome, tokens_today

CODEX_BIN = Path(
    os.environ.get("HWC_CODEX_BIN") or CACHE / "npm" / "node_modules" / ".bin" / "codex"
)

# A model catalog entry: without one Codex uses "fallback metadata" for an
# unknown model and offers no apply_patch tool at all. docs/model-router.md
# shows operators the same file.
CATALOG_ENTRY = {
    "display_name": "",
    "description": "served through hwc-model-router",
    "apply_patch_tool_type": "freeform",
    "shell_type": "shell_command",
    "input_modalities": ["text"],
    "truncation_policy": {"mode": "tokens", "limit": 10000},
    "supports_parallel_tool_calls": False,
    "context_window": 8192,
    "default_reasoning_level": "low",
    "supported_reasoning_levels": [{"effort": "low", "description": "low"}],
    "visibility": "list",
    "supported_in_api": True,
    "priority": 1,
    "support_verbosity": False,
    "experimental_supported_tools": [],
    "base_instructions": (
        "You are a coding agent running in the Codex CLI. Run commands with "
        "exec_command and edit files with apply_patch. Keep answers short."
    ),
}

# Codex's own extras (sub-agents, goals, skills, plugins, image tools) are
# turned off so the prompt fits a small model's context; the tools a coding
# turn needs (exec_command, apply_patch) stay.
CODEX_CONFIG = """\
model = "{model}"
model_provider = "hwc"
model_catalog_json = {catalog}
web_search = "disabled"
check_for_update_on_startup = false

[model_providers.hwc]
name = "hwc-model-router"
base_url = "{base_url}/v1"
env_key = "HWC_KEY"
wire_api = "responses"

[features]
multi_agent = false
goals = false
skill_search = false
plugins = false
apps = false
image_generation = false
tool_suggest = false
view_image = false

[skills.bundled]
enabled = false
"""

PATCH = """\
*** Begin Patch
*** Update File: notes.txt
@@
-The colour of the sky.
+The color of the sky.
*** End Patch
"""


# --------------------------------------------------------------------------
# a scripted chat-completions upstream


class ScriptedChat(BaseHTTPRequestHandler):
    """Answers each chat request by where the conversation stands: no tool
    result yet -> run a command; the command's output -> apply a patch; the
    patch's result -> a summary. Every request body is kept."""

    protocol_version = "HTTP/1.1"
    requests: list[dict] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).requests.append(body)
        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        if not tool_results:
            delta = {"tool_calls": [{"index": 0, "id": "call_cat", "type": "function",
                                     "function": {"name": "exec_command",
                                                  "arguments": '{"cmd": "cat notes.txt"}'}}]}
            finish = "tool_calls"
        elif len(tool_results) == 1:
            delta = {"tool_calls": [{"index": 0, "id": "call_patch", "type": "function",
                                     "function": {"name": "apply_patch",
                                                  "arguments": json.dumps({"input": PATCH})}}]}
            finish = "tool_calls"
        else:
            delta = {"content": "Changed colour to color in notes.txt."}
            finish = "stop"
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", **delta}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
            {"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 10,
                                      "total_tokens": 110}},
        ]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for c in chunks:
            c.update(id="chatcmpl-1", object="chat.completion.chunk", created=1, model="m")
            self.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        # Keep the connection a moment, as real servers do: the client must
        # not need the upstream to close for the turn to count.
        time.sleep(0.2)
        self.close_connection = True


@pytest.fixture(scope="module")
def scripted_chat():
    ScriptedChat.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", ScriptedChat.requests
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def codex_router(llama_server, scripted_chat, tmp_path_factory) -> Router:
    """A router with a translated model (`coder`, the scripted upstream) and
    a passed-through one (`smol`, llama-server's /v1/responses)."""
    tmp = tmp_path_factory.mktemp("codex-router")
    keys = tmp / "keys.toml"
    keys.write_text(conftest.KEYS_TOML)
    port = free_port()
    config = tmp / "router.toml"
    config.write_text(f"""\
[server]
listen = "127.0.0.1:{port}"

[auth]
keys_file = {json.dumps(str(keys))}

[state]
database = {json.dumps(str(tmp / "router.sqlite"))}

[[backends]]
name = "chat-only"
kind = "openai"
locality = "local"
urls = ["{scripted_chat[0]}/v1"]

[[backends]]
name = "llama"
kind = "openai"
locality = "local"
responses_api = true
urls = ["{llama_server.url}/v1"]

[models.coder]
targets = [{{ backend = "chat-only", model = "m" }}]

[models.smol]
targets = [{{ backend = "llama", model = "smollm2" }}]
""")
    router = conftest.start_router_with(tmp, config, port)
    try:
        yield router
    finally:
        router.proc.stop()


def codex_exec(router: Router, model: str, prompt: str, workspace: Path,
               timeout: float = 240) -> list[dict]:
    """`codex exec --json` in `workspace` against the router; its events."""
    if not (CODEX_BIN.exists() and os.access(CODEX_BIN, os.X_OK)):
        pytest.fail(f"codex not found at {CODEX_BIN}; run scripts/setup.sh "
                    "(or set HWC_CODEX_BIN)", pytrace=False)
    home = workspace.parent / f"codex-home-{model}"
    home.mkdir(exist_ok=True)
    catalog = home / "catalog.json"
    catalog.write_text(json.dumps({"models": [
        {**CATALOG_ENTRY, "slug": model, "display_name": model}]}))
    (home / "config.toml").write_text(CODEX_CONFIG.format(
        model=model, catalog=json.dumps(str(catalog)), base_url=router.url))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home),
           "HWC_KEY": "sk-alice", "RUST_LOG": "warn"}
    # Codex's own sandbox (bubblewrap) is not what is tested here, and the
    # workspace is a throwaway directory.
    cmd = [str(CODEX_BIN), "exec", "--json", "--skip-git-repo-check", "--ephemeral",
           "--dangerously-bypass-approvals-and-sandbox", prompt]
    r = subprocess.run(cmd, cwd=workspace, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0, (
        f"codex exited {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}"
        f"\nrouter log:\n{conftest.log_tail(router.proc.log)}")
    return events


def items(events: list[dict], kind: str) -> list[dict]:
    return [e["item"] for e in events
            if e.get("type") == "item.completed" and e["item"].get("type") == kind]


def test_codex_runs_a_command_and_applies_a_patch_through_translation(
        codex_router: Router, scripted_chat, tmp_path: Path) -> None:
    _, upstream = scripted_chat
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("The colour of the sky.\n")
    before = tokens_today(codex_router)

    events = codex_exec(codex_router, "coder", "Fix the spelling in notes.txt.", workspace)

    # Codex ran the command, and its real output went back to the model.
    commands = items(events, "command_execution")
    assert [c["command"] for c in commands][:1] and "cat notes.txt" in commands[0]["command"]
    assert commands[0]["exit_code"] == 0
    second = upstream[1]["messages"]
    assert second[-1]["role"] == "tool" and "The colour of the sky." in second[-1]["content"]
    # The freeform tool was offered as a function taking `input`, its call
    # came back as Codex's apply_patch, and the edit is on disk.
    offered = {t["function"]["name"]: t["function"] for t in upstream[0]["tools"]}
    assert offered["apply_patch"]["parameters"]["required"] == ["input"]
    assert "lark grammar" in offered["apply_patch"]["description"]
    assert items(events, "file_change"), events
    assert (workspace / "notes.txt").read_text() == "The color of the sky.\n"
    # The earlier turns were sent back whole (Codex sends store: false).
    third = upstream[2]["messages"]
    calls = [c["function"]["name"] for m in third for c in m.get("tool_calls") or []]
    assert calls == ["exec_command", "apply_patch"]
    assert "Changed colour to color" in items(events, "agent_message")[-1]["text"]

    # Three turns, each booked ok with its usage.
    assert len(upstream) == 3
    assert requests_by_outcome(codex_router, "coder") == {"ok": 3.0}
    assert tokens_today(codex_router) - before == 3 * 110


def test_codex_against_llama_server_responses_passthrough(
        codex_router: Router, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    before = tokens_today(codex_router)

    events = codex_exec(codex_router, "smol", "Say hello in one short sentence.", workspace)

    # SmolLM2 answers in prose (it does not call tools); what matters is that
    # the turn completed, the client got the answer, and it was booked.
    assert items(events, "agent_message"), events
    done = [e for e in events if e.get("type") == "turn.completed"]
    assert done and done[-1]["usage"]["input_tokens"] > 0, events
    outcomes = requests_by_outcome(codex_router, "smol")
    assert outcomes.get("ok", 0) >= 1 and "cancelled" not in outcomes, outcomes
    assert tokens_today(codex_router) - before >= done[-1]["usage"]["input_tokens"]
