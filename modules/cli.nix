# hwc.ai.cli: the operator's CLI `hwc-ai` on the PATH, with its
# /etc/hwc-ai/cli.toml: a table per daemon of nix/daemons.nix (named by its
# `component`), the URL of an enabled one (hwc.ai.<attr>.url) or
# `enabled = false`, and the token file the operator chose for it. Tokens
# stay in their files (never in the store); the CLI reads them when run, so
# the files must be readable by whoever runs it.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  top = config.hwc.ai;
  cfg = top.cli;
  hlib = import ./lib.nix { inherit lib; };

  table =
    d:
    let
      dc = top.${d.attr};
    in
    if dc.enable then
      { inherit (dc) url; }
      // lib.optionalAttrs (cfg.tokenFiles ? ${d.component}) {
        token_file = cfg.tokenFiles.${d.component};
      }
    else
      { enabled = false; };

  settings = lib.listToAttrs (map (d: lib.nameValuePair d.component (table d)) hlib.daemons);
  components = map (d: d.component) hlib.daemons;
in
{
  options.hwc.ai.cli = {
    enable = lib.mkEnableOption "the `hwc-ai` operator CLI on the PATH, with /etc/hwc-ai/cli.toml";

    package = hlib.daemonPackageOption { inherit top pkgs; } "hwc-ai";

    tokenFiles = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        agent-runner = "/run/secrets/hwc-ai/ops-approver-token";
        router = "/run/secrets/hwc-ai/ops-router-key";
      };
      description = ''
        Per daemon (by its component: ${lib.concatStringsSep ", " components}), a file
        holding the token (the router: a key of its keys file) that `hwc-ai` sends.
        Outside the Nix store, readable by the operators who run `hwc-ai`.
      '';
    };

    settings = mkOption {
      type = types.attrsOf types.attrs;
      readOnly = true;
      default = settings;
      defaultText = lib.literalMD "a table per daemon of `nix/daemons.nix`";
      description = "What /etc/hwc-ai/cli.toml holds (read-only).";
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    assertions = [
      {
        assertion = lib.all (c: builtins.elem c components) (builtins.attrNames cfg.tokenFiles);
        message = ''
          hwc.ai.cli.tokenFiles names ${
            lib.concatStringsSep ", " (
              builtins.filter (c: !(builtins.elem c components)) (builtins.attrNames cfg.tokenFiles)
            )
          }, which is not a daemon; the daemons are ${lib.concatStringsSep ", " components}.
        '';
      }
      {
        assertion = lib.all (f: !(lib.hasPrefix builtins.storeDir f)) (builtins.attrValues cfg.tokenFiles);
        message = "hwc.ai.cli.tokenFiles must be outside the Nix store (it is world-readable).";
      }
    ];
    environment.systemPackages = [ cfg.package ];
    environment.etc."hwc-ai/cli.toml".source = (pkgs.formats.toml { }).generate "hwc-ai-cli.toml" settings;
  };
}
