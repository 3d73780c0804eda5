# Module evaluation tests of hwc.ai.cli (modules/cli.nix): the CLI on the
# PATH, its cli.toml a table per daemon of the registry, token files only
# by path. Part of ./tests.nix, which passes its helpers.
{
  lib,
  holds,
  rejects,
  minimal,
}:
let
  cli = minimal ++ [ { hwc.ai.cli.enable = true; } ];
  s = c: c.hwc.ai.cli.settings;
in
[
  (holds "cli: hwc-ai on the PATH with /etc/hwc-ai/cli.toml" cli (
    c:
    builtins.any (p: p.name == "hwc-ai") c.environment.systemPackages
    && c.environment.etc."hwc-ai/cli.toml".source != null
  ))
  (holds "cli: a table per daemon, enabled ones at their URL, the rest off" cli (
    c:
    builtins.attrNames (s c) == [
      "agent-runner"
      "health-prober"
      "mcp-bridge"
      "model-manager"
      "router"
    ]
    && (s c).router == { url = "http://127.0.0.1:8470"; }
    && (s c).mcp-bridge == { enabled = false; }
  ))
  (holds "cli: a token file goes in by path, a moved port follows" (
    cli
    ++ [
      {
        hwc.ai.router.port = 9470;
        hwc.ai.cli.tokenFiles.router = "/run/secrets/ops-router-key";
      }
    ]
  ) (c: (s c).router == { url = "http://127.0.0.1:9470"; token_file = "/run/secrets/ops-router-key"; }))
  (rejects "cli: a token file for no daemon" (
    cli ++ [ { hwc.ai.cli.tokenFiles.routr = "/run/secrets/x"; } ]
  ) "hwc.ai.cli.tokenFiles names routr, which is not a daemon")
  (rejects "cli: a token file in the store" (
    cli ++ [ { hwc.ai.cli.tokenFiles.router = "/nix/store/abc-key"; } ]
  ) "must be outside the Nix store")
  (holds "cli: nothing when it is off" minimal (
    c: !(c.environment.etc ? "hwc-ai/cli.toml") && c.environment.systemPackages == [ ]
  ))
]
