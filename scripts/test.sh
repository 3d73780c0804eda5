#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then runs
# formatting and lint checks, every Rust test (unit, integration against the
# real llama-server, a real MCP server, a real dbus-daemon and scripted
# fault upstreams), the alert rules' promtool unit tests, the end-to-end
# tests (the router driven by the official openai Python SDK; every
# dashboard panel and alert evaluated by a real Prometheus scraping the
# real daemons), the Nix checks, and the daemons' units under a real
# systemd booted with systemd-nspawn.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai"

scripts/setup.sh
eval "$(scripts/test-runtime.sh)"
export LLAMA_SERVER HWC_TEST_MODEL

steps=0
step() {
  steps=$((steps + 1))
  printf '\n==> %s\n' "$*"
}

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

# Every daemon binary, for the Nix checks, the e2e tests and tests/vm.
cargo build --locked --workspace --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export HWC_BIN_DIR="$target_dir/debug"
export HWC_ROUTER_BIN="$HWC_BIN_DIR/hwc-model-router"
export HWC_PROBER_BIN="$HWC_BIN_DIR/hwc-health-prober"
export HWC_MANAGER_BIN="$HWC_BIN_DIR/hwc-model-manager"
export HWC_BRIDGE_BIN="$HWC_BIN_DIR/hwc-mcp-bridge"
export HWC_RUNNER_BIN="$HWC_BIN_DIR/hwc-agent-runner"

step "alert rules: promtool check and unit tests, every alert tested both ways"
scripts/check-alerts.sh

step "Grafana dashboards are what dashboards/generate.py writes"
python3 dashboards/generate.py --check

step "end-to-end: openai SDK against the router; dashboards and alerts against a live Prometheus"
"$cache/venv/bin/python" -m pytest -q tests/e2e

step "Nix checks: parse, unit hardening scores, module evaluation (tests/nix)"
# nixpkgs' lib for module evaluation: NIXPKGS_LIB, or a checkout placed in
# ~/.cache/hwc-ai/nixpkgs.lib by hand (it is in no package registry); without
# it the summary says how many evaluation tests did not run.
"$cache/venv/bin/python" -m pytest -q tests/nix

step "daemons under a real systemd (systemd-nspawn)"
tests/vm/run.sh

# Every step above stops the script on failure (set -e), so reaching here
# means all of them passed.
printf '\nsummary: %d passed, 0 failed\n' "$steps"
