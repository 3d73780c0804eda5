#!/usr/bin/env bash
# The router on its own (scripts/demo.sh runs it where the agent demo cannot):
# the router in front of a real local llama-server, configured
# by examples/router.toml. llama-server (SmolLM2-135M-Instruct, built and
# cached by scripts/test-runtime.sh) stands in for the gpt-oss-20b runtime on
# 127.0.0.1:8080; the router listens on 127.0.0.1:8470. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/test-runtime.sh)"

cargo build --release --locked -p hwc-model-router
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
router="$target_dir/release/hwc-model-router"
state=$(mktemp -d)

"$LLAMA_SERVER" -m "$HWC_TEST_MODEL" --host 127.0.0.1 --port 8080 --metrics -c 2048 -t 2 >"$state/llama.log" 2>&1 &
llama=$!
trap 'kill $llama ${routerpid:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$state"' EXIT
# A fatal signal skips the EXIT trap unless it is caught: catch them, so
# Ctrl-C, SIGTERM and SIGHUP all stop llama-server and the router.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
for _ in $(seq 1 600); do
  curl -fsS http://127.0.0.1:8080/health >/dev/null 2>&1 && break
  kill -0 $llama 2>/dev/null || { cat "$state/llama.log"; exit 1; }
  sleep 0.1
done

"$router" --config examples/router.toml --check-config
STATE_DIRECTORY="$state" "$router" --config examples/router.toml &
routerpid=$!
for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:8470/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

cat <<'MSG'

hwc-model-router is serving on http://127.0.0.1:8470 in front of llama-server.
Try, in another terminal:

  curl -s http://127.0.0.1:8470/v1/chat/completions \
    -H 'Authorization: Bearer sk-hwc-example-operator' -H 'Content-Type: application/json' \
    -d '{"model":"default","messages":[{"role":"user","content":"Say hello."}]}'

  curl -sN http://127.0.0.1:8470/v1/chat/completions \
    -H 'Authorization: Bearer sk-hwc-example-operator' -H 'Content-Type: application/json' \
    -d '{"model":"auto","stream":true,"messages":[{"role":"user","content":"Count to five."}]}'

  curl -s http://127.0.0.1:8470/v1/models -H 'Authorization: Bearer sk-hwc-example-operator'
  curl -s http://127.0.0.1:8470/status -H 'Authorization: Bearer sk-hwc-example-operator'
  curl -s http://127.0.0.1:8470/metrics | grep '^hwc_router_requests'

Or point the openai SDK at base_url="http://127.0.0.1:8470/v1".
Ctrl-C stops the router and llama-server.
MSG
wait $routerpid
