# VM test: the health prober probes what is enabled without being told,
# restarts a runtime that went down (over D-Bus, allowed by the polkit rule
# the module writes), and is refused for a unit the rule does not name.
#
#   nix build .#checks.x86_64-linux.health-prober   (needs KVM)
{
  pkgs,
  self,
  smollm,
}:
pkgs.testers.runNixOSTest {
  name = "hwc-ai-health-prober";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ (import ./smollm-node.nix { inherit self smollm; }) ];

      hwc.ai = {
        router = {
          enable = true;
          allowAnonymous = true;
        };
        healthProber = {
          enable = true;
          settings = {
            defaults = {
              interval = "2s";
              failure_threshold = 2;
            };
            healing.backoff_initial = "1s";
          };
        };
      };

      # A unit the prober has no business restarting.
      systemd.services.bystander = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "${pkgs.coreutils}/bin/sleep infinity";
      };
    };

  testScript = ''
    machine.wait_for_unit("hwc-health-prober.service")
    machine.wait_for_unit("llama-cpp.service")
    machine.wait_until_succeeds("curl -sf http://127.0.0.1:8080/health", timeout=180)

    with subtest("the prober's unit: fixed user, notify, hardened"):
        show = machine.succeed("systemctl show -p Type,User,DynamicUser,SubState hwc-health-prober")
        assert "Type=notify" in show and "User=hwc-ai-prober" in show and "DynamicUser=no" in show, show
        line = machine.succeed("systemd-analyze security --no-pager hwc-health-prober.service | tail -n 1")
        score = float(line.split(":")[1].split()[0])
        assert score <= 1.5, f"exposure {score}"

    with subtest("every enabled runtime and daemon is a target"):
        status = machine.succeed("curl -sf http://127.0.0.1:8473/status")
        for name in ["llama-cpp", "router"]:
            assert name in status, status

    with subtest("polkit: restart of a probed unit allowed, of any other unit refused"):
        machine.succeed("runuser -u hwc-ai-prober -- systemctl restart llama-cpp.service")
        machine.fail("runuser -u hwc-ai-prober -- systemctl restart bystander.service")
        machine.fail("runuser -u hwc-ai-prober -- systemctl stop llama-cpp.service")
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:8080/health", timeout=180)

    with subtest("a runtime that goes down is restarted by the prober"):
        # nixpkgs' llama-cpp unit waits 300 s before its own restart; the
        # prober must be much faster than that.
        machine.succeed("systemctl kill --signal=SIGKILL llama-cpp.service")
        machine.wait_until_succeeds(
            "journalctl -u hwc-health-prober --no-pager | grep -i restart", timeout=60
        )
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:8080/health", timeout=120)
  '';
}
