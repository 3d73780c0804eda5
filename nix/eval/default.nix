# Evaluate the hwc.ai modules with nixpkgs' `lib` alone: the modules plus the
# stand-ins of ./stubs.nix, through lib.evalModules. Used by ./tests.nix
# (tests/nix runs it when NIXPKGS_LIB is set) and by the flake's
# `eval-tests` check.
{ lib }:
let
  root = ../..;

  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
    meta.mainProgram = name;
    outputs = [ "out" ];
  };

  # What the flake's nixosModules.default puts in hwc.ai.packages: a package
  # for every daemon of the registry, and the CLI.
  packages = builtins.listToAttrs (
    map (d: lib.nameValuePair d.crate (fakePackage d.crate)) (import ../daemons.nix)
    ++ [ (lib.nameValuePair "hwc-ai" (fakePackage "hwc-ai")) ]
  );

  eval =
    modules:
    lib.evalModules {
      modules = [
        ./stubs.nix
        (root + "/modules")
        { hwc.ai.packages = lib.mkDefault packages; }
      ]
      ++ modules;
    };

  failedAssertions =
    evaluated: map (a: a.message) (builtins.filter (a: !a.assertion) evaluated.config.assertions);

  # A unit of config.systemd.services, as unit-file text (what NixOS would
  # write, less the PATH/locale lines NixOS adds to every unit).
  renderService =
    svc:
    import ../render-unit.nix {
      unitConfig = {
        Description = svc.description;
      }
      // svc.unitConfig;
      inherit (svc) serviceConfig;
      environment = lib.filterAttrs (_: v: v != null) (lib.mapAttrs (_: toString) svc.environment);
    };
in
{
  inherit
    eval
    failedAssertions
    renderService
    packages
    ;
  machines = {
    edge-p1000 = root + "/machines/edge-p1000";
    gpu-server = root + "/machines/gpu-server";
  };
  profiles = {
    edge = root + "/profiles/edge.nix";
    cluster = root + "/profiles/cluster.nix";
  };
}
