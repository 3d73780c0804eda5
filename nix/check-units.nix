# Every unit this repository defines, rendered to unit-file text from the
# same Nix source the NixOS modules use (./units). Builtins only.
#
#   nix-instantiate --eval --strict --json nix/check-units.nix \
#     --argstr binDir "$CARGO_TARGET_DIR/debug"
#
# gives { "<unit file name>" = "<text>"; } for the Nix checks
# (tests/nix), which score each with `systemd-analyze security
# --offline=true` and check it with `systemd-analyze verify`. verify wants
# ExecStart's binary to exist: each daemon's is <binDir>/<crate> where that
# exists, else /bin/true (what is verified is the unit, not the daemon).
{
  # Where the cargo-built daemons are, or null for none.
  binDir ? null,
  vllmBin ? "/bin/true",
  curlBin ? "/usr/bin/curl",
}:
let
  render = import ./render-unit.nix;
  daemons = import ./daemons.nix;
  binOf =
    crate:
    if binDir != null && builtins.pathExists "${binDir}/${crate}" then "${binDir}/${crate}" else "/bin/true";

  # Every daemon of the registry as its module renders it with no secrets.
  plain = builtins.listToAttrs (
    map (d: {
      name = d.unit;
      value = render (
        import (./units + "/${d.unitFile}") {
          bin = binOf d.crate;
          configFile = "/etc/hwc-ai/${d.crate}.toml";
        }
      );
    }) daemons
  );

  router = import ./units/router.nix;
  vllm = import ./units/vllm.nix;
  vllmExample =
    acceleration:
    vllm {
      name = "gpt-oss-20b";
      inherit acceleration;
      inherit vllmBin curlBin;
      args = [
        "serve"
        "openai/gpt-oss-20b"
        "--host"
        "127.0.0.1"
        "--port"
        "8000"
      ];
      url = "http://127.0.0.1:8000";
    };
in
plain
// {
  # What modules/router.nix produces for a router that may reach cloud
  # backends (no IP filter) ...
  "hwc-model-router.service" = render (router {
    bin = binOf "hwc-model-router";
    configFile = "/etc/hwc-ai/router.toml";
    credentials = {
      keys = "/run/secrets/hwc-ai/router-keys.toml";
      backend-openrouter = "/run/secrets/hwc-ai/openrouter-key";
    };
  });
  # ... and for a loopback-only one (clients and backends on loopback).
  "hwc-model-router-loopback.service" = render (router {
    bin = binOf "hwc-model-router";
    configFile = "/etc/hwc-ai/router.toml";
    credentials.keys = "/run/secrets/hwc-ai/router-keys.toml";
    ipAddressAllow = [ "localhost" ];
  });
  # vLLM is a runtime, not an hwc-ai daemon: scored and reported, held to
  # nixpkgs' ollama unit (1.6) rather than the 1.5 of our daemons.
  "vllm-gpt-oss-20b-cuda.service" = render (vllmExample "cuda");
  "vllm-gpt-oss-20b-rocm.service" = render (vllmExample "rocm");
}
