#!/usr/bin/env bash
# The main job: the operations agent at work. A real small model
# (SmolLM2-135M-Instruct on llama.cpp's llama-server, standing in for
# gpt-oss-20b) behind the hardened router, and the agent runner under its
# hardened unit, inside a throwaway Debian guest with systemd as PID 1
# (tests/vm's systemd-nspawn tier). A web service in the guest has crashed;
# the agent investigates through the router, proposes an R2 restart, and
# waits here for you to type `approve`; then it acts (over D-Bus, allowed
# by its polkit rule) and prints its report.
#
# Needs root (systemd-nspawn); without it, the router demo
# (scripts/demo-router.sh) runs instead. HWC_DEMO_ANSWER=approve answers the
# prompt without a terminal. Ctrl-C, SIGTERM or SIGHUP stop the guest and
# everything in it: no process is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: the agent demo boots a systemd guest and needs root; showing the router alone" >&2
  exec scripts/demo-router.sh
fi
eval "$(scripts/test-runtime.sh)"
export LLAMA_SERVER HWC_TEST_MODEL
cargo build --locked --workspace --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

share=$(mktemp -d)
guest=""
stop() {
  if [[ -n $guest ]]; then kill -- -"$guest" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$share"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

cat >"$share/router.toml" <<'TOML'
[server]
listen = "127.0.0.1:8470"
[auth]
allow_anonymous = true
[[backends]]
name = "llama-cpp"
kind = "openai"
locality = "local"
urls = ["http://127.0.0.1:8080/v1"]
[models.smollm]
targets = [{ backend = "llama-cpp", model = "smollm" }]
[aliases]
default = "smollm"
TOML
cat >"$share/agent-runner.toml" <<'TOML'
[server]
listen = "127.0.0.1:8472"
[policy]
file = "/etc/hwc-ai/hwc-agent-policy.toml"
[model]
url = "http://127.0.0.1:8470/v1"
default_alias = "default"
tool_calling = "json_schema"
temperature = 0.0
units = ["agent-target.service"]
request_timeout = "120s"
[limits]
max_steps = 8
[tools]
repositories = ["/srv/git/infra"]
[[auth.tokens]]
file = "agent-requester-token"
name = "alice"
role = "requester"
[[auth.tokens]]
file = "agent-admin-token"
name = "ops"
role = "admin"
TOML
{
  cat examples/agent-policy.toml
  cat <<'TOML'

# The demo's web service, as a fleet unit would be.
[[rules]]
name = "demo-web-lifecycle"
pattern = ["systemctl", ["restart", "start"], "agent-target.service"]
decision = "prompt"
risk = "R2"
justification = "restarting the web service interrupts its users; the rollback is its previous state"
match = ["systemctl restart agent-target.service"]
TOML
} >"$share/agent-policy.toml"
cp scripts/demo/drive.py "$share/"
"$target_dir/debug/hwc-agent-runner" policy check "$share/agent-policy.toml"

setsid env HWC_VM_GUEST=scripts/demo/guest.sh HWC_VM_SHARE="$share" HWC_VM_TIMEOUT=900 \
  HWC_BIN_DIR="$target_dir/debug" tests/vm/run.sh &
guest=$!
while kill -0 "$guest" 2>/dev/null; do
  if [[ -f $share/pending.json ]]; then
    python3 - "$share/pending.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"\n  The agent asks to run: {p['summary']}")
print(f"  class {p['risk']} (rule {p['rule']}): {p['reason']}")
print(f"  rollback: {p['rollback']}")
print(f"  digest: {p['digest']}")
PY
    rm -f "$share/pending.json"
    if [[ -n ${HWC_DEMO_ANSWER:-} ]]; then
      answer=$HWC_DEMO_ANSWER
      echo "  answer (HWC_DEMO_ANSWER): $answer"
    else
      read -r -p "  Type approve to let it run, anything else to reject: " answer </dev/tty
    fi
    echo "$answer" >"$share/answer"
  fi
  sleep 0.3
done
wait "$guest"
