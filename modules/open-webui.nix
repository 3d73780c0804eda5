# hwc.ai.openWebui: nixpkgs' services.open-webui, pointed at the router so
# that chat in the browser goes through the same endpoint, keys, budgets and
# privacy rules as every other client. Checked against
# nixos/modules/services/misc/open-webui.nix (options enable, package, host,
# port, environment, environmentFile, openFirewall; `GET /health`).
#
# pkgs.open-webui is unfree in nixpkgs (pkgs/by-name/op/open-webui/package.nix:
# meta.license = { fullName = "Open WebUI License"; free = false; }). Allowing
# it is the host's decision, made where the host allows its other unfree
# packages (nixpkgs.config), so this module sets no nixpkgs.config: that would
# also break a host that passes nixpkgs.pkgs (nixpkgs then asserts
# nixpkgs.config == { }). It turns nixpkgs' refusal into an assertion that
# names the one line to add.
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
  name = lib.getName cfg.package;
  # nixpkgs' own verdict on the package (pkgs/stdenv/generic/check-meta.nix):
  # meta.unfree (or a license with free = false) and meta.available = false:
  # the package set it comes from refuses it. Read from the package, not from
  # config.nixpkgs.config, so that it holds however that set was built
  # (nixpkgs.config, or nixpkgs.pkgs from outside, which ignores it).
  meta = cfg.package.meta or { };
  unfree = meta.unfree or (lib.any (l: !(l.free or true)) (lib.toList (meta.license or [ ])));
  unfreeRefused =
    unfree
    && !(meta.available or true)
    # Refused for another reason too: nixpkgs' own message names it.
    && !(meta.insecure or false || meta.broken or false || meta.unsupported or false);
  license = meta.license.fullName or meta.license.shortName or "unknown";
in
{
  options.hwc.ai.openWebui = {
    enable = lib.mkEnableOption "Open WebUI, pointed at hwc.ai.router (configures nixpkgs' services.open-webui)";

    package = mkOption {
      type = types.package;
      default = pkgs.open-webui;
      defaultText = literalExpression "pkgs.open-webui";
      description = ''
        The Open WebUI package. nixpkgs marks it unfree (Open WebUI
        License): allow it on the host with
        `nixpkgs.config.allowUnfreePackages = [ "open-webui" ];` (or
        `allowUnfree = true`), else evaluation stops with an assertion that
        says so.
      '';
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

    declarative = mkOption {
      type = types.bool;
      default = true;
      description = ''
        What this configuration says is what Open WebUI runs with, after
        every `nixos-rebuild switch`: its "persistent config" settings (the
        router URL, the bridge's tool server connections) come from the
        environment at every start (`ENABLE_PERSISTENT_CONFIG=False`), and
        changes made in its admin panel to those settings last until the
        next restart. `false`: Open WebUI keeps the values of its first
        start in its database and the admin panel owns them from then on;
        a server added here later does not reach it (docs/adr/0011).
      '';
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    assertions = [
      {
        assertion = !unfreeRefused;
        message = ''
          hwc.ai.openWebui: nixpkgs refuses ${name}, whose license (${license}) is unfree.
          Allow this one package in the host's configuration:
            nixpkgs.config.allowUnfreePackages = [ "${name}" ];
          Where pkgs comes from outside (nixpkgs.pkgs, which ignores nixpkgs.config),
          add "${name}" to allowUnfreePackages in the config it is imported with.
        '';
      }
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
      // lib.optionalAttrs cfg.declarative { ENABLE_PERSISTENT_CONFIG = "False"; }
      // cfg.environment;
      environmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
    };

    systemd.services.open-webui = {
      wants = [ "hwc-model-router.service" ];
      after = [ "hwc-model-router.service" ];
    };
  };
}
