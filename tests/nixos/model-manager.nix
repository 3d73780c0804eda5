# VM test: the model manager places a file model. A local mirror (python's
# http.server) serves SmolLM2's GGUF; the manager, configured through
# hwc.ai.modelManager.settings.file_models, downloads it under its state
# directory, checks its sha256, reports it present in /status and the
# metrics, and after a restart finds it in place without downloading again.
#
#   nix build .#checks.x86_64-linux.model-manager   (needs KVM)
{
  pkgs,
  self,
  smollm,
}:
let
  mirror = pkgs.linkFarm "hwc-ai-test-mirror" [
    {
      name = "SmolLM2-135M-Instruct.Q4_1.gguf";
      path = smollm;
    }
  ];
in
pkgs.testers.runNixOSTest {
  name = "hwc-ai-model-manager";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ self.nixosModules.default ];

      virtualisation.memorySize = 1536;

      hwc.ai = {
        enable = true;
        modelManager = {
          enable = true;
          settings.file_models = [
            {
              name = "smollm";
              dir = "/var/lib/hwc-ai/models/smollm";
              files = [
                {
                  url = "http://127.0.0.1:8000/SmolLM2-135M-Instruct.Q4_1.gguf";
                  sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
                  name = "model.gguf";
                }
              ];
            }
          ];
        };
      };

      systemd.services.model-mirror = {
        wantedBy = [ "multi-user.target" ];
        before = [ "hwc-model-manager.service" ];
        serviceConfig = {
          ExecStart = "${pkgs.python3}/bin/python3 -m http.server 8000 --bind 127.0.0.1 --directory ${mirror}";
          DynamicUser = true;
        };
      };
      systemd.services.hwc-model-manager.after = [ "model-mirror.service" ];

      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
      ];
    };

  testScript = ''
    present = "curl -sf http://127.0.0.1:8474/status | jq -e '.models[] | select(.name == \"smollm\") | .state == \"present\"'"
    gguf = "/var/lib/hwc-ai/models/smollm/model.gguf"

    machine.wait_for_unit("model-mirror.service")
    machine.wait_for_open_port(8000)
    machine.wait_for_unit("hwc-model-manager.service")

    with subtest("the file model is downloaded, checked and reported present"):
        machine.wait_until_succeeds(present, timeout=120)
        machine.succeed(f"echo 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  {gguf}' | sha256sum -c -")
        machine.succeed(
            "curl -sf http://127.0.0.1:8474/metrics | "
            "grep -q 'hwc_manager_model_present{model=\"smollm\",kind=\"file\"} 1'"
        )

    with subtest("after a restart the model is found in place, not downloaded again"):
        machine.succeed("systemctl stop model-mirror")
        machine.succeed("systemctl restart hwc-model-manager")
        machine.wait_until_succeeds(present, timeout=60)
        machine.fail(
            "curl -sf http://127.0.0.1:8474/metrics | grep -E '^hwc_manager_pull_bytes_total\\{model=\"smollm\"\\} [1-9]'"
        )
  '';
}
