#!/usr/bin/env python3
"""The model the agent runner talks to in the tests/vm guest and in the
NixOS VM test tests/nixos/agent-runner.nix: an OpenAI chat-completions
endpoint (streamed, as the runner asks) that answers each turn with the next
tool call of a script (chosen by the job's goal), then `finish`.

What the guest tests is the runner's unit under a real systemd: that each
tool works inside its sandbox (bubblewrap nested in the unit, the journal
through its group, netlink for `ss`, /proc for `free`, unit control over
D-Bus as far as polkit allows). A small real model would not make these
exact calls on demand (crates/hwc-agent-runner/tests/jobs.rs scripts its
model for the same reason; tests/llama.rs drives a real one). Python
standard library only: the guest has nothing else. tests/e2e/test_monitoring.py
runs it too, so the runner's job and approval metrics have data.

    python3 scripted_model.py PORT
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPT = [
    (
        "shell",
        {
            # The sandbox: its own hostname, user and network namespaces, and
            # the runner's state hidden but for the workspace.
            "command": "echo sandbox-ok; cat /proc/sys/kernel/hostname; cat /proc/self/uid_map; "
            "cat /proc/net/dev; ls -a /var/lib/hwc-ai/agent-runner",
            "rollback": "nothing to undo",
        },
    ),
    ("host_facts", {"what": "sockets"}),
    ("host_facts", {"what": "memory"}),
    ("journal", {"unit": "hwc-agent-runner.service", "lines": 5}),
    ("systemctl", {"verb": "restart", "unit": "agent-target.service"}),
    ("systemctl", {"verb": "restart", "unit": "bystander.service"}),
]
# A job on a repository (its goal says so): git inside its worktree.
REPO_SCRIPT = [
    ("shell", {"command": "git log --oneline -1; git status --short", "rollback": "nothing to undo"}),
]
# A job about demo-web.service (its goal names it; tests/nixos/agent-runner.nix):
# look at the failed unit, then restart it, which the policy there makes R2,
# so the job waits for an approval before the restart runs.
REPAIR_SCRIPT = [
    ("systemctl_status", {"unit": "demo-web.service"}),
    ("systemctl", {"verb": "restart", "unit": "demo-web.service"}),
]
# A job that only looks (its goal says "uptime"; tests/e2e/test_monitoring.py):
# one R0 call, then finish, so it completes without an approval.
LOOK_SCRIPT = [
    ("host_facts", {"what": "uptime"}),
]
FINISH = (
    "finish",
    {"summary": "tools checked", "findings": [], "unknowns": ["nothing else"]},
)


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> bytes:
    body: dict = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "scripted"}
    body["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *_args) -> None:
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        # Stateless: the turn is the number of tool results so far, so a
        # retried request gets the same answer.
        messages = request.get("messages", [])
        done = sum(1 for m in messages if m.get("role") == "tool")
        goal = " ".join(str(m.get("content")) for m in messages if m.get("role") == "user")
        if "demo-web" in goal:
            script = REPAIR_SCRIPT
        elif "repository" in goal:
            script = REPO_SCRIPT
        elif "uptime" in goal:
            script = LOOK_SCRIPT
        else:
            script = SCRIPT
        name, arguments = script[done] if done < len(script) else FINISH
        call = {"index": 0, "id": f"call_{done}", "type": "function"}
        call["function"] = {"name": name, "arguments": json.dumps(arguments)}
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(chunk({"role": "assistant", "tool_calls": [call]}))
        self.wfile.write(chunk({}, finish="tool_calls"))
        self.wfile.write(chunk(usage={"prompt_tokens": 100, "completion_tokens": 20}))
        self.wfile.write(b"data: [DONE]\n\n")


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
