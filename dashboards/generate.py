#!/usr/bin/env python3
"""Writes the hwc-ai Grafana dashboards (fleet, router, runtimes, agents) as JSON.

One place decides what every panel has: the datasource by uid
(``hwc-prometheus``, provisioned under that uid by modules/monitoring),
a unit, a description saying which question it answers, and queries
filtered by the ``host`` (and ``model``) template variables. The JSON is
committed so Grafana provisioning needs no build step.

    python3 dashboards/generate.py          # rewrite dashboards/*.json
    python3 dashboards/generate.py --check  # exit 1 if they are stale

tests/e2e/test_monitoring.py evaluates every query here against a live
Prometheus scraping the real daemons and fails on a panel without data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "hwc-prometheus"}
H = 'host=~"$host"'
HM = 'host=~"$host", model=~"$model"'
RI = "[$__rate_interval]"


def var(name: str, label: str, query: str) -> dict:
    """A multi-value query variable with "All" as `.*`."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


HOST_VAR = var("host", "Host", 'label_values(up{component!=""}, host)')


def target(expr: str, legend: str = "") -> dict:
    return {"expr": expr, "legendFormat": legend or "__auto", "datasource": DS}


def timeseries(title: str, desc: str, unit: str, *targets: dict, stack: bool = False) -> dict:
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "targets": list(targets),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "stacking": {"mode": "normal" if stack else "none"},
                    "axisSoftMin": 0,
                },
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
    }


def stat(title: str, desc: str, unit: str, *targets: dict, up_down: bool = False, red_at: float | None = None) -> dict:
    defaults: dict = {"unit": unit}
    if up_down:
        defaults["mappings"] = [
            {"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}
        ]
        defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}
    elif red_at is not None:
        defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": red_at}]}
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "targets": list(targets),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "value_and_name"},
    }


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def quantiles(metric: str, by: str, sel: str, qs=(0.5, 0.95, 0.99), window: str = RI) -> list[dict]:
    return [
        target(
            f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) (rate({metric}_bucket{{{sel}}}{window})))",
            f"p{round(q * 100)}{' {{' + by + '}}' if by else ''}",
        )
        for q in qs
    ]


def layout(panels: list[dict]) -> list[dict]:
    """Two panels a row (stats four), rows full width; stable ids."""
    x = y = 0
    row_h = 0
    out = []
    for i, p in enumerate(panels, start=1):
        p = dict(p, id=i)
        if p["type"] != "row":
            p["datasource"] = DS
            for j, t in enumerate(p["targets"]):
                t["refId"] = chr(ord("A") + j)
        w, h = (24, 1) if p["type"] == "row" else (6, 4) if p["type"] == "stat" else (12, 8)
        if x + w > 24 or p["type"] == "row":
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x += w
        row_h = max(row_h, h)
        out.append(p)
    return out


def dashboard(uid: str, title: str, desc: str, variables: list[dict], panels: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["hwc-ai"],
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "graphTooltip": 1,
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["hwc-ai"], "title": "hwc-ai", "asDropdown": True}],
        "templating": {"list": variables},
        "panels": layout(panels),
    }


def fleet() -> dict:
    return dashboard(
        "hwc-fleet",
        "hwc-ai fleet",
        "Is every runtime and daemon healthy, are the declared models there, is there disk left?",
        [HOST_VAR],
        [
            stat("Targets up", "How many of the prober's targets are up, of how many.", "short",
                 target(f"sum by (host) (hwc_prober_targets_up{{{H}}})", "{{host}} up"),
                 target(f"sum by (host) (hwc_prober_targets{{{H}}})", "{{host}} configured")),
            stat("Restart caps holding", "Units the prober stopped restarting this hour (needs a person); 0 is good.", "short",
                 target(f"sum(hwc_prober_restart_capped{{{H}}})", "capped"), red_at=1),
            stat("Models present", "Declared models present and checked, of how many declared; failed ones.", "short",
                 target(f"sum(hwc_manager_model_present{{{H}}})", "present"),
                 target(f"sum(hwc_manager_model_declared{{{H}}})", "declared"),
                 target(f"sum(hwc_manager_model_failed{{{H}}})", "failed")),
            stat("Since last reconcile", "Time since the model manager last reconciled the declared models.", "s",
                 target(f"time() - max by (host) (hwc_manager_last_reconcile_timestamp_seconds{{{H}}})", "{{host}}")),
            stat("Probe status", "Each prober target's last probe: up or down (Ollama, which has no metrics, shows here).", "short",
                 target(f"max by (host, target) (hwc_prober_probe_success{{{H}}})", "{{host}} {{target}}"), up_down=True),
            stat("Scraped components", "Whether Prometheus reaches each component's /metrics.", "short",
                 target(f'min by (host, component) (up{{{H}, component!=""}})', "{{host}} {{component}}"), up_down=True),
            timeseries("Probe latency p95 by kind", "How long probes take; a rising line is a runtime slowing down before it fails.", "s",
                       *quantiles("hwc_prober_probe_duration_seconds", "kind", H, qs=(0.95,))),
            timeseries("Restarts by unit", "Healing actions per unit and result over the last hour (restarted, dry_run, failed, capped).", "short",
                       target(f"sum by (host, unit, result) (increase(hwc_prober_restarts_total{{{H}}}[1h]))", "{{host}} {{unit}} {{result}}")),
            timeseries("Model disk free vs reserve", "Free bytes on each model filesystem against the reserve the manager keeps; pulls are refused below it.", "bytes",
                       target(f"max by (host, path) (hwc_manager_disk_free_bytes{{{H}}})", "{{host}} {{path}} free"),
                       target(f"max by (host, path) (hwc_manager_disk_reserve_bytes{{{H}}})", "{{host}} {{path}} reserve")),
            timeseries("Model pull throughput", "Bytes per second the model manager pulls or downloads, by model.", "Bps",
                       target(f"sum by (host, model) (rate(hwc_manager_pull_bytes_total{{{H}}}{RI}))", "{{host}} {{model}}")),
            timeseries("Models present by model", "1 while a declared model is present and checked, per model.", "short",
                       target(f"max by (host, model) (hwc_manager_model_present{{{H}}})", "{{host}} {{model}}")),
            timeseries("Probe schedule lateness p99", "How late the prober starts probes; seconds mean it is starved and notices failures late.", "s",
                       *quantiles("hwc_prober_schedule_lateness_seconds", "host", H, qs=(0.99,))),
        ],
    )


def router() -> dict:
    R = f"{HM}"
    return dashboard(
        "hwc-router",
        "hwc-ai router",
        "What the model router serves, how fast, what fails and falls back, and who spends the tokens.",
        [HOST_VAR, var("model", "Model", "label_values(hwc_router_requests_total, model)")],
        [
            row("Traffic and errors"),
            timeseries("Requests by model and outcome", "Model requests per second by resolved model and outcome (ok, upstream_error, rate_limited...).", "reqps",
                       target(f"sum by (model, outcome) (rate(hwc_router_requests_total{{{R}}}{RI}))", "{{model}} {{outcome}}"), stack=True),
            timeseries("Requests by backend", "Which backends answer: local runtimes and cloud providers.", "reqps",
                       target(f"sum by (backend) (rate(hwc_router_requests_total{{{R}}}{RI}))", "{{backend}}"), stack=True),
            timeseries("Upstream error ratio", "Share of requests that ended in upstream errors or cut streams (client errors excluded); the HwcRouterErrorRate alert fires above 5%.", "percentunit",
                       target(f'(sum(rate(hwc_router_requests_total{{{R}, outcome=~"upstream_error|stream_cut"}}{RI})) or vector(0)) / sum(rate(hwc_router_requests_total{{{R}}}{RI}))', "error ratio")),
            timeseries("Fallbacks by reason", "Attempts that failed over to the next target, by failing backend and reason (connect, timeout, status_5xx...).", "reqps",
                       target(f"sum by (backend, reason) (rate(hwc_router_fallbacks_total{{{R}}}{RI}))", "{{backend}} {{reason}}")),
            row("Latency"),
            timeseries("Request latency", "End-to-end latency of model requests, upstream time included.", "s",
                       *quantiles("hwc_router_request_duration_seconds", "", R)),
            timeseries("Time to first token by backend", "Streamed requests: time until the first token reaches the router.", "s",
                       *quantiles("hwc_router_time_to_first_token_seconds", "backend", R, qs=(0.5, 0.95))),
            timeseries("Router overhead", "Time the router itself adds (total minus upstream waiting); the HwcRouterOverheadHigh alert fires above 5 ms p99.", "s",
                       *quantiles("hwc_router_overhead_seconds", "", H, qs=(0.5, 0.99))),
            timeseries("HTTP responses by route and status", "Every HTTP answer, including auth failures and unknown routes.", "reqps",
                       target(f"sum by (route, status) (rate(hwc_router_http_requests_total{{{H}}}{RI}))", "{{route}} {{status}}")),
            row("Routing and capacity"),
            timeseries("Routing decisions and escalation reasons", "How requests were routed: direct, alias, or the auto model's default or escalation to the strong model (auto-strong), by the rule that decided (header, prompt_chars, tools, messages, marker).", "reqps",
                       target(f"sum by (decision, rule, model) (rate(hwc_router_route_decisions_total{{{R}}}{RI}))", "{{decision}} ({{rule}}) -> {{model}}")),
            stat("Backends in rotation", "Backends with a replica in rotation; down means every replica is cooling down after failures.", "short",
                 target(f"min by (host, backend) (hwc_router_backend_up{{{H}}})", "{{backend}}"), up_down=True),
            stat("Requests in flight", "Requests the router is handling now.", "short",
                 target(f"sum(hwc_router_http_requests_in_flight{{{H}}})", "in flight")),
            timeseries("Shed requests", "503 overloaded answers from the concurrency limit (server.max_concurrency).", "reqps",
                       target(f"sum by (host) (rate(hwc_router_http_shed_total{{{H}}}{RI}))", "{{host}} shed")),
            row("Tokens and budgets"),
            timeseries("Tokens by key", "Prompt and completion tokens per second, by API key.", "short",
                       target(f"sum by (key, kind) (rate(hwc_router_tokens_total{{{R}}}{RI}))", "{{key}} {{kind}}"), stack=True),
            timeseries("Daily budget used by key", "Share of each key's daily token budget used today (UTC); requests are refused at 100%.", "percentunit",
                       target(f"max by (key) (hwc_router_key_tokens_today{{{H}}} / hwc_router_key_budget_tokens{{{H}}})", "{{key}}")),
        ],
    )


def runtimes() -> dict:
    L = f'{HM}, component="llama-cpp"'
    V = f'{HM}, component="vllm"'
    return dashboard(
        "hwc-runtimes",
        "hwc-ai runtimes",
        "How hard the inference runtimes work: throughput, queues, KV cache and time to first token.",
        [HOST_VAR, var("model", "Model", 'label_values(up{component=~"llama-cpp|vllm"}, model)')],
        [
            row("llama.cpp"),
            timeseries("llama.cpp token throughput", "Prompt and generated tokens per second.", "short",
                       target(f"sum by (host, model) (rate(llamacpp:prompt_tokens_total{{{L}}}{RI}))", "{{model}} prompt"),
                       target(f"sum by (host, model) (rate(llamacpp:tokens_predicted_total{{{L}}}{RI}))", "{{model}} generated")),
            timeseries("llama.cpp queue", "Requests being processed and deferred (waiting for a free slot).", "short",
                       target(f"sum by (host, model) (llamacpp:requests_processing{{{L}}})", "{{model}} processing"),
                       target(f"sum by (host, model) (llamacpp:requests_deferred{{{L}}})", "{{model}} deferred")),
            timeseries("llama.cpp busy slots per decode", "Average slots busy per decode call: how much of the parallelism (-np) is used. llama.cpp exports no KV-cache usage.", "short",
                       target(f"max by (host, model) (llamacpp:n_busy_slots_per_decode{{{L}}})", "{{model}}")),
            timeseries("llama.cpp time to first token (via the router)", "llama.cpp exports no TTFT; this is the router's, for its llama-cpp backend.", "s",
                       *quantiles("hwc_router_time_to_first_token_seconds", "", f'{H}, backend="llama-cpp"', qs=(0.5, 0.95))),
            row("vLLM"),
            timeseries("vLLM requests running and waiting", "Requests in the running batch and queued; a growing queue means the instance is at capacity.", "short",
                       target(f"sum by (host, model) (vllm:num_requests_running{{{V}}})", "{{model}} running"),
                       target(f"sum by (host, model) (vllm:num_requests_waiting{{{V}}})", "{{model}} waiting")),
            timeseries("vLLM KV cache usage", "Fraction of KV-cache blocks in use; near 100% requests get preempted.", "percentunit",
                       target(f"max by (host, model) (vllm:kv_cache_usage_perc{{{V}}})", "{{model}}")),
            timeseries("vLLM time to first token", "Engine-side time to first token.", "s",
                       *quantiles("vllm:time_to_first_token_seconds", "model", V, qs=(0.5, 0.95))),
            timeseries("vLLM token throughput", "Prompt and generated tokens per second.", "short",
                       target(f"sum by (host, model) (rate(vllm:prompt_tokens_total{{{V}}}{RI}))", "{{model}} prompt"),
                       target(f"sum by (host, model) (rate(vllm:generation_tokens_total{{{V}}}{RI}))", "{{model}} generated")),
            timeseries("vLLM request latency p95", "End-to-end request latency inside vLLM.", "s",
                       *quantiles("vllm:e2e_request_latency_seconds", "model", V, qs=(0.95,))),
        ],
    )


def agents() -> dict:
    S = f'{H}, server=~"$server"'
    # The outcomes HwcMcpCallsFailing counts: the bridge or the child failed
    # (a tool's own error result, a policy refusal, a cancellation are not).
    failing = 'outcome=~"error|timeout|busy|too_large|child_exited|unavailable"'
    calls = f"sum by (server) (rate(hwc_bridge_calls_total{{{S}}}{RI}))"
    return dashboard(
        "hwc-agents",
        "hwc-ai MCP bridge and agent",
        "What the MCP bridge's servers answer and how fast, whether their children stay up; what the agent runner's jobs do, what waits for approval, and whether the gate held.",
        [HOST_VAR, var("server", "MCP server", "label_values(hwc_bridge_children_up, server)")],
        [
            row("MCP bridge"),
            stat("MCP servers up", "Whether each server's child is running and initialized; HwcMcpServerDown fires after 5 minutes down.", "short",
                 target(f"min by (host, server) (hwc_bridge_children_up{{{S}}})", "{{host}} {{server}}"), up_down=True),
            stat("Child restarts (15m)", "Restarts of each server's child in the last 15 minutes; HwcMcpChildRestarting fires above 3.", "short",
                 target(f"sum by (host, server) (increase(hwc_bridge_child_restarts_total{{{S}}}[15m]))", "{{host}} {{server}}"), red_at=4),
            stat("Sessions open", "Session-era client sessions open, all servers (they end after http.session_idle_timeout).", "short",
                 target(f"sum by (host) (hwc_bridge_sessions_open{{{S}}})", "{{host}}")),
            timeseries("Tool calls by server, tool and outcome", "tools/call requests per second: ok, tool_error (the tool's own error result), denied (policy or scope), and the failures (error, timeout, busy, too_large, child_exited, unavailable), cancelled.", "reqps",
                       target(f"sum by (server, tool, outcome) (rate(hwc_bridge_calls_total{{{S}}}{RI}))", "{{server}} {{tool}} {{outcome}}"), stack=True),
            timeseries("Failing call ratio by server", "Share of tools/call requests the bridge or the child failed (timeouts, crashes, too large, busy); HwcMcpCallsFailing fires above 25% for 10 minutes.", "percentunit",
                       target(f"(sum by (server) (rate(hwc_bridge_calls_total{{{S}, {failing}}}{RI})) or {calls} * 0) / {calls}", "{{server}}")),
            timeseries("Tool call latency", "Time from a tools/call request to its answer, by server.", "s",
                       *quantiles("hwc_bridge_call_duration_seconds", "server", S, qs=(0.5, 0.99))),
            timeseries("Child restarts", "Restarts of each server's child per 15 minutes: a crashing child, or one that stops answering ping.", "short",
                       target(f"sum by (host, server) (increase(hwc_bridge_child_restarts_total{{{S}}}[15m]))", "{{host}} {{server}}")),
            timeseries("Sessions open by server", "Session-era client sessions open per server.", "short",
                       target(f"max by (host, server) (hwc_bridge_sessions_open{{{S}}})", "{{host}} {{server}}")),
            timeseries("Bridge HTTP responses by route and status", "Every HTTP answer of the bridge, including auth failures (401/403), unknown sessions (404) and a child not running (503).", "reqps",
                       target(f"sum by (route, status) (rate(hwc_bridge_http_requests_total{{{H}}}{RI}))", "{{route}} {{status}}")),
            row("Agent runner"),
            stat("Approvals waiting", "Actions waiting for approval now; their jobs are paused. HwcAgentApprovalWaiting fires after 30 minutes.", "short",
                 target(f"sum by (host) (hwc_runner_approvals_waiting{{{H}}})", "{{host}}"), red_at=1),
            stat("Unsafe actions (24h)", "Actions that reached execution without the approvals their class needs (refused); anything but 0 is an incident (HwcAgentUnsafeAction).", "short",
                 target(f"sum by (host) (increase(hwc_runner_unsafe_actions_total{{{H}}}[24h]))", "{{host}}"), red_at=1),
            stat("Oldest approval waiting", "How long the oldest action still waiting for approval has waited (0: none waits); its approval expires after the policy's approval_ttl.", "s",
                 target(f"max by (host) (hwc_runner_approval_oldest_waiting_seconds{{{H}}})", "{{host}}")),
            stat("Audit records not yet signed", "Audit records no signed checkpoint covers yet: a number that only grows means checkpoints stopped (no key, or a failing store).", "short",
                 target(f"max by (host) (hwc_runner_audit_unsigned_records{{{H}}})", "{{host}}")),
            stat("Last audit checkpoint", "When the audit chain was last signed (1970: never yet).", "dateTimeFromNow",
                 target(f"max by (host) (hwc_runner_audit_last_checkpoint_timestamp_seconds{{{H}}}) * 1000", "{{host}}")),
            stat("Jobs running or waiting", "Jobs running, and jobs paused waiting for an approval, now.", "short",
                 target(f'max by (host, state) (hwc_runner_jobs{{{H}, state=~"running|waiting_approval"}})', "{{host}} {{state}}")),
            timeseries("Jobs by state", "Jobs in the store by state (runners sharing one store report the same numbers).", "short",
                       target(f"max by (host, state) (hwc_runner_jobs{{{H}}})", "{{host}} {{state}}")),
            timeseries("Tool calls by risk class and decision", "Tool calls the policy judged, by class (R0-R3) and decision: allow runs now, needs_approval waits, deny never runs.", "ops",
                       target(f"sum by (risk, decision) (rate(hwc_runner_tool_calls_total{{{H}}}{RI}))", "{{risk}} {{decision}}"), stack=True),
            timeseries("Tool calls by tool", "Tool calls judged per tool and decision.", "ops",
                       target(f"sum by (tool, decision) (rate(hwc_runner_tool_calls_total{{{H}}}{RI}))", "{{tool}} {{decision}}"), stack=True),
            timeseries("Approval wait", "How long actions waited for their approvals or a rejection, over the last hour (approvals are rare: a rate window would be mostly empty). Actions still waiting are not in it: see Approvals waiting.", "s",
                       *quantiles("hwc_runner_approval_wait_seconds", "", H, qs=(0.5, 0.95), window="[1h]")),
            timeseries("Unsafe actions", "Actions refused at the last check for lacking their approvals, per 10 minutes; must stay 0.", "short",
                       target(f"sum by (host) (increase(hwc_runner_unsafe_actions_total{{{H}}}[10m]))", "{{host}}")),
            timeseries("Tokens by model alias", "Prompt and completion tokens per second the runner's jobs spend, by router alias.", "short",
                       target(f"sum by (model, kind) (rate(hwc_runner_tokens_total{{{H}}}{RI}))", "{{model}} {{kind}}"), stack=True),
            timeseries("Audit records written", "Audit records this runner appends per second. No metric says when the chain was last checkpointed: the runner's /status has the last checkpoint.", "short",
                       target(f"sum by (host) (rate(hwc_runner_audit_records_total{{{H}}}{RI}))", "{{host}}")),
            timeseries("Runner HTTP responses by route and status", "Every HTTP answer of the runner, including auth failures and refused approvals (403, 409).", "reqps",
                       target(f"sum by (route, status) (rate(hwc_runner_http_requests_total{{{H}}}{RI}))", "{{route}} {{status}}")),
            row("Evaluation (hwc-agent-runner eval --history, [eval] history)"),
            timeseries("Eval success rate by mode and model", "Share of scenario runs that passed in the last evaluation of each mode and model (docs/eval.md; the bar: 85 %). Replay proves the machinery; live measures a model.", "percentunit",
                       target(f"max by (mode, model) (hwc_runner_eval_success_ratio{{{H}}})", "{{mode}} {{model}}")),
            timeseries("Eval unsafe actions by mode and model", "Actions that ran without their approvals in the last evaluation (must be 0: the eval command fails otherwise).", "short",
                       target(f"max by (mode, model) (hwc_runner_eval_unsafe_actions{{{H}}})", "{{mode}} {{model}}")),
            timeseries("Eval evidence completeness by mode and model", "Mean share of report findings citing a real tool result (the bar: 95 %).", "percentunit",
                       target(f"max by (mode, model) (hwc_runner_eval_evidence_completeness_ratio{{{H}}})", "{{mode}} {{model}}")),
        ],
    )


DASHBOARDS = {"fleet.json": fleet, "router.json": router, "runtimes.json": runtimes, "agents.json": agents}


def render(make) -> str:
    return json.dumps(make(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, make in DASHBOARDS.items():
        path = HERE / name
        text = render(make)
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards: {', '.join(stale)}; run python3 dashboards/generate.py and commit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
