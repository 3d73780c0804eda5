# The hwc-ai daemons, built from the one Cargo workspace at the repository
# root with rustPlatform.buildRustPackage and the committed Cargo.lock
# (importCargoLock: every crate is a fixed-output fetch of crates.io, no
# vendor hash to keep in sync).
#
#   pkgs.callPackage ./nix/packages.nix { }
#   -> { hwc-model-router = <drv>; hwc-health-prober = <drv>; ...; hwc-ai = <all of them>; }
#
# A daemon appears once it has an entry in ./daemons.nix; nothing here
# names one.
{
  lib,
  rustPlatform,
  symlinkJoin,
}:
let
  root = ../.;
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);
  version = cargoToml.workspace.package.version;

  # Only what cargo needs: a change to docs, modules or tests does not
  # rebuild the daemons.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../crates
    ];
  };

  # Every binary the flake ships: the daemons of the registry (./daemons.nix),
  # then the operator CLI once its crate exists.
  binaries =
    map (d: { inherit (d) crate description; }) (import ./daemons.nix)
    ++ builtins.filter (b: builtins.pathExists (root + "/crates/${b.crate}/Cargo.toml")) [
      {
        crate = "hwc-ai";
        description = "hwc-ai operator CLI";
      }
    ];

  build =
    { crate, description }:
    rustPlatform.buildRustPackage {
      pname = crate;
      inherit version src;
      cargoLock.lockFile = ../Cargo.lock;
      cargoBuildFlags = [
        "--package"
        crate
      ];
      # The crates' integration tests start real peers (llama-server, npm MCP
      # servers, a D-Bus daemon) that the build sandbox does not have; they
      # run in scripts/test.sh and the VM tests instead. Unit tests run here.
      cargoTestFlags = [
        "--package"
        crate
        "--bins"
      ]
      ++ lib.optional (builtins.pathExists (root + "/crates/${crate}/src/lib.rs")) "--lib";
      meta = {
        inherit description;
        license = lib.licenses.asl20;
        mainProgram = crate;
        platforms = lib.platforms.linux;
      };
    };

  byName = builtins.listToAttrs (
    map (d: {
      name = d.crate;
      value = build d;
    }) binaries
  );
in
byName
// {
  hwc-ai-all = symlinkJoin {
    name = "hwc-ai-all-${version}";
    paths = builtins.attrValues byName;
    meta.description = "Every hwc-ai binary";
  };
}
