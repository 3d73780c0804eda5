# What tests/vm installs in its Debian guest, rendered from the same Nix
# source the NixOS modules use (nix/units): the router's and the health
# prober's units and the prober's polkit rule. Builtins only.
#
#   nix-instantiate --eval --strict --json tests/vm/units.nix
#
# Differences from a NixOS host, all in paths or timings: binaries under
# /opt/hwc-ai/bin, configuration and test secrets under /etc/hwc-ai, and a
# 3 s watchdog (instead of 30 s) so that a hung daemon is caught in seconds.
let
  render = import ../../nix/render-unit.nix;
in
{
  "hwc-model-router.service" = render (
    import ../../nix/units/router.nix {
      routerBin = "/opt/hwc-ai/bin/hwc-model-router";
      configFile = "/etc/hwc-ai/router.toml";
      credentials.keys = "/etc/hwc-ai/router-keys.toml";
      watchdogSec = 3;
    }
  );
  "hwc-health-prober.service" = render (
    import ../../nix/units/health-prober.nix {
      proberBin = "/opt/hwc-ai/bin/hwc-health-prober";
      configFile = "/etc/hwc-ai/prober.toml";
    }
  );
  # As modules/model-manager.nix renders it when a runtime reads the models
  # it places (hwc.ai.models.<name>.url): a fixed user whose group the
  # runtimes join.
  "hwc-model-manager.service" = render (
    import ../../nix/units/model-manager.nix {
      managerBin = "/opt/hwc-ai/bin/hwc-model-manager";
      configFile = "/etc/hwc-ai/manager.toml";
      user = "hwc-models";
    }
  );
  "50-hwc-ai-prober.rules" = import ../../nix/units/health-prober-polkit.nix {
    user = "hwc-ai-prober";
    units = [
      "dummy.service"
      "broken.service"
    ];
  };
}
