#!/bin/bash
# Runs as root inside the tests/vm guest (Debian, systemd as PID 1), once the
# system is up. /hwc-vmtest holds the units rendered from nix/units, the
# configurations and this script; /opt/hwc-ai/bin the daemons built on the
# host; /opt/llama (optional) a llama-server and a GGUF model.
#
# Proves what only a real systemd proves, for each daemon present:
#   - it reaches active under its full hardening: no syscall, path or
#     address family the sandbox forbids (no SIGSYS, no EPERM crash);
#   - Type=notify: `systemctl start` returns once it listens (READY=1),
#     with a STATUS= line; the watchdog is petted while healthy, and a hung
#     daemon is killed and restarted;
#   - SIGTERM drains and exits 0 (inactive, not failed, not restarted);
#   - a SIGKILLed daemon is restarted;
#   - the prober's polkit rule lets it restart its own target and nothing
#     else, and the prober does restart a target that stops answering;
#   - the agent runner's shell sandbox (bubblewrap) runs nested in its unit,
#     and its tools work as far as the unit and polkit allow: the journal
#     through its group, `ss` over netlink, `free` from /proc, the one unit
#     polkit grants restarted and another one refused.
# Output: PASS:/FAIL:/SKIP: lines; exit status 0 when nothing failed.
set -u
fail=0
pass=0
ok() {
  echo "PASS: $*"
  pass=$((pass + 1))
}
bad() {
  echo "FAIL: $*"
  fail=$((fail + 1))
}
skip() { echo "SKIP: $*"; }
check() {
  local d=$1
  shift
  if "$@"; then ok "$d"; else bad "$d"; return 1; fi
}
# wait_for SECONDS CMD...: poll every 0.1 s.
wait_for() {
  local t=$1 i
  shift
  for ((i = 0; i < t * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
prop() { systemctl show -P "$2" "$1"; }
exposure() { systemd-analyze security --no-pager "$1" | tail -n 1 | sed -n 's/.*: \([0-9.]*\).*/\1/p'; }
within() { python3 -c "import sys; sys.exit(0 if float('$1') <= float('$2') else 1)"; }
active() { [[ $(prop "$1" ActiveState) == active ]]; }
state_is() { [[ $(prop "$1" ActiveState) == "$2" ]]; }
restarts_at_least() { (($(prop "$1" NRestarts) >= $2)); }
main_pid_is_not() { local p; p=$(prop "$1" MainPID); [[ $p != 0 && $p != "$2" ]]; }
no_sigsys() { ! journalctl -q -u "$1" --no-pager | grep -q -e 'status=31/SYS' -e 'code=killed, status=31'; }
dump() {
  echo "---- $1 ----"
  systemctl status --no-pager -n 30 "$1" 2>&1 | sed 's/^/    /'
}

echo "guest: PID 1 is $(cat /proc/1/comm), $(systemctl --version | head -n 1)"
install -d -m 0755 /etc/hwc-ai
install -m 0644 /hwc-vmtest/hwc-model-router.toml /hwc-vmtest/hwc-health-prober.toml /etc/hwc-ai/
install -m 0400 /hwc-vmtest/router-keys.toml /etc/hwc-ai/
install -m 0644 /hwc-vmtest/units/*.service /etc/systemd/system/
# Every daemon of the registry (nix/daemons.nix) is here with its unit; the
# sections below test each one.
while read -r crate unit; do
  check "registry: $crate has its binary and $unit" test -x "/opt/hwc-ai/bin/$crate" -a -f "/etc/systemd/system/$unit"
done < <(python3 -c 'import json; [print(d["crate"], d["unit"]) for d in json.load(open("/hwc-vmtest/daemons.json"))]')

# ---------------------------------------------------------------------------
# Optional: a real llama-server behind the router.
llama=no
if [[ -x /opt/llama/bin/llama-server && -s /opt/llama/model.gguf ]]; then
  systemd-run --quiet --unit=llama-cpp --property=DynamicUser=yes \
    --setenv=LD_LIBRARY_PATH=/opt/llama/bin \
    /opt/llama/bin/llama-server -m /opt/llama/model.gguf --host 127.0.0.1 --port 8080 \
    -c 2048 -t 2 --alias smollm
  llama=yes
fi

# ---------------------------------------------------------------------------
echo "== hwc-model-router"
systemctl daemon-reload
t=$(date +%s%N)
if systemctl start hwc-model-router.service; then
  ok "router: systemctl start returned after READY=1 ($(ms "$t") ms)"
else
  bad "router: start"
  dump hwc-model-router.service
fi
check "router: /healthz answers as soon as start returns (READY sent once listening)" \
  curl -sf -o /dev/null http://127.0.0.1:8470/healthz
check "router: active/running" test "$(prop hwc-model-router SubState)" = running
status=$(prop hwc-model-router StatusText)
check "router: STATUS= line reached systemd (\"$status\")" test -n "$status"
pid=$(prop hwc-model-router MainPID)
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
check "router: runs as a DynamicUser (uid $uid)" test "$uid" -ge 61184 -a "$uid" -le 65519
caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
check "router: no effective capabilities (CapEff=$caps)" test "$caps" = 0000000000000000
check "router: NoNewPrivileges in force" grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status"
check "router: seccomp filter in force" grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status"
score=$(exposure hwc-model-router.service)
check "router: exposure $score <= 1.5 as the running systemd scores it" within "$score" 1.5
check "router: keys file read through LoadCredential (GET /v1/models with the key: 200)" \
  curl -sf -o /dev/null -H 'Authorization: Bearer sk-hwc-vm-test' http://127.0.0.1:8470/v1/models
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8470/v1/models)
check "router: no key, 401 (got $code)" test "$code" = 401
check "router: SQLite database in its StateDirectory" wait_for 5 test -s /var/lib/private/hwc-ai/router/router.sqlite
check "router: /metrics" sh -c 'curl -sf http://127.0.0.1:8470/metrics | grep -q "^hwc_router_"'
pid=$(prop hwc-model-router MainPID)
check "router: systemctl reload (ExecReload sends SIGHUP)" systemctl reload hwc-model-router.service
check "router: the reload re-read the keys file, same process" \
  wait_for 5 sh -c "journalctl -u hwc-model-router.service -o cat | grep -q 'keys reloaded' && test \"\$(systemctl show -P MainPID hwc-model-router)\" = $pid"

if [[ $llama == yes ]]; then
  if wait_for 60 curl -sf -o /dev/null http://127.0.0.1:8080/health; then
    wait_for 20 curl -sf -o /dev/null http://127.0.0.1:8470/readyz
    body='{"model":"default","messages":[{"role":"user","content":"Say hello."}],"max_tokens":12}'
    out=$(curl -sf -H 'Authorization: Bearer sk-hwc-vm-test' -H 'Content-Type: application/json' \
      -d "$body" http://127.0.0.1:8470/v1/chat/completions)
    check "router: a chat completion through the hardened router reaches llama-server" \
      python3 -c 'import json,sys; assert json.loads(sys.argv[1])["choices"][0]["message"]["content"]' "$out"
  else
    bad "llama-server did not become healthy"
    dump llama-cpp.service
  fi
else
  skip "router: chat through llama-server (no LLAMA_SERVER/HWC_TEST_MODEL given)"
fi

# Watchdog: WatchdogSec=3 here. Healthy for 3 x the interval: no restart.
sleep 9
check "router: watchdog petted while healthy (9 s at WatchdogSec=3, no restart)" \
  test "$(prop hwc-model-router NRestarts)" = 0 -a "$(prop hwc-model-router ActiveState)" = active

# A hung daemon (SIGSTOP: no more pets) is killed by the watchdog and restarted.
pid=$(prop hwc-model-router MainPID)
kill -STOP "$pid"
t=$(date +%s%N)
if wait_for 20 restarts_at_least hwc-model-router 1 && wait_for 10 active hwc-model-router; then
  ok "router: hung daemon killed by the watchdog and restarted ($(ms "$t") ms)"
else
  bad "router: watchdog did not restart a hung daemon"
  dump hwc-model-router.service
fi
check "router: journal shows the watchdog timeout" \
  sh -c 'journalctl -q -u hwc-model-router --no-pager | grep -q -i "watchdog timeout"'

# SIGKILL: restarted (Restart=on-failure).
n=$(prop hwc-model-router NRestarts)
pid=$(prop hwc-model-router MainPID)
kill -KILL "$pid"
if wait_for 15 restarts_at_least hwc-model-router $((n + 1)) && wait_for 10 active hwc-model-router &&
  wait_for 10 main_pid_is_not hwc-model-router "$pid"; then
  ok "router: SIGKILLed daemon restarted"
else
  bad "router: SIGKILLed daemon not restarted"
  dump hwc-model-router.service
fi
check "router: answers again after the restart" wait_for 10 curl -sf -o /dev/null http://127.0.0.1:8470/healthz

# SIGTERM from outside systemd: drains, exits 0, not restarted, not failed.
# (NRestarts and the main process's timestamps reset when a unit goes
# inactive; the journal's "Starting" lines tell whether it came back.)
starts() { journalctl -q -u "$1" --no-pager | grep -c "Starting $1"; }
before=$(starts hwc-model-router.service)
pid=$(prop hwc-model-router MainPID)
kill -TERM "$pid"
if wait_for 15 state_is hwc-model-router inactive; then
  r=$(prop hwc-model-router Result)
  st=$(prop hwc-model-router ExecMainStatus)
  check "router: SIGTERM -> exit 0, inactive (Result=$r, ExecMainStatus=$st)" test "$r" = success -a "$st" = 0
  sleep 3
  check "router: a clean exit is not restarted (still $(prop hwc-model-router ActiveState), $(starts hwc-model-router.service) starts before and after)" \
    test "$(starts hwc-model-router.service)" = "$before" -a "$(prop hwc-model-router ActiveState)" = inactive
  check "router: drained and flushed usage on SIGTERM" \
    sh -c 'journalctl -q -u hwc-model-router --no-pager | grep -q "drained; exiting"'
else
  bad "router: still $(prop hwc-model-router ActiveState) after SIGTERM"
  dump hwc-model-router.service
fi

# systemctl stop, the usual way.
systemctl start hwc-model-router.service
systemctl stop hwc-model-router.service
check "router: systemctl stop -> inactive, Result=success, exit 0" \
  test "$(prop hwc-model-router ActiveState)/$(prop hwc-model-router Result)/$(prop hwc-model-router ExecMainStatus)" = inactive/success/0
check "router: never killed by its seccomp filter" no_sigsys hwc-model-router.service

# ---------------------------------------------------------------------------
echo "== hwc-health-prober"
if [[ -x /opt/hwc-ai/bin/hwc-health-prober ]]; then
  useradd --system --no-create-home --user-group --shell /usr/sbin/nologin hwc-ai-prober
  install -d -m 0755 /etc/polkit-1/rules.d
  install -m 0644 /hwc-vmtest/units/50-hwc-ai-prober.rules /etc/polkit-1/rules.d/
  cat >/etc/systemd/system/dummy.service <<'EOF'
[Unit]
Description=a target of the prober
[Service]
ExecStart=/usr/bin/python3 -m http.server 18080 --bind 127.0.0.1 --directory /usr/share
DynamicUser=yes
EOF
  cat >/etc/systemd/system/broken.service <<'EOF'
[Unit]
Description=a target that never answers
[Service]
ExecStart=/usr/bin/sleep infinity
DynamicUser=yes
EOF
  cat >/etc/systemd/system/bystander.service <<'EOF'
[Unit]
Description=a unit the prober must not touch
[Service]
ExecStart=/usr/bin/sleep infinity
DynamicUser=yes
EOF
  systemctl daemon-reload
  systemctl restart polkit.service
  systemctl start dummy.service bystander.service broken.service
  wait_for 10 curl -sf -o /dev/null http://127.0.0.1:18080/

  t=$(date +%s%N)
  if systemctl start hwc-health-prober.service; then
    ok "prober: systemctl start returned after READY=1 ($(ms "$t") ms)"
  else
    bad "prober: start"
    dump hwc-health-prober.service
  fi
  check "prober: runs as its fixed user" test "$(prop hwc-health-prober User)" = hwc-ai-prober
  pid=$(prop hwc-health-prober MainPID)
  check "prober: process uid is hwc-ai-prober" test "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" = "$(id -u hwc-ai-prober)"
  score=$(exposure hwc-health-prober.service)
  check "prober: exposure $score <= 1.5" within "$score" 1.5
  check "prober: /status lists its target" wait_for 10 sh -c 'curl -sf http://127.0.0.1:8473/status | grep -q dummy'
  check "prober: systemctl status shows how many targets are up" \
    wait_for 10 sh -c 'systemctl show -P StatusText hwc-health-prober | grep -Eq "^[0-9]+ of 2 targets up$"'

  check "polkit: the prober's user may restart its target" \
    runuser -u hwc-ai-prober -- systemctl restart dummy.service
  check "polkit: ... may not restart another unit" \
    sh -c '! runuser -u hwc-ai-prober -- systemctl restart bystander.service 2>/dev/null'
  check "polkit: ... may not stop its target either" \
    sh -c '! runuser -u hwc-ai-prober -- systemctl stop dummy.service 2>/dev/null'
  check "polkit: bystander untouched" active bystander.service

  wait_for 10 curl -sf -o /dev/null http://127.0.0.1:18080/
  inv=$(prop dummy InvocationID)
  systemctl kill --signal=SIGSTOP dummy.service
  t=$(date +%s%N)
  if wait_for 30 sh -c "[ \"\$(systemctl show -P InvocationID dummy)\" != $inv ]" &&
    wait_for 10 curl -sf -o /dev/null http://127.0.0.1:18080/; then
    ok "prober: restarted its hung target over D-Bus ($(ms "$t") ms)"
  else
    bad "prober: did not restart its hung target"
    dump hwc-health-prober.service
  fi
  # broken.service never answers: after 2 failures a restart, then 1 s and
  # 2 s of backoff between restarts, and at the hourly cap (3) no more.
  capped() {
    curl -sf http://127.0.0.1:8473/status | python3 -c '
import json, sys
a = [x for x in json.load(sys.stdin)["actions"] if x["unit"] == "broken.service"]
r = [x["result"] for x in a]
sys.exit(0 if r == ["restarted"] * 3 + ["capped"] and a[1]["at"] - a[0]["at"] >= 0.9 and a[2]["at"] - a[1]["at"] >= 1.9 else 1)'
  }
  check "prober: restarts a dead target 3 times with growing backoff, then stops at the cap" wait_for 40 capped
  sleep 3
  starts=$(journalctl -u broken.service -o cat | grep -c '^Started ' || true)
  check "systemd started broken.service 4 times (1 + 3 restarts), none after the cap ($starts)" test "$starts" = 4
  check "prober: never killed by its seccomp filter" no_sigsys hwc-health-prober.service
  systemctl stop hwc-health-prober.service
  check "prober: systemctl stop -> inactive, Result=success" \
    test "$(prop hwc-health-prober ActiveState)/$(prop hwc-health-prober Result)" = inactive/success
else
  bad "prober: no hwc-health-prober binary in /opt/hwc-ai/bin"
fi

# ---------------------------------------------------------------------------
# The model manager placing a file model a runtime reads through the
# models group (hwc.ai.models.<name>.url on NixOS).
echo "== hwc-model-manager"
if [[ -x /opt/hwc-ai/bin/hwc-model-manager ]]; then
  useradd --system --no-create-home --user-group --shell /usr/sbin/nologin hwc-models
  install -d -m 0755 /srv/mirror
  head -c 300000 /dev/urandom >/srv/mirror/weights.gguf
  sum=$(sha256sum /srv/mirror/weights.gguf | cut -d' ' -f1)
  sed "s/@SHA256@/$sum/" /hwc-vmtest/hwc-model-manager.toml >/etc/hwc-ai/hwc-model-manager.toml
  systemd-run --quiet --unit=model-mirror --property=DynamicUser=yes \
    python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/mirror
  wait_for 10 curl -sf -o /dev/null http://127.0.0.1:8000/weights.gguf
  systemctl daemon-reload
  check "manager: systemctl start returned after READY=1" systemctl start hwc-model-manager.service
  present() { curl -sf http://127.0.0.1:8474/status | grep -q '"state":"present"'; }
  check "manager: the file model is downloaded, checked and present" wait_for 30 present
  gguf=/var/lib/hwc-ai/models/tiny/weights.gguf
  check "manager: runs as the fixed user hwc-models" test "$(prop hwc-model-manager User)" = hwc-models
  check "manager: the file has the declared sha256" sh -c "echo '$sum  $gguf' | sha256sum -c --quiet -"
  check "manager: state directory 0750 hwc-models (not under /var/lib/private)" \
    test "$(stat -c '%a %U %G' /var/lib/hwc-ai/models)" = "750 hwc-models hwc-models"
  check "manager: the placed file is group-readable, not world-readable ($(stat -c %a "$gguf"))" \
    test "$(stat -c %a "$gguf")" = 640
  reads() {
    systemd-run --quiet --wait --pipe --property=DynamicUser=yes "$@" sha256sum "$gguf" 2>/dev/null |
      grep -q "^$sum "
  }
  check "manager: a DynamicUser runtime in the hwc-models group reads the model" \
    reads --property=SupplementaryGroups=hwc-models
  cannot_read() { ! reads "$@"; }
  check "manager: a DynamicUser outside the group cannot" cannot_read
  score=$(exposure hwc-model-manager.service)
  check "manager: exposure $score <= 1.5 as the running systemd scores it" within "$score" 1.5
  check "manager: never killed by its seccomp filter" no_sigsys hwc-model-manager.service
  systemctl stop hwc-model-manager.service
  check "manager: systemctl stop -> inactive, Result=success" \
    test "$(prop hwc-model-manager ActiveState)/$(prop hwc-model-manager Result)" = inactive/success
else
  bad "manager: no hwc-model-manager binary in /opt/hwc-ai/bin"
fi

# ---------------------------------------------------------------------------
# The MCP bridge: its children (and their grandchildren) never outlive it,
# whether it is stopped or SIGKILLed, and it comes back serving.
echo "== hwc-mcp-bridge"
if [[ -x /opt/hwc-ai/bin/hwc-mcp-bridge ]]; then
  install -m 0644 /hwc-vmtest/hwc-mcp-bridge.toml /etc/hwc-ai/
  # Readable by the bridge's DynamicUser (/hwc-vmtest is root's 0700).
  install -D -m 0644 /hwc-vmtest/fault_server.py /usr/local/lib/hwc-vmtest/fault_server.py
  systemctl daemon-reload
  mcp() {
    # mcp SESSION BODY: one JSON-RPC POST; prints headers and body.
    curl -s -D - -o - -X POST http://127.0.0.1:8471/mcp/fault \
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -H 'MCP-Protocol-Version: 2025-11-25' ${1:+-H "Mcp-Session-Id: $1"} -d "$2"
  }
  init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"guest","version":"0"}}}'
  session() { mcp "" "$init" | tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p'; }
  fork_call() { mcp "$1" '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"fork","arguments":{}}}'; }
  strays() { pgrep -f -c 'fault_server.py|sleep 600' || true; }
  no_strays() { [[ $(strays) == 0 ]]; }
  check "bridge: systemctl start returned after READY=1" systemctl start hwc-mcp-bridge.service
  ready() { curl -sf http://127.0.0.1:8471/readyz >/dev/null; }
  check "bridge: ready once its required server is up" wait_for 15 ready ||
    { journalctl -u hwc-mcp-bridge.service -o cat --no-pager | grep -v readyz | tail -n 30 | sed 's/^/    /'; }
  sid=$(session)
  check "bridge: initialize gives a session id" test -n "$sid"
  forked() { fork_call "$sid" | grep -q "\"result\""; }
  check "bridge: a tool call reaches the child, which forks grandchildren" forked
  check "bridge: the child and its grandchildren run ($(strays) processes)" test "$(strays)" -ge 3
  score=$(exposure hwc-mcp-bridge.service)
  check "bridge: exposure $score <= 1.5 as the running systemd scores it" within "$score" 1.5
  # sessions SERVER N [keep]: opens N sessions, calls a tool in each, closes
  # it (unless keep); prints how many of each step were answered as expected.
  sessions() {
    python3 - "$1" "$2" "${3:-}" <<'PY'
import http.client, json, sys
server, n, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "keep"
c = http.client.HTTPConnection("127.0.0.1", 8471, timeout=30)
h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
ok = {"init": 0, "call": 0, "delete": 0}
init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
        "capabilities": {}, "clientInfo": {"name": "guest", "version": "0"}}}
for i in range(n):
    c.request("POST", "/mcp/" + server, json.dumps(init), h)
    r = c.getresponse(); r.read()
    sid = r.getheader("Mcp-Session-Id")
    ok["init"] += r.status == 200 and bool(sid)
    s = dict(h, **{"Mcp-Session-Id": sid or "", "MCP-Protocol-Version": "2025-11-25"})
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": str(i)}}}
    c.request("POST", "/mcp/" + server, json.dumps(call), s)
    r = c.getresponse(); body = r.read()
    ok["call"] += r.status == 200 and json.loads(body).get("result", {}).get("content", [{}])[0].get("text") == str(i)
    if keep:
        continue
    c.request("DELETE", "/mcp/" + server, headers=s)
    r = c.getresponse(); r.read()
    ok["delete"] += r.status == 204
print(" ".join(f"{k}={v}" for k, v in ok.items()))
PY
  }
  # The python processes themselves (the guard in front of each has the
  # same words further along its command line).
  children() { pgrep -f -c '^/usr/bin/python3 /usr/local/lib/hwc-vmtest/fault_server.py' || true; }
  out=$(sessions fault 1000)
  check "bridge: 1000 sessions opened, used and closed on one shared child ($out)" \
    test "$out" = "init=1000 call=1000 delete=1000"
  check "bridge: still exactly one child after them ($(children))" test "$(children)" = 1
  out=$(sessions iso 100)
  check "bridge: 100 per-session sessions, each its own child ($out)" \
    test "$out" = "init=100 call=100 delete=100"
  only_shared() { [[ $(children) == 1 ]]; }
  check "bridge: no per-session child left once its session closed" wait_for 10 only_shared
  systemctl stop hwc-mcp-bridge.service
  check "bridge: systemctl stop -> inactive, Result=success" \
    test "$(prop hwc-mcp-bridge ActiveState)/$(prop hwc-mcp-bridge Result)" = inactive/success
  check "bridge: nothing of its children is left after stop" wait_for 5 no_strays
  systemctl start hwc-mcp-bridge.service
  wait_for 15 ready
  sid=$(session)
  fork_call "$sid" >/dev/null
  out=$(sessions iso 3 keep)
  check "bridge: 3 per-session sessions left open, 4 children ($out, $(children))" test "$(children)" = 4
  pid=$(prop hwc-mcp-bridge MainPID)
  kill -KILL "$pid"
  check "bridge: nothing of its children is left after a SIGKILL" wait_for 10 no_strays
  check "bridge: SIGKILLed, restarted by systemd" wait_for 15 main_pid_is_not hwc-mcp-bridge "$pid"
  check "bridge: serving again after the restart" wait_for 15 ready
  stale() { mcp "$sid" '{"jsonrpc":"2.0","id":3,"method":"tools/list"}' | head -n 1 | grep -q ' 404'; }
  check "bridge: a session from before the restart gets 404 (clients re-initialize)" stale
  check "bridge: never killed by its seccomp filter" no_sigsys hwc-mcp-bridge.service
  systemctl stop hwc-mcp-bridge.service
else
  bad "bridge: no hwc-mcp-bridge binary in /opt/hwc-ai/bin"
fi

# ---------------------------------------------------------------------------
# The agent runner: bubblewrap nested in its hardened unit, and a job whose
# scripted model (tests/vm/scripted_model.py) calls each host tool once.
echo "== hwc-agent-runner"
if [[ -x /opt/hwc-ai/bin/hwc-agent-runner ]]; then
  # What nix/units/agent-runner.nix relaxes, as the offline score counts it
  # (tests/nix/nixcheck.py, BUDGETS).
  agent_budget=2.1
  useradd --system --no-create-home --user-group --shell /usr/sbin/nologin hwc-ai-agent
  install -m 0644 /hwc-vmtest/hwc-agent-runner.toml /hwc-vmtest/hwc-agent-policy.toml /etc/hwc-ai/
  install -d -m 0755 /etc/polkit-1/rules.d
  install -m 0644 /hwc-vmtest/units/50-hwc-ai-agent.rules /etc/polkit-1/rules.d/
  (umask 077 && echo agent-requester-secret-4e1f9c > /etc/hwc-ai/agent-requester-token &&
    echo agent-admin-secret-7b2d0a > /etc/hwc-ai/agent-admin-token)
  install -D -m 0644 /hwc-vmtest/scripted_model.py /usr/local/lib/hwc-vmtest/scripted_model.py
  install -d -o hwc-ai-agent -g hwc-ai-agent /srv/git/infra
  runuser -u hwc-ai-agent -- sh -c 'cd /srv/git/infra && git init -q -b main &&
    echo hello >README && git add README &&
    git -c user.name=ops -c user.email=ops@hwc-vmtest commit -q -m "first commit of infra"'
  for u in agent-target bystander; do
    [[ -f /etc/systemd/system/$u.service ]] || printf '[Service]\nExecStart=/usr/bin/sleep infinity\nDynamicUser=yes\n' >"/etc/systemd/system/$u.service"
  done
  systemctl daemon-reload
  systemctl restart polkit.service
  systemctl start agent-target.service bystander.service
  systemd-run --quiet --unit=scripted-model --property=DynamicUser=yes \
    python3 /usr/local/lib/hwc-vmtest/scripted_model.py 18470
  api() { curl -sf -H "Authorization: Bearer $1" "${@:3}" "http://127.0.0.1:8472$2"; }
  admin=agent-admin-secret-7b2d0a
  alice=agent-requester-secret-4e1f9c

  check "agent: systemctl start returned after READY=1" systemctl start hwc-agent-runner.service ||
    dump hwc-agent-runner.service
  check "agent: runs as its fixed user" test "$(prop hwc-agent-runner User)" = hwc-ai-agent
  pid=$(prop hwc-agent-runner MainPID)
  check "agent: process uid is hwc-ai-agent" test "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" = "$(id -u hwc-ai-agent)"
  check "agent: in the systemd-journal group" \
    sh -c "awk '/^Groups:/' /proc/$pid/status | grep -qw $(getent group systemd-journal | cut -d: -f3)"
  caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
  check "agent: no effective capabilities (CapEff=$caps)" test "$caps" = 0000000000000000
  check "agent: seccomp filter in force" grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status"
  score=$(exposure hwc-agent-runner.service)
  check "agent: exposure $score <= $agent_budget as the running systemd scores it" within "$score" "$agent_budget"
  status=$(api "$admin" /status)
  sandbox=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["sandbox"])' "$status" 2>&1)
  check "agent: /status: the shell sandbox works nested in the unit (sandbox: $sandbox)" test "$sandbox" = ok
  check "agent: /status: the policy is the configured file" \
    python3 -c 'import json, sys; assert json.loads(sys.argv[1])["policy"]["origin"] == "/etc/hwc-ai/hwc-agent-policy.toml"' "$status"
  code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8472/status)
  check "agent: /status without a token: 401 (got $code)" test "$code" = 401

  target_before=$(prop agent-target InvocationID)
  bystander_before=$(prop bystander InvocationID)
  job=$(api "$alice" /agent/jobs -H 'Content-Type: application/json' \
    -d '{"goal": "check every host tool", "environment": "vm"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  check "agent: a job is accepted ($job)" test -n "$job"
  finished() { api "$alice" "/agent/jobs/$job" | python3 -c 'import json, sys; sys.exit(json.load(sys.stdin)["state"] not in ("completed", "failed"))'; }
  check "agent: the job finishes" wait_for 60 finished
  api "$alice" "/agent/jobs/$job/events" -H 'Accept: application/json' >/tmp/agent-events.json
  # item N: the Nth tool call of the script (0-based): status and output.
  item() {
    python3 - "$1" <<'PY'
import json, sys
items = [e["data"]["item"] for e in json.load(open("/tmp/agent-events.json"))["events"]
         if e["kind"] == "item.completed" and e["data"]["item"].get("tool")]
i = items[int(sys.argv[1])]
print(i["status"])
print(i.get("output") or "")
PY
  }
  shows() { item "$1" | grep -q -e "$2"; }
  ok_item() { [[ $(item "$1" | head -n 1) == completed ]]; }
  failed_item() { [[ $(item "$1" | head -n 1) == failed ]]; }
  if ok_item 0 && shows 0 sandbox-ok; then
    ok "agent: a shell command ran in the bubblewrap sandbox"
  else
    bad "agent: the shell command did not run: $(item 0 | head -n 5 | tr '\n' ' ')"
  fi
  check "agent: ... with the sandbox's own hostname (UTS namespace)" shows 0 '^hwc-agent-sandbox$'
  # bwrap maps the sandbox's uid (the runner's) onto uid 0 of a user
  # namespace of its own (root there mounts devpts), and that one onto the
  # runner's uid: "<uid> 0 1" seen from inside (the unit's own namespace
  # maps "0 0 1" and "<uid> <uid> 1").
  in_userns() { item 0 | grep -Eq "^ *$(id -u hwc-ai-agent) +0 +1\$"; }
  check "agent: ... in its own user namespace" in_userns
  db_hidden() { ! item 0 | grep -q agent-runner.db; }
  check "agent: ... with the runner's database hidden" db_hidden
  check "agent: host facts: ss lists the runner's socket over netlink" shows 1 '127.0.0.1:8472'
  check "agent: host facts: free reads /proc/meminfo" shows 2 '^Mem:'
  if ok_item 3 && shows 3 'hwc-agent-runner\[' && ! shows 3 'not seeing messages'; then
    ok "agent: journal: the runner's own log lines, read as the systemd-journal group"
  else
    bad "agent: journal: $(item 3 | head -n 5 | tr '\n' ' ')"
  fi
  check "agent: systemctl restart of the unit polkit grants: done" ok_item 4
  check "agent: ... agent-target.service really restarted" test "$(prop agent-target InvocationID)" != "$target_before"
  check "agent: systemctl restart of another unit: refused by polkit" failed_item 5
  check "agent: ... bystander.service untouched" test "$(prop bystander InvocationID)" = "$bystander_before"
  check "agent: polkit: the runner's user may stop and start the unit it controls" \
    sh -c 'runuser -u hwc-ai-agent -- systemctl stop agent-target.service && runuser -u hwc-ai-agent -- systemctl start agent-target.service'
  check "agent: polkit: ... and nothing else of another unit" \
    sh -c '! runuser -u hwc-ai-agent -- systemctl start bystander.service 2>/dev/null && ! runuser -u hwc-ai-agent -- systemctl reload bystander.service 2>/dev/null'
  check "agent: polkit: ... nor another action on its own unit (enable, mask)" \
    sh -c '! runuser -u hwc-ai-agent -- systemctl mask agent-target.service 2>/dev/null'
  check "agent: ... bystander.service still untouched" test "$(prop bystander InvocationID)" = "$bystander_before"
  completed() { api "$alice" "/agent/jobs/$job" | grep -q '"state":"completed"'; }
  check "agent: the job completed" completed

  repo_job=$(api "$alice" /agent/jobs -H 'Content-Type: application/json' \
    -d '{"goal": "look at the repository", "environment": "vm", "repo": "/srv/git/infra"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  job=$repo_job
  check "agent: a job on a repository finishes" wait_for 60 finished
  api "$alice" "/agent/jobs/$job/events" -H 'Accept: application/json' >/tmp/agent-events.json
  check "agent: git worktree of the repository made under the state directory (ReadWritePaths)" \
    test -f "/var/lib/hwc-ai/agent-runner/workspaces/$job/.git"
  if ok_item 0 && shows 0 'first commit of infra'; then
    ok "agent: git runs in the sandbox, in the job's worktree"
  else
    bad "agent: git in the worktree: $(item 0 | head -n 6 | tr '\n' ' ')"
  fi

  pid=$(prop hwc-agent-runner MainPID)
  kill -TERM "$pid"
  if wait_for 15 state_is hwc-agent-runner inactive; then
    check "agent: SIGTERM -> exit 0, inactive (Result=$(prop hwc-agent-runner Result))" \
      test "$(prop hwc-agent-runner Result)/$(prop hwc-agent-runner ExecMainStatus)" = success/0
  else
    bad "agent: still $(prop hwc-agent-runner ActiveState) after SIGTERM"
    dump hwc-agent-runner.service
  fi
  check "agent: no sandbox left behind" sh -c '! pgrep -x bwrap >/dev/null'
  check "agent: never killed by its seccomp filter" no_sigsys hwc-agent-runner.service
  systemctl stop scripted-model.service
else
  bad "agent: no hwc-agent-runner binary in /opt/hwc-ai/bin"
fi

echo "== eval: scenarios on a real systemd (crates/hwc-agent-runner/eval/scenarios-vm)"
if [[ -x /opt/hwc-ai/bin/hwc-agent-runner && -d /hwc-vmtest/eval-scenarios ]]; then
  # Replayed transcripts through a real runner in-process, as root on the
  # guest's system bus: real units crash-looping, stopped, started with an
  # approval and refused one; graded by the units' state afterwards.
  if HWC_EVAL_DIR=/var/tmp/hwc-eval /opt/hwc-ai/bin/hwc-agent-runner eval \
    --scenarios /hwc-vmtest/eval-scenarios --require-pass >/tmp/eval.out 2>&1; then
    ok "eval: $(tail -n 1 /tmp/eval.out)"
  else
    bad "eval: $(tr '\n' ' ' </tmp/eval.out | tail -c 3000)"
  fi
else
  bad "eval: no hwc-agent-runner binary or no scenarios in the guest"
fi

echo "guest: $pass passed, $fail failed"
exit $((fail > 0))
