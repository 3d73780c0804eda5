# VM test: hwc.ai.monitoring on one host. Prometheus scrapes the router, the
# health prober, the model manager and llama.cpp with the labels the
# dashboards read, loads the hwc-ai alert rules, and Grafana serves the
# provisioned dashboards through the datasource by uid, with its secrets
# generated on first start.
#
#   nix build .#checks.x86_64-linux.monitoring   (needs KVM)
{
  pkgs,
  self,
  smollm,
}:
pkgs.testers.runNixOSTest {
  name = "hwc-ai-monitoring";

  nodes.machine =
    { ... }:
    {
      imports = [ (import ./smollm-node.nix { inherit self smollm; }) ];

      virtualisation.memorySize = 3072;
      networking.hostName = "machine";

      hwc.ai = {
        router = {
          enable = true;
          allowAnonymous = true;
        };
        healthProber.enable = true;
        modelManager.enable = true;
        monitoring = {
          enable = true;
          scrapeInterval = "2s";
          grafana = {
            enable = true;
            # A test secret in the store on purpose; real hosts leave it
            # null (generated) or keep it in /run/secrets.
            adminPasswordFile = "/etc/hwc-ai-test/grafana-admin-password";
          };
        };
      };

      environment.etc."hwc-ai-test/grafana-admin-password".text = "hwc-vm-test";
    };

  testScript = ''
    import json

    def prom(path):
        return json.loads(machine.succeed(f"curl -sf 'http://127.0.0.1:9090/api/v1/{path}'"))

    grafana = "curl -sf -u admin:hwc-vm-test http://127.0.0.1:3001"

    machine.wait_for_unit("prometheus.service")
    machine.wait_for_unit("hwc-model-router.service")
    machine.wait_for_unit("hwc-health-prober.service")
    machine.wait_for_unit("hwc-model-manager.service")
    machine.wait_until_succeeds("curl -sf http://127.0.0.1:8080/health", timeout=180)

    with subtest("every enabled daemon and runtime is scraped and up, with host and component"):
        machine.wait_until_succeeds(
            "curl -sf http://127.0.0.1:9090/api/v1/targets | "
            "jq -e '[.data.activeTargets[] | select(.health == \"up\")] | length == 4'",
            timeout=120,
        )
        targets = {t["labels"]["job"]: t["labels"] for t in prom("targets")["data"]["activeTargets"]}
        assert set(targets) == {"hwc-router", "hwc-health-prober", "hwc-model-manager", "hwc-llama-cpp"}, targets
        assert targets["hwc-router"]["component"] == "router", targets
        assert targets["hwc-llama-cpp"]["model"] == "smollm", targets
        assert all(l["host"] == "machine" for l in targets.values()), targets

    with subtest("the hwc-ai alert rules are loaded and evaluate"):
        machine.wait_until_succeeds(
            "curl -sf http://127.0.0.1:9090/api/v1/rules | "
            "jq -e '[.data.groups[].rules[] | select(.health == \"ok\")] | length >= 14'",
            timeout=60,
        )
        firing = prom("alerts")["data"]["alerts"]
        assert not [a for a in firing if a["labels"]["alertname"] == "HwcComponentDown"], firing

    with subtest("Grafana serves the provisioned dashboards and queries Prometheus by uid"):
        machine.wait_for_unit("grafana.service")
        machine.wait_for_open_port(3001)
        machine.succeed("test -s /var/lib/grafana/hwc-ai-secrets/secret-key")
        for uid in ["hwc-fleet", "hwc-router", "hwc-runtimes", "hwc-agents"]:
            machine.wait_until_succeeds(
                f"{grafana}/api/dashboards/uid/{uid} | jq -e '.dashboard.uid == \"{uid}\"'", timeout=60
            )
        ds = json.loads(machine.succeed(f"{grafana}/api/datasources/uid/hwc-prometheus"))
        assert ds["type"] == "prometheus", ds
        machine.succeed(
            f"{grafana}/api/datasources/proxy/uid/hwc-prometheus/api/v1/query?query=up | "
            "jq -e '.data.result | length >= 4'"
        )
  '';
}
