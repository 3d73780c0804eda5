# Profile A: a single node at the edge or on premises. Ollama serves
# gpt-oss-20b on the local GPU; the router is local-only (no cloud backend
# can be configured, anonymous requests stay local); the health prober and
# the model manager run as soon as the flake ships them.
#
# Every value is lib.mkDefault: a host overrides any of them with a plain
# definition. docs/stack-selection.md explains the choices.
{ config, lib, ... }:
let
  inherit (lib) mkDefault;
  top = config.hwc.ai;
in
{
  hwc.ai = {
    enable = mkDefault true;

    runtimes.ollama = {
      enable = mkDefault true;
      environmentVariables = {
        # Keep the model loaded: reloading 13 GB costs seconds per request.
        OLLAMA_KEEP_ALIVE = mkDefault "24h";
        # gpt-oss is trained for long contexts; Ollama's default (4096)
        # truncates agent conversations.
        OLLAMA_CONTEXT_LENGTH = mkDefault "32768";
      };
    };

    models."gpt-oss-20b" = {
      runtime = mkDefault "ollama";
      source = mkDefault "gpt-oss:20b";
    };

    router = {
      enable = mkDefault true;
      localOnly = mkDefault true;
      settings.aliases.default = mkDefault "gpt-oss-20b";
    };

    # On when the flake provides the daemon (hwc.ai.packages).
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
