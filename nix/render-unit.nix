# Render `{ unitConfig; serviceConfig; environment ? { }; }` to the text of a
# systemd unit file, the way NixOS does (nixos/lib/systemd-lib.nix,
# `attrsToSection`: one `Key=value` line per list element, booleans as
# true/false, `environment` as quoted Environment= lines). Builtins only, so
# a unit can be written and scored on a machine without nixpkgs.
unit:
let
  inherit (builtins)
    attrNames
    concatStringsSep
    isList
    toJSON
    ;
  toOption =
    x:
    if x == true then
      "true"
    else if x == false then
      "false"
    else
      toString x;
  section =
    name: attrs:
    "[${name}]\n"
    + concatStringsSep "" (
      map (
        key:
        let
          value = attrs.${key};
        in
        concatStringsSep "" (
          map (x: "${key}=${toOption x}\n") (if isList value then value else [ value ])
        )
      ) (attrNames attrs)
    );
  env = unit.environment or { };
  envLines = concatStringsSep "" (map (n: "Environment=${toJSON "${n}=${env.${n}}"}\n") (attrNames env));
in
section "Unit" (unit.unitConfig or { })
+ "\n"
+ section "Service" unit.serviceConfig
+ envLines
+ (if unit ? installConfig then "\n" + section "Install" unit.installConfig else "")
