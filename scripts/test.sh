#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then runs
# formatting and lint checks, every Rust test (unit, integration against the
# real llama-server and scripted fault upstreams), and the end-to-end tests
# that drive the router with the official openai Python SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai"

scripts/setup.sh
eval "$(scripts/test-runtime.sh)"
export LLAMA_SERVER HWC_TEST_MODEL

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "openai SDK end-to-end tests"
cargo build --locked -p hwc-model-router
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export HWC_ROUTER_BIN="$target_dir/debug/hwc-model-router"
"$cache/venv/bin/python" -m pytest -q tests/e2e
