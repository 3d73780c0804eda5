# VM test: the router in front of llama.cpp (nixpkgs' services.llama-cpp)
# serving SmolLM2-135M-Instruct from a fixed-output download, everything
# configured through hwc.ai.*. Proves in a real NixOS: the units reach
# active under their full hardening (exposure at most 1.5 as systemd itself
# scores it), a chat completion goes through the router to the model, keys
# are enforced, state lands in /var/lib/hwc-ai/router, a killed router is
# restarted and a stopped one exits cleanly.
#
#   nix build .#checks.x86_64-linux.router-llama-cpp   (needs KVM)
{
  pkgs,
  self,
  smollm,
}:
pkgs.testers.runNixOSTest {
  name = "hwc-ai-router-llama-cpp";

  nodes.machine =
    { ... }:
    {
      imports = [ (import ./smollm-node.nix { inherit self smollm; }) ];

      hwc.ai = {
        runtimes.llamaCpp.extraFlags = [
          "--threads"
          "2"
        ];
        router = {
          enable = true;
          localOnly = true;
          # A test secret: in /etc (the store) on purpose; real hosts keep
          # it in /run/secrets.
          keysFile = "/etc/hwc-ai-test/router-keys.toml";
          settings.aliases.default = "smollm";
        };
      };

      environment.etc."hwc-ai-test/router-keys.toml".text = ''
        [[keys]]
        name = "vm-test"
        secret = "sk-hwc-vm-test"
      '';
    };

  testScript = ''
    import json

    def exposure(unit):
        line = machine.succeed(f"systemd-analyze security --no-pager {unit} | tail -n 1")
        return float(line.split(":")[1].split()[0])

    auth = "-H 'Authorization: Bearer sk-hwc-vm-test'"
    chat = json.dumps({
        "model": "default",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 16,
    })

    machine.wait_for_unit("llama-cpp.service")
    machine.wait_for_unit("hwc-model-router.service")
    machine.wait_for_open_port(8470)
    machine.wait_until_succeeds("curl -sf http://127.0.0.1:8080/health", timeout=180)

    with subtest("the router is ready once llama.cpp is"):
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:8470/readyz", timeout=60)
        machine.succeed("curl -sf http://127.0.0.1:8470/healthz")

    with subtest("a chat completion goes through the router to the model"):
        out = json.loads(machine.succeed(
            f"curl -sf {auth} -H 'Content-Type: application/json' "
            f"-d '{chat}' http://127.0.0.1:8470/v1/chat/completions"
        ))
        assert out["choices"][0]["message"]["content"], out
        headers = machine.succeed(
            f"curl -s -o /dev/null -D - {auth} -H 'Content-Type: application/json' "
            f"-d '{chat}' http://127.0.0.1:8470/v1/chat/completions"
        )
        assert "x-hwc-backend: llama-cpp" in headers.lower(), headers

    with subtest("keys are enforced"):
        code = machine.succeed(
            "curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "
            f"-d '{chat}' http://127.0.0.1:8470/v1/chat/completions"
        )
        assert code == "401", code

    with subtest("the router runs as a DynamicUser, notify + watchdog, hardened"):
        show = machine.succeed(
            "systemctl show -p Type,NotifyAccess,WatchdogUSec,DynamicUser,SubState,StatusText hwc-model-router"
        )
        assert "Type=notify" in show and "DynamicUser=yes" in show and "SubState=running" in show, show
        assert "WatchdogUSec=30s" in show, show
        score = exposure("hwc-model-router.service")
        assert score <= 1.5, f"exposure {score}"
        machine.succeed("test -f /var/lib/hwc-ai/router/router.sqlite")
        machine.succeed("curl -sf http://127.0.0.1:8470/metrics | grep -q hwc_router_requests_total")

    with subtest("a killed router is restarted"):
        pid = machine.succeed("systemctl show -P MainPID hwc-model-router").strip()
        machine.succeed(f"kill -KILL {pid}")
        machine.wait_until_succeeds(
            "test $(systemctl show -P NRestarts hwc-model-router) -ge 1", timeout=30
        )
        machine.wait_for_unit("hwc-model-router.service")
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:8470/healthz", timeout=30)

    with subtest("SIGTERM drains and exits 0: inactive, not failed"):
        machine.succeed("systemctl stop hwc-model-router")
        show = machine.succeed("systemctl show -p ActiveState,Result,ExecMainStatus hwc-model-router")
        assert "ActiveState=inactive" in show and "Result=success" in show, show
        assert "ExecMainStatus=0" in show, show
  '';
}
