# Module evaluation tests of the daemon registry (../daemons.nix) and the
# module builder (modules/daemon.nix): every daemon gets the shared options
# and they do what they say. Part of ./tests.nix, which passes its helpers.
{
  lib,
  check,
  holds,
  rejects,
  throws,
  minimal,
}:
let
  inherit (lib) hasInfix;
  daemons = import ../daemons.nix;

  # Every daemon enabled, next to the runtime the router needs.
  all = minimal ++ [ { hwc.ai = lib.genAttrs (map (d: d.attr) daemons) (_: { enable = true; }); } ];

  sc = c: d: c.systemd.services.${lib.removeSuffix ".service" d.unit}.serviceConfig;
  credentialNames = c: d: map (l: builtins.head (lib.splitString ":" l)) (sc c d).LoadCredential;

  tokenDaemons = builtins.filter (d: d.auth == "tokens") daemons;
  manager = lib.findFirst (d: d.attr == "modelManager") null daemons;
in
# Per daemon of the registry. builtins.concatMap, not lib's: the number of
# tests is counted without nixpkgs' lib (tests/nix).
builtins.concatMap (d: [
  (holds "${d.crate}: the builder's options, its unit and server.listen" all (
    c:
    let
      cfg = c.hwc.ai.${d.attr};
    in
    cfg.port == d.port
    && cfg.url == "http://127.0.0.1:${toString d.port}"
    && cfg.settings.server.listen == "127.0.0.1:${toString d.port}"
    && hasInfix "/bin/${d.crate} --config " (sc c d).ExecStart
    && c.systemd.services.${lib.removeSuffix ".service" d.unit}.wantedBy == [ "multi-user.target" ]
  ))
  (holds "${d.crate}: openFirewall opens its port, and only then" (
    all ++ [ { hwc.ai.${d.attr}.openFirewall = true; } ]
  ) (c: builtins.elem d.port c.networking.firewall.allowedTCPPorts))
  (holds "${d.crate}: closed by default" all (
    c: !(builtins.elem d.port c.networking.firewall.allowedTCPPorts)
  ))
  (holds "${d.crate}: hwc.ai.telemetry reaches its [telemetry]" (
    all
    ++ [
      {
        hwc.ai.telemetry = {
          otlpEndpoint = "http://127.0.0.1:4318";
          sampleRatio = 0.25;
        };
      }
    ]
  ) (c: c.hwc.ai.${d.attr}.settings.telemetry == {
    otlp_endpoint = "http://127.0.0.1:4318";
    sample_ratio = 0.25;
  }))
  (holds "${d.crate}: no [telemetry] unless asked" all (
    c: !(c.hwc.ai.${d.attr}.settings ? telemetry)
  ))
]) daemons
++ builtins.concatMap (d: [
  (holds "${d.crate}: tokenFiles and named tokens become [auth] and credentials" (
    all
    ++ [
      {
        hwc.ai.${d.attr} = {
          tokenFiles = [ "/run/secrets/ops" ];
          tokens.ci = {
            file = "/run/secrets/ci";
            role = "requester";
            scopes = [ "git" ];
          };
        };
      }
    ]
  ) (
    c:
    let
      auth = c.hwc.ai.${d.attr}.settings.auth;
    in
    auth.token_files == [ "token-0" ]
    && auth.tokens == [
      {
        name = "ci";
        role = "requester";
        file = "token-ci";
        scopes = [ "git" ];
      }
    ]
    && builtins.elem "token-0:/run/secrets/ops" (sc c d).LoadCredential
    && builtins.elem "token-ci:/run/secrets/ci" (sc c d).LoadCredential
  ))
  (rejects "${d.crate}: a token file in the Nix store" (
    all ++ [ { hwc.ai.${d.attr}.tokenFiles = [ "/nix/store/0000-token" ]; } ]
  ) "hwc.ai.${d.attr}: secrets point into the Nix store")
  (throws "${d.crate}: a token with a role that does not exist" (
    all
    ++ [
      {
        hwc.ai.${d.attr}.tokens.x = {
          file = "/run/secrets/x";
          role = "root";
        };
      }
    ]
  ) [ "hwc" "ai" d.attr "settings" "auth" ])
]) tokenDaemons
++ [
  (holds "the prober probes every other daemon of the registry, with its unit" all (
    c:
    let
      targets = lib.listToAttrs (map (t: lib.nameValuePair t.name t) c.hwc.ai.healthProber.settings.targets);
    in
    builtins.all (
      d: d.probe == null || (targets.${d.component}.restart_unit == d.unit && targets.${d.component}.kind == d.probe)
    ) daemons
    && builtins.all (d: builtins.elem d.unit c.hwc.ai.healthProber.restartUnits) (
      builtins.filter (d: d.probe != null) daemons
    )
  ))
  (holds "monitoring scrapes every daemon of the registry with its component label" (
    all ++ [ { hwc.ai.monitoring.enable = true; } ]
  ) (
    c:
    let
      jobs = lib.listToAttrs (map (j: lib.nameValuePair j.job_name j) c.hwc.ai.monitoring.scrapeConfigs);
    in
    builtins.all (
      d: (builtins.head jobs."hwc-${d.component}".static_configs).labels.component == d.component
    ) daemons
  ))
  (holds "the model manager has no auth section keys without tokens" all (
    c: (c.hwc.ai.modelManager.settings.auth or { }) == { }
  ))
  (check "every registry entry has every field" (builtins.all (
    d:
    builtins.all (f: d ? ${f}) [
      "crate"
      "attr"
      "component"
      "description"
      "port"
      "unit"
      "unitFile"
      "probe"
      "auth"
      "settings"
      "doc"
    ]
  ) daemons) "an entry of nix/daemons.nix lacks a field")
  (check "registry ports, units and attrs are unique" (
    let
      uniq = f: lib.length (lib.unique (map f daemons)) == lib.length daemons;
    in
    uniq (d: d.port) && uniq (d: d.unit) && uniq (d: d.attr) && uniq (d: d.crate)
  ) "two entries of nix/daemons.nix share a port, unit, attr or crate")
  (rejects "telemetry endpoint that is not a URL" (
    minimal ++ [ { hwc.ai.telemetry.otlpEndpoint = "tempo.lan:4318"; } ]
  ) ''hwc.ai.telemetry.otlpEndpoint = "tempo.lan:4318" is not an'')
  (throws "telemetry sample ratio above 1" (
    minimal ++ [ { hwc.ai.telemetry.sampleRatio = 1.5; } ]
  ) [ "hwc" "ai" "telemetry" "sampleRatio" ])
  (holds "a loopback router with a remote trace collector is not confined to loopback" (
    minimal ++ [ { hwc.ai.telemetry.otlpEndpoint = "http://tempo.lan:4318"; } ]
  ) (c: !c.hwc.ai.router.restrictToLoopback))
  (holds "a loopback router with a loopback collector still is" (
    minimal ++ [ { hwc.ai.telemetry.otlpEndpoint = "http://127.0.0.1:4318"; } ]
  ) (c: c.hwc.ai.router.restrictToLoopback))
  (holds "openFirewall on a loopback daemon warns" (
    all ++ [ { hwc.ai.${manager.attr}.openFirewall = true; } ]
  ) (c: lib.any (w: hasInfix "hwc.ai.modelManager.openFirewall opens port" w) c.warnings))
]
