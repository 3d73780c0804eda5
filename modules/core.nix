# hwc.ai.enable, hwc.ai.acceleration and the checks that span every concern:
# one port per service, a GPU driver for the chosen acceleration.
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
    literalMD
    ;
  top = config.hwc.ai;
  hlib = import ./lib.nix { inherit lib; };

  # Every TCP port an enabled hwc.ai service listens on, with the option
  # that sets it (for the assertion message).
  listeners =
    map (e: {
      inherit (e) option port;
    }) (hlib.runtimeEndpoints config)
    ++ lib.optional top.openWebui.enable {
      option = "hwc.ai.openWebui.port";
      inherit (top.openWebui) port;
    }
    ++ map (d: {
      option = "hwc.ai.${d.attr}.port";
      inherit (top.${d.attr}) port;
    }) (builtins.filter (d: top.${d.attr}.enable) hlib.daemons)
    ++ lib.optional (top.monitoring.enable && top.monitoring.prometheus.enable) {
      option = "services.prometheus.port";
      inherit (config.services.prometheus) port;
    }
    ++ lib.optional (top.monitoring.enable && top.monitoring.grafana.enable) {
      option = "hwc.ai.monitoring.grafana.port";
      inherit (top.monitoring.grafana) port;
    };
  byPort = lib.groupBy (l: toString l.port) listeners;
  clashes = lib.filterAttrs (_: ls: builtins.length ls > 1) byPort;

  videoDrivers = config.services.xserver.videoDrivers or [ ];
  nvidiaDriver =
    builtins.elem "nvidia" videoDrivers || (config.hardware.nvidia.datacenter.enable or false);
  graphics = config.hardware.graphics.enable or false;
in
{
  options.hwc.ai = {
    enable = lib.mkEnableOption ''
      the hwc-ai stack. This is the master switch: while it is false, no
      hwc.ai.* setting takes effect, whatever its own `enable` says'';

    acceleration = mkOption {
      type = types.nullOr (
        types.enum [
          "cuda"
          "rocm"
        ]
      );
      default = null;
      example = "cuda";
      description = ''
        GPU acceleration for every runtime at once:

        - `null`: CPU builds (`pkgs.ollama`, `pkgs.llama-cpp`, vLLM's CPU
          build);
        - `"cuda"`: `pkgs.ollama-cuda`, llama.cpp built with `cudaSupport`,
          vLLM from `pkgs.pkgsCuda`; the NVIDIA device nodes are allowed in
          the runtimes' units. Needs the NVIDIA driver
          (`services.xserver.videoDrivers = [ "nvidia" ]` or
          `hardware.nvidia.datacenter.enable`) and `hardware.graphics.enable`
          (CUDA finds `libcuda.so` under `/run/opengl-driver`), and unfree
          packages allowed (`nixpkgs.config.allowUnfree` or a predicate that
          admits the CUDA libraries);
        - `"rocm"`: `pkgs.ollama-rocm`, llama.cpp built with `rocmSupport`,
          vLLM from `pkgs.pkgsRocm`; `/dev/kfd` and `/dev/dri` are allowed
          and the units join the `render` and `video` groups. Needs
          `hardware.graphics.enable`. See `hwc.ai.rocm.gfxOverride`.

        A runtime's own `package` option still wins where it is set.
      '';
    };

    rocm.gfxOverride = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "11.0.0";
      description = ''
        `HSA_OVERRIDE_GFX_VERSION` for every ROCm runtime, for an AMD GPU
        that ROCm does not detect as supported (for example `"10.3.0"` for
        an RDNA2 card). Passed to `services.ollama.rocmOverrideGfx` and to
        the llama.cpp and vLLM units. Ignored unless
        `hwc.ai.acceleration = "rocm"`.
      '';
    };

    telemetry = {
      otlpEndpoint = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "http://tempo.lan:4318";
        description = ''
          Where every hwc-ai daemon sends its traces: the base URL of an
          OTLP/HTTP receiver (Tempo, Jaeger, an OpenTelemetry Collector; the
          daemons post to `<url>/v1/traces`), as `telemetry.otlp_endpoint` of
          each daemon's configuration. `null` (the default): no export. The
          W3C `traceparent` of incoming requests is propagated to backends
          either way; spans never hold prompts, completions or tool output
          (docs/adr/0006-traces.md).
        '';
      };

      sampleRatio = mkOption {
        type = types.numbers.between 0 1;
        default = 1.0;
        example = 0.1;
        description = ''
          Fraction of the traces a daemon starts itself that are sampled
          (`telemetry.sample_ratio`); a caller's sampled flag in
          `traceparent` is honoured whatever this says.
        '';
      };
    };

    packages = mkOption {
      type = types.lazyAttrsOf types.package;
      default = { };
      defaultText = literalMD "self.packages.\${system} (set by the flake's nixosModules.default)";
      description = ''
        The hwc-ai daemon packages the `package` options default to. The
        flake's `nixosModules.default` sets this to its own
        `packages.<system>`; set it yourself when importing `modules/`
        without the flake.
      '';
    };
  };

  config = lib.mkIf top.enable {
    assertions = [
      {
        assertion = clashes == { };
        message = ''
          hwc.ai: two services would listen on the same port:
          ${lib.concatStringsSep "\n" (
            lib.mapAttrsToList (
              port: ls: "  port ${port}: ${lib.concatMapStringsSep ", " (l: l.option) ls}"
            ) clashes
          )}
          Give each of them its own port (set one of the options named above).
        '';
      }
      {
        assertion =
          top.telemetry.otlpEndpoint == null
          || builtins.match "https?://[^/]+(/.*)?" top.telemetry.otlpEndpoint != null;
        message = ''
          hwc.ai.telemetry.otlpEndpoint = "${toString top.telemetry.otlpEndpoint}" is not an
          http:// or https:// URL. Give the OTLP/HTTP receiver's base URL, for example
          "http://127.0.0.1:4318" (the daemons append /v1/traces).
        '';
      }
      {
        assertion = top.acceleration == "cuda" -> nvidiaDriver;
        message = ''
          hwc.ai.acceleration = "cuda" needs the NVIDIA kernel driver, and none
          is configured. Set services.xserver.videoDrivers = [ "nvidia" ] (this
          also works on a headless host) with hardware.nvidia.open and
          hardware.nvidia.package chosen for your card, or
          hardware.nvidia.datacenter.enable = true on a data-center GPU;
          or set hwc.ai.acceleration = null to run on the CPU.
        '';
      }
      {
        assertion = top.acceleration != null -> graphics;
        message = ''
          hwc.ai.acceleration = "${toString top.acceleration}" needs
          hardware.graphics.enable = true: the GPU user-space driver
          (libcuda.so or the ROCm runtime's libraries) is found under
          /run/opengl-driver, which only that option provides.
        '';
      }
    ];

    warnings = lib.optional (top.rocm.gfxOverride != null && top.acceleration != "rocm") ''
      hwc.ai.rocm.gfxOverride is set but hwc.ai.acceleration is not "rocm"; it has no effect.
    '';
  };
}
