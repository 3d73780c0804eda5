# What tests/vm installs in its Debian guest, rendered from the same Nix
# source the NixOS modules use (nix/units): the unit of every daemon of the
# registry (nix/daemons.nix), the prober's polkit rule and the agent
# runner's (hwc.ai.agent.unitControl). Builtins only.
#
#   nix-instantiate --eval --strict --json tests/vm/units.nix
#
# Differences from a NixOS host, all in paths or timings: binaries under
# /opt/hwc-ai/bin, configuration (tests/vm/<crate>.toml) and test secrets
# under /etc/hwc-ai, and a 3 s router watchdog (instead of 30 s) so that a
# hung daemon is caught in seconds.
let
  render = import ../../nix/render-unit.nix;
  daemons = import ../../nix/daemons.nix;

  # What a daemon's unit gets here beyond its binary and configuration.
  extra = {
    hwc-model-router = {
      credentials.keys = "/etc/hwc-ai/router-keys.toml";
      watchdogSec = 3;
    };
    # As modules/model-manager.nix renders it when a runtime reads the
    # models it places (hwc.ai.models.<name>.url): a fixed user whose group
    # the runtimes join.
    hwc-model-manager.user = "hwc-models";
    # Its tokens and repository (tests/vm/hwc-agent-runner.toml names
    # them), made by guest.sh.
    hwc-agent-runner = {
      credentials = {
        agent-requester-token = "/etc/hwc-ai/agent-requester-token";
        agent-admin-token = "/etc/hwc-ai/agent-admin-token";
      };
      repositories = [ "/srv/git/infra" ];
    };
  };
in
builtins.listToAttrs (
  map (d: {
    name = d.unit;
    value = render (
      import (../../nix/units + "/${d.unitFile}") (
        {
          bin = "/opt/hwc-ai/bin/${d.crate}";
          configFile = "/etc/hwc-ai/${d.crate}.toml";
        }
        // extra.${d.crate} or { }
      )
    );
  }) daemons
)
// {
  "50-hwc-ai-prober.rules" = import ../../nix/units/health-prober-polkit.nix {
    user = "hwc-ai-prober";
    units = [
      "dummy.service"
      "broken.service"
    ];
  };
  "50-hwc-ai-agent.rules" = import ../../nix/units/agent-runner-polkit.nix {
    user = "hwc-ai-agent";
    units = [ "agent-target.service" ];
  };
}
