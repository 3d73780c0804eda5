# hwc.ai.openWebui: nixpkgs' services.open-webui, pointed at the router so
# that chat in the browser goes through the same endpoint, keys, budgets and
# privacy rules as every other client. Checked against
# nixos/modules/services/misc/open-webui.nix (options enable, package, host,
# port, environment, environmentFile, openFirewall; `GET /health`).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types literalExpression;
  top = config.hwc.ai;
  cfg = top.openWebui;
in
{
  options.hwc.ai.openWebui = {
    enable = lib.mkEnableOption "Open WebUI, pointed at hwc.ai.router (configures nixpkgs' services.open-webui)";

    package = mkOption {
      type = types.package;
      default = pkgs.open-webui;
      defaultText = literalExpression "pkgs.open-webui";
      description = "The Open WebUI package.";
    };

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "Address Open WebUI listens on (put a TLS reverse proxy in front for other hosts).";
    };

    port = mkOption {
      type = types.port;
      # Not nixpkgs' 8080, which llama-server also defaults to.
      default = 3000;
      description = "Port Open WebUI listens on.";
    };

    environmentFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/open-webui.env";
      description = ''
        Environment file outside the Nix store with the secrets:
        `OPENAI_API_KEY=<a key of the router's keys file>` (Open WebUI's key
        for the router) and `WEBUI_SECRET_KEY=<random>` (session signing).
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        ENABLE_SIGNUP = "False";
      };
      description = ''
        Further Open WebUI settings
        (<https://docs.openwebui.com/getting-started/env-configuration>),
        merged over the ones this module sets. Never secrets: they end up in
        the world-readable unit file.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open `port` in the firewall.";
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    assertions = [
      {
        assertion = top.router.enable;
        message = ''
          hwc.ai.openWebui talks to the models through hwc.ai.router, which is not enabled.
          Set hwc.ai.router.enable = true.
        '';
      }
    ];

    warnings =
      lib.optional (top.router.enable && !top.router.allowAnonymous && cfg.environmentFile == null)
        ''
          hwc.ai.openWebui has no environmentFile, so it sends the router no API key and
          every chat gets 401. Put OPENAI_API_KEY=<a router key> in a file and set
          hwc.ai.openWebui.environmentFile to it.
        '';

    services.open-webui = {
      enable = true;
      inherit (cfg) package host port openFirewall;
      environment = {
        # Every model through the router (OpenAI-compatible), none directly.
        OPENAI_API_BASE_URL = "${top.router.url}/v1";
        ENABLE_OPENAI_API = "True";
        ENABLE_OLLAMA_API = "False";
        # No telemetry.
        SCARF_NO_ANALYTICS = "True";
        DO_NOT_TRACK = "True";
        ANONYMIZED_TELEMETRY = "False";
      }
      // cfg.environment;
      environmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
    };

    systemd.services.open-webui = {
      wants = [ "hwc-model-router.service" ];
      after = [ "hwc-model-router.service" ];
    };
  };
}
