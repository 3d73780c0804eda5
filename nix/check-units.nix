# Every unit this repository defines, rendered to unit-file text from the
# same Nix source the NixOS modules use (./units). Builtins only.
#
#   nix-instantiate --eval --strict --json nix/check-units.nix \
#     --argstr routerBin "$PWD/target/debug/hwc-model-router"
#
# gives { "<unit file name>" = "<text>"; } for scripts/check-nix.sh, which
# scores each with `systemd-analyze security --offline=true` and checks it
# with `systemd-analyze verify`. verify wants ExecStart's binary to exist, so
# the binaries are arguments: the cargo-built router where it exists, else a
# stand-in such as /bin/true (what is verified is the unit, not the daemon).
{
  routerBin ? "/bin/true",
  proberBin ? "/bin/true",
  managerBin ? "/bin/true",
  vllmBin ? "/bin/true",
  curlBin ? "/usr/bin/curl",
}:
let
  render = import ./render-unit.nix;
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
{
  # What modules/router.nix produces for a router that may reach cloud
  # backends (no IP filter) ...
  "hwc-model-router.service" = render (router {
    inherit routerBin;
    configFile = "/etc/hwc-ai/router.toml";
    credentials = {
      keys = "/run/secrets/hwc-ai/router-keys.toml";
      backend-openrouter = "/run/secrets/hwc-ai/openrouter-key";
    };
  });
  # ... and for a loopback-only one (clients and backends on loopback).
  "hwc-model-router-loopback.service" = render (router {
    inherit routerBin;
    configFile = "/etc/hwc-ai/router.toml";
    credentials.keys = "/run/secrets/hwc-ai/router-keys.toml";
    ipAddressAllow = [ "localhost" ];
  });
  "hwc-health-prober.service" = render (
    import ./units/health-prober.nix {
      inherit proberBin;
      configFile = "/etc/hwc-ai/prober.toml";
    }
  );
  "hwc-model-manager.service" = render (
    import ./units/model-manager.nix {
      inherit managerBin;
      configFile = "/etc/hwc-ai/model-manager.toml";
    }
  );
  # vLLM is a runtime, not an hwc-ai daemon: scored and reported, held to
  # nixpkgs' ollama unit (1.6) rather than the 1.5 of our daemons.
  "vllm-gpt-oss-20b-cuda.service" = render (vllmExample "cuda");
  "vllm-gpt-oss-20b-rocm.service" = render (vllmExample "rocm");
}
