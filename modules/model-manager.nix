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

  # hwc.ai.models entries the manager downloads (llama.cpp GGUF files).
  fileModels = lib.filterAttrs (_: m: m.url != null) top.models;
  # A runtime must read what the manager places: then the manager runs as
  # a fixed user whose group the runtimes join (a DynamicUser's state is
  # private to it).
  shared = fileModels != { };

  unit = import ../nix/units/model-manager.nix {
    managerBin = lib.getExe cfg.package;
    inherit (cfg) configFile;
    user = if shared then hlib.modelsGroup else null;
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
    # Ollama models and llama.cpp models with a url come from hwc.ai.models;
    # other file models (e.g. safetensors for vLLM) can be added in
    # settings.file_models.
    hwc.ai.modelManager.settings = {
      server.listen = hlib.listenAddress cfg.host cfg.port;
      ollama = lib.optionalAttrs top.runtimes.ollama.enable {
        url = "http://${config.services.ollama.host}:${toString config.services.ollama.port}";
      };
      file_models = lib.mapAttrsToList (name: m: {
        inherit name;
        dir = "${hlib.managedModelsDir}/${name}";
        files = [
          {
            inherit (m) url sha256;
            name = hlib.fileNameOfUrl m.url;
          }
        ];
      }) fileModels;
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

    users.users.${hlib.modelsGroup} = lib.mkIf shared {
      isSystemUser = true;
      group = hlib.modelsGroup;
      description = "hwc-ai model manager (owns the placed model files)";
    };
    users.groups.${hlib.modelsGroup} = lib.mkIf shared { };

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
