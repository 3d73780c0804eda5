#!/bin/bash
# The agent demo, inside the tests/vm guest (Debian, systemd as PID 1):
# llama-server (SmolLM2) behind the hardened router, the agent runner under
# its hardened unit with its polkit rule, and a web service that has
# crashed. The agent investigates through the router, proposes an R2
# restart, waits for the operator on the host (scripts/demo.sh relays the
# answer through /hwc-demo), acts, and the report is printed.
set -u
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
install -d -m 0755 /etc/hwc-ai /etc/polkit-1/rules.d
install -m 0644 /hwc-vmtest/units/*.service /etc/systemd/system/
install -m 0644 /hwc-demo/router.toml /etc/hwc-ai/hwc-model-router.toml
install -m 0400 /hwc-vmtest/router-keys.toml /etc/hwc-ai/
install -m 0644 /hwc-demo/agent-runner.toml /etc/hwc-ai/hwc-agent-runner.toml
install -m 0644 /hwc-demo/agent-policy.toml /etc/hwc-ai/hwc-agent-policy.toml
install -m 0644 /hwc-vmtest/units/50-hwc-ai-agent.rules /etc/polkit-1/rules.d/
useradd --system --no-create-home --user-group --shell /usr/sbin/nologin hwc-ai-agent
(umask 077 && echo demo-requester-token-5c1e > /etc/hwc-ai/agent-requester-token &&
  echo demo-approver-token-9a7d > /etc/hwc-ai/agent-admin-token)
install -d -o hwc-ai-agent -g hwc-ai-agent /srv/git/infra
# The web service that broke: its process was killed, and Restart=no left it failed.
printf '[Unit]\nDescription=the demo web service\n[Service]\nExecStart=/usr/bin/python3 -m http.server --bind 127.0.0.1 8081\nDynamicUser=yes\n' \
  >/etc/systemd/system/agent-target.service
systemctl daemon-reload
systemctl restart polkit.service
systemd-run --quiet --unit=llama-cpp --property=DynamicUser=yes --setenv=LD_LIBRARY_PATH=/opt/llama/bin \
  /opt/llama/bin/llama-server -m /opt/llama/model.gguf --host 127.0.0.1 --port 8080 -c 8192 -t 2 --alias smollm
for _ in $(seq 1 300); do curl -sf http://127.0.0.1:8080/health >/dev/null && break; sleep 0.2; done
systemctl start hwc-model-router.service hwc-agent-runner.service agent-target.service
systemctl kill -s KILL agent-target.service
sleep 1
say "agent-target.service (the web service) is $(systemctl is-active agent-target.service): its process was killed."
python3 /hwc-demo/drive.py
rc=$?
say "agent-target.service is now: $(systemctl is-active agent-target.service)"
exit $rc
