# Markdown reference of every hwc.ai.* option, generated from the modules'
# own declarations (name, type, default, example, description, file), for
# docs/nixos.md. Needs nixpkgs' lib only:
#
#   NIXPKGS_LIB=... python3 tests/nix/options_doc.py --write
#
# rewrites the generated part of docs/nixos.md; tests/nix fails
# when that part is stale.
{ lib }:
let
  h = import ./eval { inherit lib; };
  evaluated = h.eval [ ];
  root = toString ../.;
  docs = builtins.filter (
    o: lib.hasPrefix "hwc.ai." o.name && (o.visible or true) && !(o.internal or false)
  ) (lib.optionAttrSetToDocList evaluated.options);

  code =
    text:
    if lib.hasInfix "\n" text then
      "\n\n  ```nix\n" + lib.concatMapStringsSep "\n" (l: "  " + l) (lib.splitString "\n" text) + "\n  ```"
    else
      " `${text}`";

  # A default or example: Nix code in backticks, prose (literalMD) as is.
  value =
    v:
    if v ? _type && v._type == "literalMD" then
      " " + lib.replaceStrings [ "\n" ] [ " " ] (lib.trim v.text)
    else if v ? _type && v._type == "literalExpression" then
      code v.text
    else
      code (builtins.toJSON v);

  relative = p: lib.removePrefix "${root}/" (toString p);

  entry =
    o:
    let
      description = lib.trim (o.description or "");
    in
    lib.concatStringsSep "\n" (
      [
        "### `${o.name}`"
        ""
        (if description == "" then "(no description)" else description)
        ""
        "- Type: ${o.type}"
      ]
      ++ lib.optional (o ? default) "- Default:${value o.default}"
      ++ lib.optional (o ? example) "- Example:${value o.example}"
      ++ lib.optional (o.readOnly or false) "- Read-only"
      ++ [
        "- Declared in: ${lib.concatMapStringsSep ", " (d: "`${relative d}`") o.declarations}"
        ""
      ]
    );
in
lib.concatMapStringsSep "\n" entry docs
