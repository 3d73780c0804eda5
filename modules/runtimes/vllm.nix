# hwc.ai.runtimes.vllm: one systemd unit per vLLM instance. nixpkgs has a
# vLLM package (python3Packages.vllm) but no service, so the unit is ours:
# ../../nix/units/vllm.nix (builtins only, also scored by
# tests/nix). Readiness: the unit is Type=exec and an
# ExecStartPost waits until GET /health answers, so `systemctl start`
# returns, and units ordered after it start, only once the model is loaded
# (docs/adr/0003-nixos-module-design.md).
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
  cfg = top.runtimes.vllm;
  hlib = import ../lib.nix { inherit lib; };
  enabled = lib.filterAttrs (_: inst: inst.enable) cfg.instances;

  instanceType = types.submodule (
    { name, config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Run this instance.";
        };

        package = mkOption {
          type = types.package;
          default = cfg.package;
          defaultText = literalExpression "config.hwc.ai.runtimes.vllm.package";
          description = "The vLLM package of this instance.";
        };

        model = mkOption {
          type = types.str;
          example = "openai/gpt-oss-120b";
          description = ''
            What `vllm serve` loads: a Hugging Face repository (downloaded into
            the instance's state directory on first start) or a local
            directory.
          '';
        };

        servedModelName = mkOption {
          type = types.str;
          default = name;
          defaultText = literalMD "<the instance's name>";
          description = "The model name clients and the router use (`--served-model-name`).";
        };

        host = mkOption {
          type = types.str;
          default = "127.0.0.1";
          description = "Address the instance listens on.";
        };

        port = mkOption {
          type = types.port;
          example = 8000;
          description = "Port the instance listens on. Each instance needs its own.";
        };

        gpus = mkOption {
          type = types.listOf types.ints.unsigned;
          default = [ ];
          example = [
            0
            1
          ];
          description = ''
            GPU indices this instance may use (`CUDA_VISIBLE_DEVICES`, or
            `HIP_VISIBLE_DEVICES` with ROCm). Empty: all GPUs.
          '';
        };

        tensorParallelSize = mkOption {
          type = types.ints.positive;
          default = lib.max 1 (builtins.length config.gpus);
          defaultText = literalMD "the number of gpus, at least 1";
          description = "GPUs one copy of the model is split over (`--tensor-parallel-size`).";
        };

        gpuMemoryUtilization = mkOption {
          type = types.nullOr (types.numbers.between 0.05 1.0);
          default = null;
          example = 0.9;
          description = ''
            Fraction of each GPU's memory this instance may take
            (`--gpu-memory-utilization`); set it below 1 when two instances
            share a GPU. `null`: vLLM's default (0.9).
          '';
        };

        maxModelLen = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          example = 65536;
          description = "Context length (`--max-model-len`); `null`: the model's own.";
        };

        extraArgs = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [
            "--tool-call-parser"
            "openai"
            "--enable-auto-tool-choice"
          ];
          description = "Further `vllm serve` arguments.";
        };

        environment = mkOption {
          type = types.attrsOf types.str;
          default = { };
          description = "Extra environment of the instance (never secrets; use an environment file for a Hugging Face token).";
        };

        environmentFile = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/run/secrets/hf-token.env";
          description = "File with `HF_TOKEN=...` for gated repositories (`EnvironmentFile=`), kept out of the store.";
        };

        offline = mkOption {
          type = types.bool;
          default = lib.hasPrefix "/" config.model;
          defaultText = literalMD "true when model is a local path";
          description = "Never contact the Hugging Face hub (`HF_HUB_OFFLINE=1`).";
        };

        startTimeout = mkOption {
          type = types.ints.positive;
          default = 1800;
          description = ''
            Seconds the instance may take to answer GET /health after start
            (weight download on first start, loading, CUDA graph capture).
          '';
        };
      };
    }
  );

  # 0.92 -> "0.92" (toString gives "0.920000").
  formatFloat =
    f:
    let
      m = builtins.match "([0-9]+[.][0-9]*[1-9])0*" (toString f);
    in
    if m == null then toString f else builtins.head m;

  unitOf =
    name: inst:
    let
      stateDir = "/var/lib/vllm/${name}";
      url = hlib.baseUrl inst.host inst.port;
      args = [
        "serve"
        inst.model
        "--host"
        inst.host
        "--port"
        (toString inst.port)
        "--served-model-name"
        inst.servedModelName
        "--tensor-parallel-size"
        (toString inst.tensorParallelSize)
      ]
      ++ lib.optionals (inst.gpuMemoryUtilization != null) [
        "--gpu-memory-utilization"
        (formatFloat inst.gpuMemoryUtilization)
      ]
      ++ lib.optionals (inst.maxModelLen != null) [
        "--max-model-len"
        (toString inst.maxModelLen)
      ]
      ++ inst.extraArgs;
      visible = lib.concatMapStringsSep "," toString inst.gpus;
    in
    (import ../../nix/units/vllm.nix {
      inherit name args url;
      inherit (top) acceleration;
      vllmBin = lib.getExe' inst.package "vllm";
      curlBin = lib.getExe pkgs.curl;
      startTimeoutSec = inst.startTimeout;
    })
    // {
      environment = {
        HOME = stateDir;
        XDG_CACHE_HOME = "${stateDir}/cache";
        HF_HOME = "${stateDir}/huggingface";
        VLLM_NO_USAGE_STATS = "1";
        DO_NOT_TRACK = "1";
      }
      // lib.optionalAttrs inst.offline { HF_HUB_OFFLINE = "1"; }
      // lib.optionalAttrs (inst.gpus != [ ] && top.acceleration == "cuda") {
        CUDA_VISIBLE_DEVICES = visible;
      }
      // lib.optionalAttrs (inst.gpus != [ ] && top.acceleration == "rocm") {
        HIP_VISIBLE_DEVICES = visible;
      }
      // lib.optionalAttrs (top.acceleration == "rocm" && top.rocm.gfxOverride != null) {
        HSA_OVERRIDE_GFX_VERSION = top.rocm.gfxOverride;
      }
      // inst.environment;
    };
in
{
  options.hwc.ai.runtimes.vllm = {
    package = mkOption {
      type = types.package;
      default = (hlib.runtimePackages pkgs top.acceleration).vllm;
      defaultText = literalMD ''
        pkgs.python3Packages.vllm, from pkgs.pkgsCuda or pkgs.pkgsRocm following hwc.ai.acceleration'';
      description = "The default vLLM package of every instance.";
    };

    instances = mkOption {
      type = types.attrsOf instanceType;
      default = { };
      example = literalExpression ''
        {
          "gpt-oss-120b" = {
            model = "openai/gpt-oss-120b";
            port = 8001;
            gpus = [ 0 ];
            extraArgs = [ "--tool-call-parser" "openai" "--enable-auto-tool-choice" ];
          };
        }
      '';
      description = ''
        vLLM instances, each its own unit `vllm-<name>.service` serving one
        model on its own port. Every enabled instance becomes a router backend
        `vllm-<name>` and a prober target without being listed again.
      '';
    };
  };

  config = lib.mkIf (top.enable && enabled != { }) {
    systemd.services = lib.mapAttrs' (
      name: inst:
      let
        unit = unitOf name inst;
      in
      lib.nameValuePair "vllm-${name}" {
        description = unit.unitConfig.Description;
        wantedBy = [ "multi-user.target" ];
        # The first start downloads the weights.
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        inherit (unit) environment;
        unitConfig = builtins.removeAttrs unit.unitConfig [ "Description" ];
        serviceConfig =
          unit.serviceConfig
          // lib.optionalAttrs (inst.environmentFile != null) { EnvironmentFile = inst.environmentFile; };
      }
    ) enabled;

    warnings =
      let
        # Instances sharing a GPU must split its memory.
        perGpu = lib.foldl' (
          acc: inst:
          lib.foldl' (
            a: g:
            a
            // {
              ${toString g} = (a.${toString g} or [ ]) ++ [ inst ];
            }
          ) acc inst.gpus
        ) { } (builtins.attrValues enabled);
        # vLLM's default --gpu-memory-utilization is 0.9.
        share = i: if i.gpuMemoryUtilization == null then 0.9 else i.gpuMemoryUtilization;
        overcommitted = lib.filterAttrs (
          _: insts: builtins.length insts > 1 && lib.foldl' (sum: i: sum + share i) 0 insts > 0.95
        ) perGpu;
      in
      lib.mapAttrsToList (gpu: insts: ''
        hwc.ai.runtimes.vllm: GPU ${gpu} is shared by ${
          lib.concatMapStringsSep ", " (i: i.servedModelName) insts
        } whose gpuMemoryUtilization add up to more than 0.95;
        the second to start will fail to allocate. Lower their gpuMemoryUtilization.
      '') overcommitted;
  };
}
