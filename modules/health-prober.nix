# hwc.ai.healthProber: hwc-health-prober probes every enabled runtime and
# daemon (no target listed by hand) and restarts a unit that keeps failing,
# over systemd's D-Bus API. polkit grants exactly that: the prober's fixed
# user may `restart` exactly the units of its targets, nothing else. The
# options every daemon has come from ./daemon.nix; the unit is
# ../nix/units/health-prober.nix.
#
# Written against crates/hwc-health-prober/src/config.rs ([server],
# [defaults], [healing], [auth], [[targets]] with name, kind, url,
# restart_unit); check the generated file with
# `hwc-health-prober --config FILE --check-config`.
{ config, lib, ... }:
let
  inherit (lib)
    mkOption
    types
    literalMD
    ;
  top = config.hwc.ai;
  cfg = top.healthProber;
  hlib = import ./lib.nix { inherit lib; };

  restartable = cfg.restartUnits;

  # A target for every enabled runtime and every enabled hwc-ai daemon the
  # registry says is probed (../nix/daemons.nix), and Open WebUI.
  generatedTargets =
    map (e: {
      name = e.backend;
      kind = e.probeKind;
      inherit (e) url;
      restart_unit = e.unit;
    }) (hlib.runtimeEndpoints config)
    ++ map (d: {
      name = d.component;
      kind = d.probe;
      inherit (top.${d.attr}) url;
      restart_unit = d.unit;
    }) (builtins.filter (d: d.probe != null && top.${d.attr}.enable) hlib.daemons)
    ++ lib.optional top.openWebui.enable {
      name = "open-webui";
      kind = "open_webui";
      url = hlib.baseUrl top.openWebui.host top.openWebui.port;
      restart_unit = "open-webui.service";
    };

  unit = import ../nix/units/health-prober.nix {
    bin = lib.getExe cfg.package;
    inherit (cfg) configFile user;
    credentials = cfg.unitCredentials;
  };

  polkitRule = import ../nix/units/health-prober-polkit.nix {
    inherit (cfg) user;
    units = restartable;
  };
in
{
  imports = [
    (import ./daemon.nix {
      daemon = hlib.daemon "healthProber";
      settingsGenerated = ''
        This module also adds a `[[targets]]` entry for every enabled runtime
        and hwc-ai daemon; targets you add here are appended.
      '';
      settingsExample = {
        defaults.interval = "15s";
        healing.max_restarts_per_hour = 3;
      };
    })
  ];

  options.hwc.ai.healthProber = {
    user = mkOption {
      type = types.str;
      default = "hwc-ai-prober";
      description = ''
        Fixed system user the prober runs as; the polkit rule names it. (A
        DynamicUser has no stable name to grant rights to.)
      '';
    };

    restartUnits = mkOption {
      type = types.listOf types.str;
      readOnly = true;
      default = lib.unique (
        builtins.filter (u: u != null) (map (t: t.restart_unit or null) (cfg.settings.targets or [ ]))
      );
      defaultText = literalMD "the restart_unit of every target";
      description = "The units the polkit rule lets the prober restart (read-only).";
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    hwc.ai.healthProber.unit = unit;
    hwc.ai.healthProber.settings.targets = generatedTargets;

    users.users.${cfg.user} = {
      isSystemUser = true;
      group = cfg.user;
      description = "hwc-ai health prober";
    };
    users.groups.${cfg.user} = { };

    security.polkit.enable = true;
    security.polkit.extraConfig = polkitRule;

    systemd.services.hwc-health-prober.after = [
      "network.target"
      "dbus.service"
    ];
  };
}
