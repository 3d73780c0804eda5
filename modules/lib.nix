# Helpers shared by the hwc.ai modules (not a module itself).
{ lib }:
let
  inherit (lib)
    elem
    hasInfix
    hasPrefix
    ;
in
rec {
  # Address a local client uses to reach a server bound to `host`: a
  # wildcard bind is reached on loopback.
  clientHost =
    host:
    if
      elem host [
        ""
        "0.0.0.0"
        "*"
      ]
    then
      "127.0.0.1"
    else if
      elem host [
        "::"
        "[::]"
      ]
    then
      "::1"
    else
      host;

  # `host` as written inside a URL (IPv6 in brackets).
  urlHost =
    host:
    let
      h = clientHost host;
    in
    if hasInfix ":" h && !hasPrefix "[" h then "[${h}]" else h;

  # host:port for a daemon's `server.listen` (the bind address as given,
  # IPv6 in brackets).
  listenAddress =
    host: port:
    let
      h = if hasInfix ":" host && !hasPrefix "[" host then "[${host}]" else host;
    in
    "${h}:${toString port}";

  # http://HOST:PORT for a server bound to host:port.
  baseUrl = host: port: "http://${urlHost host}:${toString port}";

  # Where the model manager places file models declared with a url in
  # hwc.ai.models, and the group that may read them (the runtimes join it).
  managedModelsDir = "/var/lib/hwc-ai/models";
  modelsGroup = "hwc-models";

  # The file name a download is stored under: the URL's last path segment.
  fileNameOfUrl = url: lib.last (lib.splitString "/" (builtins.head (lib.splitString "?" url)));

  isLoopback =
    host:
    elem host [
      "localhost"
      "::1"
      "[::1]"
    ]
    || hasPrefix "127." host;

  # The host part of a URL ("http://127.0.0.1:8080/v1" -> "127.0.0.1",
  # "postgres://user@db.lan/x" -> "db.lan"), or null if it does not look
  # like one.
  hostOfUrl =
    url:
    let
      m = builtins.match "[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#@]*@)?(\\[[^]]*]|[^:/?#]+).*" url;
    in
    if m == null then null else builtins.elemAt m 1;

  # Whether a URL carries a password (one written into the Nix store would
  # be readable by every local user).
  hasPassword = url: builtins.match "[a-z]+://[^/@:]*:[^/@]*@.*" url != null;

  # Quoting for systemd Exec lines (shared with the builtins-only units).
  inherit (import ../nix/exec-args.nix) escapeExecArg escapeExecArgs;

  # The runtime packages for an acceleration choice. One place, so that every
  # runtime follows hwc.ai.acceleration the same way:
  #   null   -> CPU builds;
  #   "cuda" -> pkgs.ollama-cuda, llama.cpp with cudaSupport, vLLM from
  #             pkgs.pkgsCuda (PyTorch built with CUDA);
  #   "rocm" -> pkgs.ollama-rocm, llama.cpp with rocmSupport, vLLM from
  #             pkgs.pkgsRocm.
  # Checked against nixpkgs: nixos/modules/services/misc/ollama.nix (package
  # choice replaced the removed `acceleration` option),
  # pkgs/by-name/ll/llama-cpp/package.nix (cudaSupport/rocmSupport
  # arguments), pkgs/development/python-modules/vllm/default.nix (follows
  # torch.cudaSupport/rocmSupport), pkgs/top-level/variants.nix (pkgsCuda,
  # pkgsRocm).
  runtimePackages =
    pkgs: acceleration:
    if acceleration == "cuda" then
      {
        ollama = pkgs.ollama-cuda;
        llamaCpp = pkgs.llama-cpp.override { cudaSupport = true; };
        vllm = pkgs.pkgsCuda.python3Packages.vllm;
      }
    else if acceleration == "rocm" then
      {
        ollama = pkgs.ollama-rocm;
        llamaCpp = pkgs.llama-cpp.override { rocmSupport = true; };
        vllm = pkgs.pkgsRocm.python3Packages.vllm;
      }
    else
      {
        ollama = pkgs.ollama;
        llamaCpp = pkgs.llama-cpp;
        vllm = pkgs.python3Packages.vllm;
      };

  # Device nodes a GPU runtime must open, for DeviceAllow= (as nixpkgs'
  # ollama unit lists them).
  gpuDeviceAllow =
    acceleration:
    if acceleration == "cuda" then
      [
        "char-nvidiactl"
        "char-nvidia-caps"
        "char-nvidia-frontend"
        "char-nvidia-uvm"
      ]
    else if acceleration == "rocm" then
      [
        "char-drm"
        "char-fb"
        "char-kfd"
      ]
    else
      [ ];

  # Every enabled runtime as an endpoint: what the router turns into a
  # backend, what the prober probes, what the port check counts. One list,
  # so that enabling a runtime is enough for all three.
  runtimeEndpoints =
    config:
    let
      top = config.hwc.ai;
      rt = top.runtimes;
      ollama = lib.optional rt.ollama.enable rec {
        backend = "ollama";
        unit = "ollama.service";
        probeKind = "ollama";
        option = "hwc.ai.runtimes.ollama.port";
        inherit (rt.ollama) host port;
        url = baseUrl host port;
        responsesApi = false;
      };
      llamaCpp = lib.optional rt.llamaCpp.enable rec {
        backend = "llama-cpp";
        unit = "llama-cpp.service";
        probeKind = "llama_cpp";
        option = "hwc.ai.runtimes.llamaCpp.port";
        inherit (rt.llamaCpp) host port;
        url = baseUrl host port;
        responsesApi = false;
      };
      vllm = lib.mapAttrsToList (name: inst: rec {
        backend = "vllm-${name}";
        unit = "vllm-${name}.service";
        probeKind = "vllm";
        option = "hwc.ai.runtimes.vllm.instances.${name}.port";
        inherit (inst) host port;
        url = baseUrl host port;
        # vLLM serves /v1/responses.
        responsesApi = true;
      }) (lib.filterAttrs (_: inst: inst.enable) rt.vllm.instances);
    in
    ollama ++ llamaCpp ++ vllm;

  # The router backend name a declared model (hwc.ai.models.<name>) is
  # served by.
  backendOfModel =
    m:
    if m.runtime == "ollama" then
      "ollama"
    else if m.runtime == "llamaCpp" then
      "llama-cpp"
    else
      "vllm-${m.instance}";

  # The hwc-ai daemons (../nix/daemons.nix, the only list of them).
  daemons = import ../nix/daemons.nix;

  # A daemon's registry entry by its option name (hwc.ai.<attr>).
  daemon =
    attr:
    lib.findFirst (d: d.attr == attr) (throw "nix/daemons.nix has no daemon with attr = \"${attr}\"") daemons;

  # The `package` option of an hwc-ai daemon module: the flake's build
  # (hwc.ai.packages), else the overlay's, else an error saying how to get one.
  daemonPackageOption =
    { top, pkgs }:
    name:
    lib.mkOption {
      type = lib.types.package;
      default =
        top.packages.${name} or pkgs.${name} or (throw ''
          No ${name} package: import the hwc-ai flake's nixosModules.default (it sets
          hwc.ai.packages), apply its overlays.default, or set hwc.ai.packages.${name}.
        '');
      defaultText = lib.literalExpression "config.hwc.ai.packages.${name}";
      description = "The ${name} package.";
    };
}
