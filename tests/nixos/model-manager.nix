# VM test: a llama.cpp model declared with a url. The model manager
# downloads SmolLM2's GGUF from a local mirror (python's http.server),
# checks its sha256 and places it under /var/lib/hwc-ai/models; llama.cpp,
# whose unit waits for the file (a path unit), starts once it is there and
# reads it through the hwc-models group; a chat completion goes through the
# router. After a restart the manager finds the model in place without
# downloading again.
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

      virtualisation = {
        memorySize = 2048;
        cores = 2;
      };

      hwc.ai = {
        enable = true;
        models.smollm = {
          runtime = "llamaCpp";
          url = "http://127.0.0.1:8000/SmolLM2-135M-Instruct.Q4_1.gguf";
          sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
        };
        runtimes.llamaCpp = {
          enable = true;
          contextSize = 2048;
          jinja = false;
        };
        modelManager.enable = true;
        router = {
          enable = true;
          allowAnonymous = true;
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
    import json

    present = "curl -sf http://127.0.0.1:8474/status | jq -e '.models[] | select(.name == \"smollm\") | .state == \"present\"'"
    gguf = "/var/lib/hwc-ai/models/smollm/SmolLM2-135M-Instruct.Q4_1.gguf"

    machine.wait_for_unit("model-mirror.service")
    machine.wait_for_open_port(8000)
    machine.wait_for_unit("hwc-model-manager.service")

    with subtest("the file model is downloaded, checked and reported present"):
        machine.wait_until_succeeds(present, timeout=120)
        machine.succeed(f"echo 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  {gguf}' | sha256sum -c -")
        assert machine.succeed(f"stat -c '%a %U %G' {gguf}").strip() == "640 hwc-models hwc-models"
        machine.succeed(
            "curl -sf http://127.0.0.1:8474/metrics | "
            "grep -q 'hwc_manager_model_present{model=\"smollm\",kind=\"file\"} 1'"
        )

    with subtest("llama.cpp starts once the file is there and serves it through the router"):
        machine.wait_for_unit("llama-cpp.service")
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:8080/health", timeout=120)
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:8470/readyz", timeout=60)
        chat = json.dumps({"model": "smollm", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8})
        out = json.loads(machine.succeed(
            f"curl -sf -H 'Content-Type: application/json' -d '{chat}' http://127.0.0.1:8470/v1/chat/completions"
        ))
        assert out["choices"][0]["message"]["content"], out

    with subtest("after a restart the model is found in place, not downloaded again"):
        machine.succeed("systemctl stop model-mirror")
        machine.succeed("systemctl restart hwc-model-manager")
        machine.wait_until_succeeds(present, timeout=60)
        machine.fail(
            "curl -sf http://127.0.0.1:8474/metrics | grep -E '^hwc_manager_pull_bytes_total\\{model=\"smollm\"\\} [1-9]'"
        )
  '';
}
