# VM test: hwc.ai.agent on one host. A unit the agent may control
# (demo-web, unitControl) is killed and left failed; a requester asks the
# agent to bring it back in the production environment. The model is
# tests/vm/scripted_model.py (no router, no real model: a real one would not
# make these exact calls on demand): it looks at the unit (systemctl_status,
# R0), then restarts it (R2 by the policy written from `rules`), then
# finishes. The job waits for an approval; the requester's own approval is
# refused, an approver's with the action's digest lets the restart run, and
# demo-web is active again. The audit chain verifies, polkit lets the
# runner's user control demo-web and nothing else, and the unit scores
# within its 2.1 exposure budget (docs/nixos.md, "The operations agent").
#
#   nix build .#checks.x86_64-linux.agent-runner   (needs KVM)
{
  pkgs,
  self,
  ...
}:
let
  # Test secrets, in /etc (the store) on purpose; real hosts keep them in
  # /run/secrets.
  alice = "agent-alice-vm-test";
  bob = "agent-bob-vm-test";
  modelPort = "18470";
  demoPort = "18080";
  demoRoot = pkgs.writeTextDir "index.html" "demo-web\n";
in
pkgs.testers.runNixOSTest {
  name = "hwc-ai-agent-runner";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ self.nixosModules.default ];

      hwc.ai = {
        enable = true;
        agent = {
          enable = true;
          tokens = {
            alice = {
              file = "/etc/hwc-ai-test/agent-alice-token";
              role = "requester";
            };
            bob = {
              file = "/etc/hwc-ai-test/agent-bob-token";
              role = "approver";
            };
          };
          # The scripted model below stands in for the router.
          routerUrl = "http://127.0.0.1:${modelPort}/v1";
          environments.prod.production = true;
          rules = [
            {
              name = "unit-status";
              pattern = [
                "systemctl"
                "status"
              ];
              risk = "R0";
              justification = "systemctl status reads a unit's state and changes nothing";
              match = [ "systemctl status demo-web.service" ];
              not_match = [ "systemctl restart demo-web.service" ];
            }
            {
              name = "demo-web-restart";
              pattern = [
                "systemctl"
                "restart"
                "demo-web.service"
              ];
              decision = "prompt";
              risk = "R2";
              justification = "restarting demo-web interrupts the requests it serves";
              environments = [ "prod" ];
              match = [ "systemctl restart demo-web.service" ];
              not_match = [
                "systemctl restart other.service"
                "systemctl stop demo-web.service"
              ];
            }
          ];
          unitControl = [ "demo-web" ];
        };
      };

      environment.etc = {
        "hwc-ai-test/agent-alice-token".text = alice;
        "hwc-ai-test/agent-bob-token".text = bob;
      };

      # The model: one tool call per turn, chosen by the job's goal (it names
      # demo-web), then `finish`.
      systemd.services.scripted-model = {
        wantedBy = [ "multi-user.target" ];
        before = [ "hwc-agent-runner.service" ];
        serviceConfig = {
          ExecStart = "${pkgs.python3}/bin/python3 ${../vm/scripted_model.py} ${modelPort}";
          DynamicUser = true;
        };
      };
      systemd.services.hwc-agent-runner.after = [ "scripted-model.service" ];

      # The unit the agent repairs. Restart=no: once killed it stays failed
      # until someone (the agent) restarts it.
      systemd.services.demo-web = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          ExecStart = "${pkgs.python3}/bin/python3 -m http.server ${demoPort} --bind 127.0.0.1 --directory ${demoRoot}";
          DynamicUser = true;
          Restart = "no";
        };
      };

      # A unit the runner's user has no business restarting.
      systemd.services.other = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "${pkgs.coreutils}/bin/sleep infinity";
      };

      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
      ];
    };

  testScript =
    { nodes, ... }:
    let
      agent = nodes.machine.hwc.ai.agent;
    in
    ''
      import json
      import shlex

      runner = "${agent.package}/bin/hwc-agent-runner"
      config = "${agent.configFile}"
      alice = "${alice}"
      bob = "${bob}"

      def api(token, path, body=None, accept=None):
          """One request to the runner: (HTTP status, JSON body or None)."""
          args = ["-H", f"Authorization: Bearer {token}"]
          if accept:
              args += ["-H", f"Accept: {accept}"]
          if body is not None:
              args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
          out = machine.succeed(
              "curl -s -w '\\n%{http_code}' "
              + " ".join(shlex.quote(a) for a in args)
              + f" http://127.0.0.1:8472{path}"
          )
          text, _, code = out.rpartition("\n")
          return int(code), (json.loads(text) if text.strip() else None)

      def job_is(jid, jq):
          return (
              f"curl -sf -H 'Authorization: Bearer {alice}' http://127.0.0.1:8472/agent/jobs/{jid} "
              f"| jq -e {shlex.quote(jq)}"
          )

      def exposure(unit):
          line = machine.succeed(f"systemd-analyze security --no-pager {unit} | tail -n 1")
          return float(line.split(":")[1].split()[0])

      # --no-ask-password: the test driver's shell has a terminal, on which
      # systemctl would otherwise start a polkit agent and wait for a password.
      as_runner = "runuser -u hwc-ai-agent -- systemctl --no-ask-password"

      machine.wait_for_unit("scripted-model.service")
      machine.wait_for_unit("demo-web.service")
      machine.wait_for_unit("other.service")
      machine.wait_for_unit("hwc-agent-runner.service")
      machine.wait_for_open_port(8472, "127.0.0.1")
      machine.wait_until_succeeds("curl -sf http://127.0.0.1:${demoPort}/ | grep -q demo-web", timeout=60)

      with subtest("the runner's unit: fixed user, notify, within its 2.1 exposure budget"):
          show = machine.succeed("systemctl show -p Type,User,DynamicUser,SubState hwc-agent-runner")
          assert "Type=notify" in show and "User=hwc-ai-agent" in show and "DynamicUser=no" in show, show
          assert "SubState=running" in show, show
          score = exposure("hwc-agent-runner.service")
          assert score <= 2.1, f"exposure {score}"
          code, status = api(alice, "/status")
          assert code == 200, (code, status)
          assert status["sandbox"] == "ok", status

      with subtest("polkit: the runner's user may restart demo-web.service, no other unit"):
          machine.succeed(f"{as_runner} restart demo-web.service")
          machine.fail(f"{as_runner} restart other.service")
          machine.fail(f"{as_runner} stop other.service")
          machine.succeed("systemctl is-active other.service")
          machine.wait_until_succeeds("curl -sf http://127.0.0.1:${demoPort}/", timeout=30)

      with subtest("demo-web is broken: SIGKILLed, and with Restart=no it stays failed"):
          machine.succeed("systemctl kill -s KILL demo-web.service")
          machine.wait_until_succeeds("systemctl is-failed demo-web.service", timeout=30)
          machine.fail("curl -sf http://127.0.0.1:${demoPort}/")

      with subtest("a job looks at the unit, then waits for approval of the restart (R2)"):
          code, job = api(alice, "/agent/jobs", {
              "goal": "demo-web.service on this host has failed: find out why and bring it back",
              "environment": "prod",
          })
          assert code == 201, (code, job)
          jid = job["id"]
          machine.wait_until_succeeds(
              job_is(jid, '.state == "waiting_approval" and (.pending.digest | type) == "string"'), timeout=60
          )
          _, job = api(alice, f"/agent/jobs/{jid}")
          pending = job["pending"]
          assert pending["tool"] == "systemctl", pending
          assert pending["arguments"] == {"verb": "restart", "unit": "demo-web.service"}, pending
          assert pending["risk"] == "R2" and pending["rule"] == "demo-web-restart", pending
          assert pending["approvals_needed"] == 1 and pending["approved_by"] == [], pending
          # Nothing ran before an approval.
          machine.succeed("systemctl is-failed demo-web.service")

      with subtest("the requester's own approval is refused; the approver's, with the digest, is granted"):
          code, refused = api(alice, f"/agent/jobs/{jid}/approve", {"digest": pending["digest"]})
          assert code == 403, (code, refused)
          machine.succeed("systemctl is-failed demo-web.service")
          code, granted = api(bob, f"/agent/jobs/{jid}/approve", {"digest": pending["digest"], "comment": "bring it back"})
          assert code == 200 and granted["granted"], (code, granted)

      with subtest("the job completes and demo-web.service is active again"):
          machine.wait_until_succeeds(job_is(jid, '.state == "completed"'), timeout=60)
          machine.succeed("systemctl is-active demo-web.service")
          machine.wait_until_succeeds("curl -sf http://127.0.0.1:${demoPort}/ | grep -q demo-web", timeout=30)
          _, events = api(alice, f"/agent/jobs/{jid}/events", accept="application/json")
          items = [
              e["data"]["item"] for e in events["events"]
              if e["kind"] == "item.completed" and e["data"]["item"].get("tool")
          ]
          assert [i["tool"] for i in items] == ["systemctl_status", "systemctl"], items
          assert "failed" in (items[0].get("output") or ""), items[0]
          assert items[1]["status"] == "completed", items[1]
          code, report = api(alice, f"/agent/jobs/{jid}/report")
          assert code == 200, (code, report)
          restart = [a for a in report["actions"] if a["tool"] == "systemctl"]
          assert len(restart) == 1 and restart[0]["approvers"] == ["bob"], report["actions"]
          assert restart[0]["state"] == "done" and restart[0]["risk"] == "R2", restart

      with subtest("the audit chain verifies"):
          # The store and the checkpoint key are under the unit's state
          # directory, which only the unit's STATE_DIRECTORY tells the CLI.
          out = machine.succeed(
              "runuser -u hwc-ai-agent -- env STATE_DIRECTORY=/var/lib/hwc-ai/agent-runner "
              f"{runner} --config {config} audit verify --json"
          )
          audit = json.loads(out)
          assert audit["records"] > 0 and audit["breaks"] == [], audit

      with subtest("polkit still refuses another unit after the job"):
          machine.fail(f"{as_runner} restart other.service")
          machine.succeed("systemctl is-active other.service")
    '';
}
