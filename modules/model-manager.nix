# hwc.ai.modelManager: hwc-model-manager keeps the declared models
# (hwc.ai.models) present, pinned and verified (docs/model-manager.md). Its
# settings are rendered in the daemon's own schema; file models go in
# `settings.file_models`. While it is disabled, Ollama models are pulled by
# nixpkgs' loader (modules/models.nix).
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
  cfg = top.modelManager;
  hlib = import ./lib.nix { inherit lib; };
  settingsFormat = pkgs.formats.toml { };

  unit = import ../nix/units/model-manager.nix {
    managerBin = lib.getExe cfg.package;
    inherit (cfg) configFile;
  };
in
{
  options.hwc.ai.modelManager = {
    enable = lib.mkEnableOption "hwc-model-manager, which keeps the declared models pulled, pinned and verified";

    package = hlib.daemonPackageOption { inherit top pkgs; } "hwc-model-manager";

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "Address of the model manager's HTTP API.";
    };

    port = mkOption {
      type = types.port;
      default = 8474;
      description = "Port of the model manager's HTTP API.";
    };

    settings = mkOption {
      type = types.submodule { freeformType = settingsFormat.type; };
      default = { };
      description = ''
        hwc-model-manager's configuration, rendered to TOML. This module fills
        in `server.listen`, the runtimes' addresses and a `[[models]]` entry
        for every hwc.ai.models declaration.
      '';
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = settingsFormat.generate "hwc-model-manager.toml" cfg.settings;
      defaultText = literalMD "the rendered settings";
      description = "The rendered configuration file (read-only).";
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    # Rendered in hwc-model-manager's own schema (docs/model-manager.md):
    # Ollama models come from hwc.ai.models; file models (GGUF and
    # safetensors files with URL and sha256) are declared in settings
    # directly, as `file_models`, since a runtime's model option names a
    # path, not a download.
    hwc.ai.modelManager.settings = {
      server.listen = hlib.listenAddress cfg.host cfg.port;
      ollama = lib.optionalAttrs top.runtimes.ollama.enable {
        url = "http://${config.services.ollama.host}:${toString config.services.ollama.port}";
      };
      ollama_models = lib.mapAttrsToList (
        _name: m:
        {
          name = m.source;
          verify = true;
          update = if m.autoUpdate then "schedule" else "never";
        }
        // lib.optionalAttrs (m.digest != null) { inherit (m) digest; }
      ) (lib.filterAttrs (_: m: m.runtime == "ollama") top.models);
    };

    systemd.services.hwc-model-manager = {
      description = unit.unitConfig.Description;
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
      ]
      ++ lib.optional top.runtimes.ollama.enable "ollama.service";
      unitConfig = builtins.removeAttrs unit.unitConfig [ "Description" ];
      inherit (unit) serviceConfig;
    };
  };
}
