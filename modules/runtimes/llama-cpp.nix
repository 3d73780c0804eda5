# hwc.ai.runtimes.llamaCpp: nixpkgs' services.llama-cpp (llama-server), with
# the package chosen by hwc.ai.acceleration. Checked against
# nixos/modules/services/misc/llama-cpp.nix (options enable, package, model,
# extraFlags, host, port; its unit has PrivateDevices=false and no
# DevicePolicy, which this module tightens below, and ProcSubset=pid, which
# it relaxes for CUDA and ROCm).
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
  cfg = top.runtimes.llamaCpp;
  hlib = import ../lib.nix { inherit lib; };
  declared = lib.filterAttrs (_: m: m.runtime == "llamaCpp") top.models;
  declaredNames = builtins.attrNames declared;
  # The model is a file the model manager places (hwc.ai.models.<name>.url).
  managed = cfg.model != null && lib.hasPrefix "${hlib.managedModelsDir}/" (toString cfg.model);
  supplementaryGroups =
    lib.optionals (top.acceleration == "rocm") [
      "render"
      "video"
    ]
    ++ lib.optional managed hlib.modelsGroup;
in
{
  options.hwc.ai.runtimes.llamaCpp = {
    enable = lib.mkEnableOption "llama.cpp's llama-server as a runtime (configures nixpkgs' services.llama-cpp)";

    package = mkOption {
      type = types.package;
      default = (hlib.runtimePackages pkgs top.acceleration).llamaCpp;
      defaultText = literalMD ''
        pkgs.llama-cpp, built with cudaSupport or rocmSupport following hwc.ai.acceleration'';
      description = "The llama.cpp package (sets `services.llama-cpp.package`).";
    };

    model = mkOption {
      type = types.nullOr types.path;
      default = if declaredNames == [ ] then null else declared.${builtins.head declaredNames}.source;
      defaultText = literalMD ''the `source` of the hwc.ai.models entry with runtime = "llamaCpp"'';
      example = "/var/lib/models/gpt-oss-20b-mxfp4.gguf";
      description = "The GGUF file llama-server serves (`services.llama-cpp.model`).";
    };

    modelName = mkOption {
      type = types.str;
      default = if declaredNames == [ ] then "llama-cpp" else builtins.head declaredNames;
      defaultText = literalMD ''the name of the hwc.ai.models entry with runtime = "llamaCpp", else "llama-cpp"'';
      description = "The name llama-server reports (`--alias`) and the router exposes.";
    };

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "Address llama-server listens on.";
    };

    port = mkOption {
      type = types.port;
      default = 8080;
      description = "Port llama-server listens on.";
    };

    contextSize = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      example = 16384;
      description = "Context window (`--ctx-size`); `null` keeps llama-server's default (the model's).";
    };

    gpuLayers = mkOption {
      type = types.nullOr types.ints.unsigned;
      default = if top.acceleration == null then null else 999;
      defaultText = literalMD "999 (all) with acceleration, else null";
      description = "Layers offloaded to the GPU (`--n-gpu-layers`).";
    };

    jinja = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Render chat templates with llama-server's Jinja engine (`--jinja`);
        gpt-oss needs it for the harmony format and tool calls.
      '';
    };

    extraFlags = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--threads"
        "8"
      ];
      description = "Further llama-server flags, after the ones this module sets.";
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    assertions = [
      {
        assertion = cfg.model != null;
        message = ''
          hwc.ai.runtimes.llamaCpp is enabled without a model. Set
          hwc.ai.runtimes.llamaCpp.model to a GGUF file, or declare one in
          hwc.ai.models with runtime = "llamaCpp".
        '';
      }
      {
        assertion = builtins.length declaredNames <= 1;
        message = ''
          llama-server serves one model, but hwc.ai.models declares
          ${toString (builtins.length declaredNames)} for llamaCpp: ${lib.concatStringsSep ", " declaredNames}.
          Keep one, or serve the others with Ollama or vLLM.
        '';
      }
    ];

    services.llama-cpp = {
      enable = true;
      inherit (cfg) package host port;
      # Left undefined when unset: the assertion above says what to do.
      model = lib.mkIf (cfg.model != null) cfg.model;
      extraFlags = [
        "--alias"
        cfg.modelName
        # Prometheus metrics on /metrics (llamacpp:* names).
        "--metrics"
      ]
      ++ lib.optional cfg.jinja "--jinja"
      ++ lib.optionals (cfg.contextSize != null) [
        "--ctx-size"
        (toString cfg.contextSize)
      ]
      ++ lib.optionals (cfg.gpuLayers != null) [
        "--n-gpu-layers"
        (toString cfg.gpuLayers)
      ]
      ++ cfg.extraFlags;
    };

    # A model the manager downloads: llama-server reads it through the
    # models group, and starts when the file is in place (a path unit),
    # not before: started without its model it would only fail.
    systemd.paths.llama-cpp-model = lib.mkIf managed {
      wantedBy = [ "multi-user.target" ];
      pathConfig = {
        PathExists = cfg.model;
        Unit = "llama-cpp.service";
      };
    };

    systemd.services.llama-cpp = {
      wantedBy = lib.mkIf managed (lib.mkForce [ ]);
      environment = lib.mkIf (top.acceleration == "rocm" && top.rocm.gfxOverride != null) {
        HSA_OVERRIDE_GFX_VERSION = top.rocm.gfxOverride;
      };
      # nixpkgs' unit leaves every device node reachable (PrivateDevices=false
      # for GPUs, no DevicePolicy). Tighten: no devices on a CPU host, only the
      # GPU's nodes with acceleration. Priority 90 beats nixpkgs' plain
      # definition and still yields to an operator's lib.mkForce.
      serviceConfig = {
        PrivateDevices = lib.mkOverride 90 (top.acceleration == null);
        DevicePolicy = lib.mkOverride 90 "closed";
        DeviceAllow = hlib.gpuDeviceAllow top.acceleration;
        SupplementaryGroups = lib.mkIf (supplementaryGroups != [ ]) supplementaryGroups;

        # Relaxation, GPU only: the GPU libraries read /proc beyond the
        # service's own processes (the NVIDIA driver /proc/driver/nvidia,
        # ROCm's thunk /proc/cpuinfo for its topology), which nixpkgs'
        # ProcSubset=pid hides. nixpkgs' ollama unit, on the same ggml
        # backends, and nix/units/vllm.nix relax it too.
        ProcSubset = lib.mkIf (top.acceleration != null) (lib.mkOverride 90 "all");
        # Kept from nixpkgs with a GPU too, unlike nix/units/vllm.nix:
        # MemoryDenyWriteExecute (that unit needs it off for PyTorch/Triton's
        # JIT; llama.cpp has none, its kernels are built ahead of time) and
        # PrivateUsers (device access is checked against the kernel's IDs and
        # the render/video groups, which the user namespace leaves as they
        # are). nixpkgs' ollama unit keeps both with CUDA and ROCm.
      };
    };
  };
}
