# hwc.ai.healthProber: hwc-health-prober probes every enabled runtime and
# daemon (no target listed by hand) and restarts a unit that keeps failing,
# over systemd's D-Bus API. polkit grants exactly that: the prober's fixed
# user may `restart` exactly the units of its targets, nothing else. The
# unit is ../nix/units/health-prober.nix.
#
# Written against crates/hwc-health-prober/src/config.rs ([server],
# [defaults], [healing], [auth], [[targets]] with name, kind, url,
# restart_unit); check the generated file with
# `hwc-health-prober --config FILE --check-config`.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    types
    literalExpression
    literalMD
    ;
  top = config.hwc.ai;
  cfg = top.healthProber;
  hlib = import ./lib.nix { inherit lib; };
  settingsFormat = pkgs.formats.toml { };

  restartable = cfg.restartUnits;

  # A target for every enabled runtime and hwc-ai daemon.
  generatedTargets =
    map (e: {
      name = e.backend;
      kind = e.probeKind;
      inherit (e) url;
      restart_unit = e.unit;
    }) (hlib.runtimeEndpoints config)
    ++ lib.optional top.router.enable {
      name = "router";
      kind = "hwc";
      url = top.router.url;
      restart_unit = "hwc-model-router.service";
    }
    ++ lib.optional top.modelManager.enable {
      name = "model-manager";
      kind = "hwc";
      url = hlib.baseUrl top.modelManager.host top.modelManager.port;
      restart_unit = "hwc-model-manager.service";
    }
    ++ lib.optional top.openWebui.enable {
      name = "open-webui";
      kind = "open_webui";
      url = hlib.baseUrl top.openWebui.host top.openWebui.port;
      restart_unit = "open-webui.service";
    };

  credentials = lib.listToAttrs (
    lib.imap0 (i: f: lib.nameValuePair "token-${toString i}" f) cfg.tokenFiles
  );

  unit = import ../nix/units/health-prober.nix {
    proberBin = lib.getExe cfg.package;
    inherit (cfg) configFile user;
    inherit credentials;
  };

  polkitRule = import ../nix/units/health-prober-polkit.nix {
    inherit (cfg) user;
    units = restartable;
  };
in
{
  options.hwc.ai.healthProber = {
    enable = lib.mkEnableOption "hwc-health-prober, which probes every runtime and daemon and restarts failed units";

    package = hlib.daemonPackageOption { inherit top pkgs; } "hwc-health-prober";

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "Address of the prober's HTTP API (`/status`, `/metrics`).";
    };

    port = mkOption {
      type = types.port;
      default = 8473;
      description = "Port of the prober's HTTP API.";
    };

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

    tokenFiles = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = ''
        Files each holding a bearer token for the prober's own API
        (`auth.token_files`), passed with `LoadCredential`.
      '';
    };

    settings = mkOption {
      type = types.submodule { freeformType = settingsFormat.type; };
      default = { };
      example = {
        defaults.interval = "15s";
        healing.max_restarts_per_hour = 3;
      };
      description = ''
        hwc-health-prober's configuration, rendered to TOML. This module fills
        in `server.listen`, `auth.token_files` and a `[[targets]]` entry for
        every enabled runtime and hwc-ai daemon; targets you add here are
        appended.
      '';
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = settingsFormat.generate "hwc-health-prober.toml" cfg.settings;
      defaultText = literalMD "the rendered settings";
      description = "The rendered configuration file (read-only).";
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    hwc.ai.healthProber.settings = {
      server.listen = hlib.listenAddress cfg.host cfg.port;
      auth.token_files = lib.mkIf (cfg.tokenFiles != [ ]) (builtins.attrNames credentials);
      targets = generatedTargets;
    };

    users.users.${cfg.user} = {
      isSystemUser = true;
      group = cfg.user;
      description = "hwc-ai health prober";
    };
    users.groups.${cfg.user} = { };

    security.polkit.enable = true;
    security.polkit.extraConfig = polkitRule;

    systemd.services.hwc-health-prober = {
      description = unit.unitConfig.Description;
      wantedBy = [ "multi-user.target" ];
      after = [
        "network.target"
        "dbus.service"
      ];
      unitConfig = builtins.removeAttrs unit.unitConfig [ "Description" ];
      inherit (unit) serviceConfig;
    };
  };
}
