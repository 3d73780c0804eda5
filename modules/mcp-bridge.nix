# hwc.ai.mcp: hwc-mcp-bridge puts the stdio MCP servers declared here behind
# authenticated Streamable HTTP (`<url>/mcp/<name>`, both protocol eras),
# one supervised child per server, for Open WebUI, the agent runner and any
# MCP client (docs/mcp-bridge.md). The options every daemon has (enable,
# package, host, port, tokenFiles, tokens, settings, ...) come from
# ./daemon.nix; the unit is ../nix/units/mcp-bridge.nix.
#
# With Open WebUI enabled, it gets every server as a tool server connection
# (TOOL_SERVER_CONNECTIONS) with a bearer token of its own, generated on the
# host at first start: tools in Open WebUI with no clicks.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types literalExpression;
  top = config.hwc.ai;
  cfg = top.mcp;
  hlib = import ./lib.nix { inherit lib; };

  enabledServers = lib.filterAttrs (_: s: s.enable) cfg.servers;

  # Environment from files: credential env-<server>-<VAR> per file.
  envCredential = server: var: "env-${server}-${var}";
  envCredentials = lib.concatMapAttrs (
    server: s: lib.mapAttrs' (var: path: lib.nameValuePair (envCredential server var) path) s.environmentFiles
  ) enabledServers;

  # The bridge's [[servers]] entries (docs/mcp-bridge.md).
  renderServer =
    name: s:
    {
      inherit name;
      inherit (s) command args;
      env = s.environment;
      env_files = lib.mapAttrs (var: _: envCredential name var) s.environmentFiles;
      denied_tools = s.deniedTools;
      inherit (s) isolation required;
      call_timeout = s.callTimeout;
      max_concurrent_calls = s.maxConcurrentCalls;
    }
    // lib.optionalAttrs (s.allowedTools != null) { allowed_tools = s.allowedTools; }
    // s.settings;

  # Open WebUI's token for the bridge, made on the host (never in the store).
  openWebuiWired = cfg.openWebui.enable && top.openWebui.enable;
  tokenFile = "/var/lib/hwc-ai-secrets/mcp-open-webui-token";
  openWebuiEnv = "/run/hwc-ai-mcp-open-webui/open-webui.env";
  connections = lib.mapAttrsToList (name: s: {
    type = "mcp";
    url = "${cfg.url}/mcp/${name}";
    path = "";
    auth_type = "bearer";
    key = "@TOKEN@";
    config.enable = true;
    info = {
      id = name;
      inherit name;
      description = s.description;
    };
  }) enabledServers;

  unit = import ../nix/units/mcp-bridge.nix {
    bin = lib.getExe cfg.package;
    inherit (cfg) configFile;
    credentials = cfg.unitCredentials // envCredentials;
    writablePaths = lib.unique (lib.concatMap (s: s.writablePaths) (builtins.attrValues enabledServers));
    readablePaths = lib.unique (lib.concatMap (s: s.readablePaths) (builtins.attrValues enabledServers));
    jit = lib.any (s: s.jit) (builtins.attrValues enabledServers);
  };
in
{
  imports = [
    (import ./daemon.nix {
      daemon = hlib.daemon "mcp";
      settingsGenerated = ''
        This module also fills in a `[[servers]]` entry for every enabled
        hwc.ai.mcp.servers.<name>.
      '';
    })
  ];

  options.hwc.ai.mcp = {
    servers = mkOption {
      default = { };
      example = literalExpression ''
        {
          time = {
            package = pkgs.mcp-server-time;
            args = [ "--local-timezone" "UTC" ];
          };
          files = {
            package = pkgs.mcp-server-filesystem;   # Node.js
            args = [ "/srv/share" ];
            readablePaths = [ "/srv/share" ];
            deniedTools = [ "write_file" "edit_file" "move_file" "create_directory" ];
            jit = true;
          };
          git = {
            package = pkgs.mcp-server-git;
            args = [ "--repository" "/srv/git/infra" ];
            writablePaths = [ "/srv/git/infra" ];
          };
        }
      '';
      description = ''
        The stdio MCP servers the bridge runs, one supervised child each,
        served at `<url>/mcp/<name>`. A name is lower case letters, digits,
        `-` and `_`.
      '';
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          {
            options = {
              enable = mkOption {
                type = types.bool;
                default = true;
                description = "Run this server.";
              };
              description = mkOption {
                type = types.str;
                default = "MCP server ${name} (hwc-mcp-bridge)";
                description = "What it is for, as Open WebUI shows it.";
              };
              package = mkOption {
                type = types.nullOr types.package;
                default = null;
                description = "The server's package; `command` defaults to its main program.";
              };
              command = mkOption {
                type = types.str;
                default =
                  if config.package != null then
                    lib.getExe config.package
                  else
                    throw "hwc.ai.mcp.servers.${name}: set `package` or `command`.";
                defaultText = literalExpression "lib.getExe package";
                description = "The executable, an absolute path.";
              };
              args = mkOption {
                type = types.listOf types.str;
                default = [ ];
                description = "Its arguments.";
              };
              environment = mkOption {
                type = types.attrsOf types.str;
                default = { };
                description = "Environment variables (never secrets: they are in the store).";
              };
              environmentFiles = mkOption {
                type = types.attrsOf types.str;
                default = { };
                example = {
                  GITHUB_TOKEN = "/run/secrets/github-token";
                };
                description = ''
                  Environment variables read from files at start (secrets),
                  passed with `LoadCredential`; the files stay outside the store.
                '';
              };
              allowedTools = mkOption {
                type = types.nullOr (types.listOf types.str);
                default = null;
                description = "Tools clients may list and call; null for all.";
              };
              deniedTools = mkOption {
                type = types.listOf types.str;
                default = [ ];
                description = "Tools nobody may list or call (wins over allowedTools).";
              };
              writablePaths = mkOption {
                type = types.listOf types.str;
                default = [ ];
                description = "Directories the server may write (`ReadWritePaths=` of the bridge's unit).";
              };
              readablePaths = mkOption {
                type = types.listOf types.str;
                default = [ ];
                description = ''
                  Directories the server must read that the sandbox hides
                  (under /home: `ProtectHome=read-only` then).
                '';
              };
              jit = mkOption {
                type = types.bool;
                default = false;
                description = ''
                  The server's runtime compiles code while running (Node.js's
                  V8, a JVM): the bridge's unit then allows writable and
                  executable memory (`MemoryDenyWriteExecute=false`). Node
                  servers can run with `--jitless` instead.
                '';
              };
              isolation = mkOption {
                type = types.enum [
                  "shared"
                  "per-session"
                ];
                default = "shared";
                description = ''
                  `shared`: one child for every client session. `per-session`:
                  a child per session (for servers that keep state per
                  connection), at most `settings.max_children`, started at
                  `initialize` and ended with the session; such a server
                  takes no stateless (2026-07-28) or OpenAPI requests, which
                  would share one child between callers.
                '';
              };
              required = mkOption {
                type = types.bool;
                default = true;
                description = "The bridge is not ready (`/readyz`) while this server is down.";
              };
              callTimeout = mkOption {
                type = types.str;
                default = "60s";
                description = "Longest a tools/call may take before the caller gets an error.";
              };
              maxConcurrentCalls = mkOption {
                type = types.ints.positive;
                default = 16;
                description = "Calls in flight at once on this server; more wait.";
              };
              settings = mkOption {
                type = types.attrsOf types.anything;
                default = { };
                example = {
                  max_result_bytes = 4194304;
                };
                description = "Further keys of this `[[servers]]` entry (docs/mcp-bridge.md).";
              };
            };
          }
        )
      );
    };

    openWebui.enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        With hwc.ai.openWebui enabled: give Open WebUI every server as a tool
        server connection (`TOOL_SERVER_CONNECTIONS`), with a bearer token
        of its own (role requester, scoped to these servers) generated on the
        host at first start in ${tokenFile}. With
        `hwc.ai.openWebui.declarative` (the default) Open WebUI reads them
        at every start; without it, it keeps those of its first start.
      '';
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) (
    lib.mkMerge [
      {
        hwc.ai.mcp.unit = unit;
        hwc.ai.mcp.settings.servers = lib.mapAttrsToList renderServer enabledServers;

        assertions = [
          {
            assertion = enabledServers != { };
            message = ''
              hwc.ai.mcp is enabled without a server: declare one in hwc.ai.mcp.servers.<name>
              (for example time = { package = pkgs.mcp-server-time; };).
            '';
          }
          {
            assertion = builtins.all (n: builtins.match "[a-z0-9][a-z0-9_-]*" n != null) (
              builtins.attrNames cfg.servers
            );
            message = ''
              hwc.ai.mcp.servers: a name must be lower case letters, digits, - and _, starting
              with a letter or digit (it is the URL path /mcp/<name>); got:
              ${lib.concatStringsSep ", " (builtins.attrNames cfg.servers)}.
            '';
          }
          {
            assertion = builtins.all (s: lib.hasPrefix "/" s.command) (builtins.attrValues enabledServers);
            message = ''
              hwc.ai.mcp.servers: every command must be an absolute path (lib.getExe pkgs.<server>);
              ${lib.concatStringsSep ", " (
                lib.mapAttrsToList (n: s: "${n}: ${s.command}") (
                  lib.filterAttrs (_: s: !(lib.hasPrefix "/" s.command)) enabledServers
                )
              )}.
            '';
          }
          {
            assertion = hlib.isLoopback cfg.host || cfg.tokenFiles != [ ] || cfg.tokens != { };
            message = ''
              hwc.ai.mcp listens on ${cfg.host} without a token: anyone who reaches the port could
              run its tools. Set hwc.ai.mcp.tokens.<client> (or tokenFiles), or keep host on loopback.
            '';
          }
        ];

        systemd.services.hwc-mcp-bridge = {
          wants = [ "network-online.target" ];
          after = [ "network-online.target" ];
        };
      }

      (lib.mkIf openWebuiWired {
        hwc.ai.mcp.tokens.open-webui = {
          file = tokenFile;
          role = "requester";
          scopes = builtins.attrNames enabledServers;
        };

        # Makes Open WebUI's token once, and its connections at every start.
        systemd.services.hwc-ai-mcp-open-webui = {
          description = "hwc-ai: Open WebUI's token and tool server connections for the MCP bridge";
          before = [
            "hwc-mcp-bridge.service"
            "open-webui.service"
          ];
          requiredBy = [
            "hwc-mcp-bridge.service"
            "open-webui.service"
          ];
          path = [ pkgs.coreutils pkgs.gnused ];
          script = ''
            umask 077
            install -d -m 0700 ${dirOf tokenFile}
            if [ ! -s ${tokenFile} ]; then
              head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > ${tokenFile}.new
              mv ${tokenFile}.new ${tokenFile}
            fi
            printf 'TOOL_SERVER_CONNECTIONS=%s\n' \
              "$(sed "s/@TOKEN@/$(cat ${tokenFile})/g" ${pkgs.writeText "open-webui-mcp-connections.json" (builtins.toJSON connections)})" \
              > ${openWebuiEnv}
          '';
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            RuntimeDirectory = baseNameOf (dirOf openWebuiEnv);
            RuntimeDirectoryMode = "0700";
            RuntimeDirectoryPreserve = true;
          };
        };

        systemd.services.open-webui = {
          after = [ "hwc-mcp-bridge.service" ];
          wants = [ "hwc-mcp-bridge.service" ];
          serviceConfig.EnvironmentFile = [ openWebuiEnv ];
        };
      })
    ]
  );
}
