# Profile B: production serving on an NVIDIA GPU server. vLLM serves
# gpt-oss-20b (the default model) and gpt-oss-120b (the strong one), each on
# its own GPU; the router's `auto` model escalates hard requests (long
# prompts, many tools, stack traces, diffs) from 20b to 120b.
#
# Every value is lib.mkDefault: a host overrides any of them with a plain
# definition. docs/stack-selection.md explains the choices.
{ config, lib, ... }:
let
  inherit (lib) mkDefault;
  top = config.hwc.ai;
  # gpt-oss speaks the harmony format; vLLM's `openai` tool parser handles
  # its tool calls (tool_choice "auto").
  gptOssArgs = [
    "--tool-call-parser"
    "openai"
    "--enable-auto-tool-choice"
  ];
in
{
  hwc.ai = {
    enable = mkDefault true;
    acceleration = mkDefault "cuda";

    runtimes.vllm.instances = {
      # 120b in MXFP4 is about 61 GiB of weights: a whole 80 GB GPU.
      "gpt-oss-120b" = {
        model = mkDefault "openai/gpt-oss-120b";
        port = mkDefault 8001;
        gpus = mkDefault [ 0 ];
        gpuMemoryUtilization = mkDefault 0.92;
        extraArgs = mkDefault gptOssArgs;
      };
      # 20b is about 13 GiB: the rest of the second GPU is KV cache, that is
      # concurrency.
      "gpt-oss-20b" = {
        model = mkDefault "openai/gpt-oss-20b";
        port = mkDefault 8000;
        gpus = mkDefault [ 1 ];
        gpuMemoryUtilization = mkDefault 0.9;
        extraArgs = mkDefault gptOssArgs;
      };
    };

    models = {
      "gpt-oss-20b" = {
        runtime = mkDefault "vllm";
        source = mkDefault "openai/gpt-oss-20b";
      };
      "gpt-oss-120b" = {
        runtime = mkDefault "vllm";
        source = mkDefault "openai/gpt-oss-120b";
      };
    };

    router = {
      enable = mkDefault true;
      settings = {
        aliases = {
          default = mkDefault "gpt-oss-20b";
          strong = mkDefault "gpt-oss-120b";
        };
        auto = {
          default_model = mkDefault "default";
          strong_model = mkDefault "strong";
        };
      };
    };

    healthProber.enable = mkDefault (top.packages ? hwc-health-prober);
    modelManager.enable = mkDefault (top.packages ? hwc-model-manager);

    # Prometheus with the hwc-ai alert rules and Grafana with the dashboards,
    # on this host, on loopback (docs/monitoring.md).
    monitoring = {
      enable = mkDefault true;
      grafana.enable = mkDefault true;
    };
  };
}
