# The module builder: what every hwc-ai daemon module repeats, once.
#
#   imports = [ (import ./daemon.nix { daemon = hlib.daemon "router"; }) ];
#
# takes a daemon's entry in ../nix/daemons.nix and declares, under
# hwc.ai.<attr>: enable, package, host, port, url, openFirewall, settings,
# configFile, credentials, and for the daemons with hwc-ai-core's `[auth]`
# tokenFiles and tokens. It fills in the shared sections of the daemon's
# configuration (server.listen, auth, telemetry from hwc.ai.telemetry) and
# writes its systemd unit from `hwc.ai.<attr>.unit`, which the daemon's own
# module sets from nix/units/<unitFile>. The daemon's module then holds only
# what is its own (docs/adding-a-daemon.md).
{
  # The daemon's entry in ../nix/daemons.nix.
  daemon,
  # What else its module fills in, for the `settings` description.
  settingsGenerated ? "",
  # An example for `settings`.
  settingsExample ? null,
}:
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
  cfg = top.${daemon.attr};
  hlib = import ./lib.nix { inherit lib; };
  settingsFormat = pkgs.formats.toml { };
  opt = "hwc.ai.${daemon.attr}";
  serviceName = lib.removeSuffix ".service" daemon.unit;
  tokens = daemon.auth == "tokens";

  roles = [
    "reader"
    "requester"
    "approver"
    "admin"
  ];

  # Credential names: token-0.. for tokenFiles, token-<name> for tokens.
  tokenFileCredentials = lib.listToAttrs (
    lib.imap0 (i: f: lib.nameValuePair "token-${toString i}" f) cfg.tokenFiles
  );
  namedTokenCredentials = lib.mapAttrs' (n: t: lib.nameValuePair "token-${n}" t.file) cfg.tokens;
  secretPaths =
    lib.optionals tokens (cfg.tokenFiles ++ lib.mapAttrsToList (_: t: t.file) cfg.tokens)
    ++ builtins.attrValues cfg.credentials;
  inStore = builtins.filter (p: lib.hasPrefix builtins.storeDir (toString p)) secretPaths;

  telemetry = top.telemetry;
in
{
  # Options and errors name this file, not the daemon module importing it.
  _file = ./daemon.nix;

  options.hwc.ai.${daemon.attr} = {
    enable = lib.mkEnableOption "${daemon.crate} (${lib.toLower daemon.description})";

    package = hlib.daemonPackageOption { inherit top pkgs; } daemon.crate;

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = "Address ${daemon.crate} listens on (`server.listen`).";
    };

    port = mkOption {
      type = types.port;
      default = daemon.port;
      description = "Port ${daemon.crate} listens on (`server.listen`).";
    };

    url = mkOption {
      type = types.str;
      readOnly = true;
      default = hlib.baseUrl cfg.host cfg.port;
      defaultText = literalExpression ''"http://''${host}:''${port}"'';
      description = "Base URL local clients reach ${daemon.crate} at (read-only).";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open `port` in the firewall (useful only with a non-loopback `host`).";
    };

    credentials = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        upstream-key = "/run/secrets/upstream-key";
      };
      description = ''
        Further files passed with `LoadCredential`, by credential name; a
        `*_file` key in `settings` names them by that name. Keep them outside
        the Nix store.
      '';
    };

    settings = mkOption {
      type = types.submodule { freeformType = settingsFormat.type; };
      default = { };
      # No example at all rather than an empty one.
      ${if settingsExample == null then null else "example"} = settingsExample;
      description = ''
        ${daemon.crate}'s configuration (every key in ${daemon.doc}), rendered
        to TOML. `server.listen` comes from host and port, `telemetry` from
        hwc.ai.telemetry${lib.optionalString tokens ", `auth` from tokenFiles and tokens"}.
        ${settingsGenerated}
      '';
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = settingsFormat.generate "${daemon.crate}.toml" cfg.settings;
      defaultText = literalMD "the rendered settings";
      description = "The rendered configuration file (read-only).";
    };

    unit = mkOption {
      type = types.attrs;
      internal = true;
      description = ''
        The daemon's unit as plain data (`{ unitConfig; serviceConfig; }`,
        from nix/units), set by its module; written to
        `systemd.services.${serviceName}` here.
      '';
    };

    unitCredentials = mkOption {
      type = types.attrsOf types.str;
      internal = true;
      readOnly = true;
      default = lib.optionalAttrs tokens (tokenFileCredentials // namedTokenCredentials) // cfg.credentials;
      description = "Every credential of the unit from the options above (read-only).";
    };
  }
  // lib.optionalAttrs tokens {
    tokenFiles = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/run/secrets/hwc-ai/ops-token" ];
      description = ''
        Files each holding one bearer token whose holder is an admin of
        ${daemon.crate}'s API (`auth.token_files`), passed with
        `LoadCredential`. Outside the Nix store. With none (and no `tokens`),
        the API answers only what its daemon lets anonymous callers read.
      '';
    };

    tokens = mkOption {
      default = { };
      example = literalExpression ''
        {
          ci = { file = "/run/secrets/hwc-ai/ci-token"; role = "requester"; };
          alice = { file = "/run/secrets/hwc-ai/alice-token"; role = "approver"; };
        }
      '';
      description = ''
        Named bearer tokens with a role and optional scopes
        (`[[auth.tokens]]`), each file passed with `LoadCredential` as
        `token-<name>`. The name is what logs and audit records show.
      '';
      type = types.attrsOf (
        types.submodule {
          options = {
            file = mkOption {
              type = types.str;
              description = "File holding the token, outside the Nix store.";
            };
            role = mkOption {
              type = types.enum roles;
              description = "What its holder may do: ${lib.concatStringsSep " < " roles}.";
            };
            scopes = mkOption {
              type = types.nullOr (types.listOf types.str);
              default = null;
              description = "What its holder may use (e.g. MCP server names); all when null.";
            };
          };
        }
      );
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    hwc.ai.${daemon.attr}.settings = {
      server.listen = hlib.listenAddress cfg.host cfg.port;
      auth = lib.mkIf tokens {
        token_files = lib.mkIf (cfg.tokenFiles != [ ]) (builtins.attrNames tokenFileCredentials);
        tokens = lib.mkIf (cfg.tokens != { }) (
          lib.mapAttrsToList (
            name: t:
            {
              inherit name;
              inherit (t) role;
              file = "token-${name}";
            }
            // lib.optionalAttrs (t.scopes != null) { inherit (t) scopes; }
          ) cfg.tokens
        );
      };
      telemetry = lib.mkIf (telemetry.otlpEndpoint != null) {
        otlp_endpoint = telemetry.otlpEndpoint;
        sample_ratio = telemetry.sampleRatio;
      };
    };

    assertions = [
      {
        assertion = inStore == [ ];
        message = ''
          ${opt}: secrets point into the Nix store, which every local user can read:
          ${lib.concatMapStringsSep ", " toString inStore}. Keep them outside (for example
          /run/secrets/..., written by sops-nix or agenix).
        '';
      }
    ];

    warnings = lib.optional (cfg.openFirewall && hlib.isLoopback cfg.host) ''
      ${opt}.openFirewall opens port ${toString cfg.port}, but ${daemon.crate} listens on
      ${cfg.host} only; set ${opt}.host (for example "0.0.0.0") for the open port to be reachable.
    '';

    systemd.services.${serviceName} = {
      description = cfg.unit.unitConfig.Description;
      wantedBy = [ "multi-user.target" ];
      unitConfig = builtins.removeAttrs cfg.unit.unitConfig [ "Description" ];
      inherit (cfg.unit) serviceConfig;
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ cfg.port ];
  };
}
