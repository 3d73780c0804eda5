# The hwc-ai daemons, built from the one Cargo workspace at the repository
# root with rustPlatform.buildRustPackage and the committed Cargo.lock
# (importCargoLock: every crate is a fixed-output fetch of crates.io, no
# vendor hash to keep in sync).
#
#   pkgs.callPackage ./nix/packages.nix { }
#   -> { hwc-model-router = <drv>; hwc-health-prober = <drv>; ...; hwc-ai = <all of them>; }
#
# A daemon appears once its crate exists under crates/, so the flake grows
# with the workspace without edits here beyond the `daemons` list.
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

  # Every binary the flake ships, in the order the docs list them. A crate
  # not yet in the workspace is skipped.
  daemons = [
    {
      crate = "hwc-model-router";
      description = "OpenAI-compatible gateway in front of Ollama, vLLM, llama.cpp and cloud providers";
    }
    {
      crate = "hwc-health-prober";
      description = "Probes every runtime and daemon, restarts failed units over D-Bus";
    }
    {
      crate = "hwc-model-manager";
      description = "Declared models: pull, pin, verify, update, prune, disk guard";
    }
    {
      crate = "hwc-mcp-bridge";
      description = "Streamable HTTP front for stdio MCP servers";
    }
    {
      crate = "hwc-agent-runner";
      description = "Operations agent: sessions, jobs, policy, approvals, audit";
    }
    {
      crate = "hwc-ai";
      description = "hwc-ai operator CLI";
    }
  ];
  present = builtins.filter (d: builtins.pathExists (root + "/crates/${d.crate}/Cargo.toml")) daemons;

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
    }) present
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
