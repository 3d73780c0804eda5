# hwc.ai.modelManager: hwc-model-manager keeps the declared models
# (hwc.ai.models) present, pinned and verified (docs/model-manager.md). Its
# settings are rendered in the daemon's own schema; file models go in
# `settings.file_models`. While it is disabled, Ollama models are pulled by
# nixpkgs' loader (modules/models.nix). The options every daemon has come
# from ./daemon.nix; the unit is ../nix/units/model-manager.nix.
{ config, lib, ... }:
let
  top = config.hwc.ai;
  cfg = top.modelManager;
  hlib = import ./lib.nix { inherit lib; };

  # hwc.ai.models entries the manager downloads (llama.cpp GGUF files).
  fileModels = lib.filterAttrs (_: m: m.url != null) top.models;
  # A runtime must read what the manager places: then the manager runs as
  # a fixed user whose group the runtimes join (a DynamicUser's state is
  # private to it).
  shared = fileModels != { };

  unit = import ../nix/units/model-manager.nix {
    bin = lib.getExe cfg.package;
    inherit (cfg) configFile;
    credentials = cfg.unitCredentials;
    user = if shared then hlib.modelsGroup else null;
  };
in
{
  imports = [
    (import ./daemon.nix {
      daemon = hlib.daemon "modelManager";
      settingsGenerated = ''
        This module also fills in the runtimes' addresses and a `[[models]]`
        entry for every hwc.ai.models declaration; file models it does not
        declare (safetensors for vLLM, say) go in `file_models`.
      '';
    })
  ];

  config = lib.mkIf (top.enable && cfg.enable) {
    # Rendered in hwc-model-manager's own schema (docs/model-manager.md):
    # Ollama models and llama.cpp models with a url come from hwc.ai.models;
    # other file models (e.g. safetensors for vLLM) can be added in
    # settings.file_models.
    hwc.ai.modelManager.unit = unit;
    hwc.ai.modelManager.settings = {
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
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
      ]
      ++ lib.optional top.runtimes.ollama.enable "ollama.service";
    };
  };
}
