# Quote arguments for a systemd Exec line (systemd.syntax(7)). Builtins only.
# Plain words stay as they are; anything else is double-quoted with C
# escapes; % and $ are doubled so that systemd expands neither. The same
# rules as nixpkgs' utils.escapeSystemdExecArg(s).
let
  escapeExecArg =
    arg:
    let
      s = builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (toString arg);
    in
    if builtins.match "[A-Za-z0-9_./:=@+,-]+" s != null then s else builtins.toJSON s;
in
{
  inherit escapeExecArg;
  escapeExecArgs = args: builtins.concatStringsSep " " (map escapeExecArg args);
}
