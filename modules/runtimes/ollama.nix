# hwc.ai.runtimes.ollama: nixpkgs' services.ollama, with the package chosen
# by hwc.ai.acceleration. nixpkgs' unit is kept as it is (DynamicUser, the
# full sandbox, DeviceAllow for NVIDIA/AMD nodes); checked against
# nixos/modules/services/misc/ollama.nix (options enable, package, host,
# port, environmentVariables, rocmOverrideGfx, loadModels).
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
  cfg = top.runtimes.ollama;
  hlib = import ../lib.nix { inherit lib; };
in
{
  options.hwc.ai.runtimes.ollama = {
    enable = lib.mkEnableOption "Ollama as a runtime (configures nixpkgs' services.ollama)";

    package = mkOption {
      type = types.package;
      default = (hlib.runtimePackages pkgs top.acceleration).ollama;
      defaultText = literalMD ''
        pkgs.ollama, pkgs.ollama-cuda or pkgs.ollama-rocm, following hwc.ai.acceleration'';
      description = "The Ollama package (sets `services.ollama.package`).";
    };

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "Address Ollama listens on. Keep loopback: clients go through the router.";
    };

    port = mkOption {
      type = types.port;
      default = 11434;
      description = "Port Ollama listens on.";
    };

    environmentVariables = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        OLLAMA_KEEP_ALIVE = "30m";
        OLLAMA_NUM_PARALLEL = "2";
      };
      description = "Extra environment for the Ollama server (`services.ollama.environmentVariables`).";
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    services.ollama = {
      enable = true;
      inherit (cfg)
        package
        host
        port
        environmentVariables
        ;
      rocmOverrideGfx = lib.mkIf (top.acceleration == "rocm") top.rocm.gfxOverride;
    };
  };
}
