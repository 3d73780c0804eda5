# Module evaluation tests of hwc.ai.mcp (modules/mcp-bridge.nix): the
# servers rendered in the bridge's schema, their secrets as credentials, the
# unit's relaxations only where a server needs them, Open WebUI wired with a
# token of its own. Part of ./tests.nix, which passes its helpers.
{
  lib,
  clean,
  holds,
  rejects,
  throws,
  minimal,
}:
let
  inherit (lib) hasInfix;

  sc = c: c.systemd.services.hwc-mcp-bridge.serviceConfig;
  servers = c: lib.listToAttrs (map (s: lib.nameValuePair s.name s) c.hwc.ai.mcp.settings.servers);

  # A time server (Python) and a read-only filesystem server (Node.js).
  bridge = minimal ++ [
    (
      { pkgs, ... }:
      {
        hwc.ai.mcp = {
          enable = true;
          servers.time = {
            package = pkgs.mcp-server-time;
            args = [
              "--local-timezone"
              "UTC"
            ];
            allowedTools = [ "get_current_time" ];
          };
          servers.files = {
            package = pkgs.mcp-server-filesystem;
            args = [ "/srv/share" ];
            readablePaths = [ "/srv/share" ];
            deniedTools = [ "write_file" ];
            environmentFiles.API_TOKEN = "/run/secrets/files-token";
            jit = true;
          };
        };
      }
    )
  ];

  withOpenWebui = bridge ++ [
    {
      nixpkgs.config.allowUnfreePackages = [ "open-webui" ];
      hwc.ai.openWebui = {
        enable = true;
        environmentFile = "/run/secrets/open-webui.env";
      };
    }
  ];

  # Only the Python server: nothing needs W+X memory.
  timeOnly = minimal ++ [
    (
      { pkgs, ... }:
      {
        hwc.ai.mcp = {
          enable = true;
          servers.time.package = pkgs.mcp-server-time;
        };
      }
    )
  ];
in
[
  (clean "mcp: a bridge with a Python and a Node.js server" bridge)
  (clean "mcp: the bridge wired into Open WebUI" withOpenWebui)
  (holds "mcp: servers rendered in the bridge's schema" bridge (
    c:
    let
      s = servers c;
    in
    hasInfix "mcp-server-time/bin/mcp-server-time" s.time.command
    && s.time.args == [
      "--local-timezone"
      "UTC"
    ]
    && s.time.allowed_tools == [ "get_current_time" ]
    && !(s.files ? allowed_tools)
    && s.files.denied_tools == [ "write_file" ]
    && s.files.env_files == { API_TOKEN = "env-files-API_TOKEN"; }
    && s.time.isolation == "shared"
    && c.hwc.ai.mcp.settings.server.listen == "127.0.0.1:8471"
  ))
  (holds "mcp: a server's environment files are credentials, not store paths" bridge (
    c: builtins.elem "env-files-API_TOKEN:/run/secrets/files-token" (sc c).LoadCredential
  ))
  (holds "mcp: a JIT runtime (Node.js) gets W+X memory, and the read paths it needs" bridge (
    c: !(sc c).MemoryDenyWriteExecute && (sc c).ReadOnlyPaths == [ "/srv/share" ]
  ))
  (holds "mcp: without one, W^X holds" timeOnly (c: (sc c).MemoryDenyWriteExecute))
  (holds "mcp: children may lower their rlimits, nothing else of @resources" timeOnly (
    c:
    let
      f = (sc c).SystemCallFilter;
    in
    builtins.elem "~@resources" f && builtins.elem "setrlimit" f && builtins.elem "prlimit64" f
  ))
  (holds "mcp: a path under /home makes it visible read-only, and only then" (
    bridge ++ [ { hwc.ai.mcp.servers.files.writablePaths = [ "/home/ops/notes" ]; } ]
  ) (c: (sc c).ProtectHome == "read-only" && (sc c).ReadWritePaths == [ "/home/ops/notes" ]))
  (holds "mcp: /home stays hidden otherwise" bridge (c: (sc c).ProtectHome == true))
  (holds "mcp: a disabled server is not run" (
    bridge ++ [ { hwc.ai.mcp.servers.files.enable = false; } ]
  ) (c: builtins.attrNames (servers c) == [ "time" ]))
  (holds "mcp: Open WebUI gets a requester token scoped to the servers" withOpenWebui (
    c:
    let
      t = lib.findFirst (t: t.name == "open-webui") null c.hwc.ai.mcp.settings.auth.tokens;
    in
    t != null
    && t.role == "requester"
    && lib.sort lib.lessThan t.scopes == [
      "files"
      "time"
    ]
    && builtins.elem "token-open-webui:/var/lib/hwc-ai-secrets/mcp-open-webui-token" (sc c).LoadCredential
  ))
  (holds "mcp: Open WebUI reads its tool server connections, made before it starts" withOpenWebui (
    c:
    let
      owui = c.systemd.services.open-webui;
      prep = c.systemd.services.hwc-ai-mcp-open-webui;
    in
    builtins.elem "/run/hwc-ai-mcp-open-webui/open-webui.env" (lib.toList owui.serviceConfig.EnvironmentFile)
    && builtins.elem "/run/secrets/open-webui.env" (lib.toList owui.serviceConfig.EnvironmentFile)
    && builtins.elem "open-webui.service" prep.requiredBy
    && builtins.elem "hwc-mcp-bridge.service" prep.before
    && hasInfix "TOOL_SERVER_CONNECTIONS=" prep.script
  ))
  (holds "mcp: Open WebUI takes its settings from the configuration at every start" withOpenWebui (
    c: c.services.open-webui.environment.ENABLE_PERSISTENT_CONFIG == "False"
  ))
  (holds "mcp: declarative = false leaves them to Open WebUI's database" (
    withOpenWebui ++ [ { hwc.ai.openWebui.declarative = false; } ]
  ) (c: !(c.services.open-webui.environment ? ENABLE_PERSISTENT_CONFIG)))
  (holds "mcp: no Open WebUI wiring when it is turned off" (
    withOpenWebui ++ [ { hwc.ai.mcp.openWebui.enable = false; } ]
  ) (c: !(c.systemd.services ? hwc-ai-mcp-open-webui) && !(c.hwc.ai.mcp.settings.auth ? tokens)))
  (holds "mcp: the prober probes the bridge" (bridge ++ [ { hwc.ai.healthProber.enable = true; } ]) (
    c:
    lib.any (
      t: t.name == "mcp-bridge" && t.restart_unit == "hwc-mcp-bridge.service"
    ) c.hwc.ai.healthProber.settings.targets
  ))
  (rejects "mcp: enabled without a server" (minimal ++ [ { hwc.ai.mcp.enable = true; } ])
    "hwc.ai.mcp is enabled without a server"
  )
  (rejects "mcp: a server name that is no URL path segment" (
    timeOnly ++ [ { hwc.ai.mcp.servers."My Server".command = "/bin/true"; } ]
  ) "a name must be lower case letters")
  (rejects "mcp: a relative command" (
    timeOnly ++ [ { hwc.ai.mcp.servers.x.command = "mcp-server-x"; } ]
  ) "every command must be an absolute path")
  (rejects "mcp: listening beyond loopback without a token" (
    timeOnly ++ [ { hwc.ai.mcp.host = "0.0.0.0"; } ]
  ) "without a token")
  (throws "mcp: a server with neither package nor command" (
    timeOnly ++ [ { hwc.ai.mcp.servers.x.args = [ ]; } ]
  ) [ "hwc" "ai" "mcp" "settings" "servers" ])
]
