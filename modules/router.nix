# hwc.ai.router: hwc-model-router, the OpenAI-compatible endpoint every
# client shares. Its TOML configuration is rendered from `settings` (RFC 42,
# every key in docs/router.md); backends and models default from what is
# enabled, so a runtime is never listed twice. The options every daemon has
# (enable, package, host, port, settings, ...) come from ./daemon.nix; the
# unit is ../nix/units/router.nix, the same source tests/nix
# scores and tests/vm boots.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    types
    literalExpression
    literalMD
    ;
  top = config.hwc.ai;
  cfg = top.router;
  hlib = import ./lib.nix { inherit lib; };
  daemon = hlib.daemon "router";
  settingsFormat = pkgs.formats.toml { };

  endpoints = hlib.runtimeEndpoints config;

  # Whether a runtime's backend serves /v1/responses itself (passed
  # through; else the router translates to chat completions): vLLM always,
  # llama.cpp and Ollama as hwc.ai.router.runtimesServeResponses says.
  servesResponses =
    e:
    e.responsesApi
    || (e.backend == "ollama" && cfg.runtimesServeResponses.ollama)
    || (e.backend == "llama-cpp" && cfg.runtimesServeResponses.llamaCpp);

  # Backends of the enabled runtimes: local, OpenAI-compatible, on loopback.
  runtimeBackends = map (
    e:
    {
      name = e.backend;
      kind = "openai";
      locality = "local";
      urls = [ "${e.url}/v1" ];
    }
    // lib.optionalAttrs (servesResponses e) { responses_api = true; }
  ) endpoints;

  ollamaVersion = lib.getVersion top.runtimes.ollama.package;

  cloudBackends = lib.mapAttrsToList (
    name: b:
    {
      inherit name;
      inherit (b) kind urls;
      locality = "cloud";
    }
    // lib.optionalAttrs (b.apiKeyFile != null) { api_key_file = "backend-${name}"; }
    // lib.optionalAttrs b.responsesApi { responses_api = true; }
    // b.settings
  ) cfg.cloudBackends;

  # Models: every enabled vLLM instance under its served name, the llama.cpp
  # model under its alias, then every declared model (which wins over the
  # first two where the names meet). One attribute set, so a model served by
  # an instance and also declared in hwc.ai.models appears once.
  instanceModels = lib.mapAttrs' (
    name: inst:
    lib.nameValuePair inst.servedModelName [
      {
        backend = "vllm-${name}";
        model = inst.servedModelName;
      }
    ]
  ) (lib.filterAttrs (_: inst: inst.enable) top.runtimes.vllm.instances);
  llamaModels = lib.optionalAttrs top.runtimes.llamaCpp.enable {
    ${top.runtimes.llamaCpp.modelName} = [
      {
        backend = "llama-cpp";
        model = top.runtimes.llamaCpp.modelName;
      }
    ];
  };
  declaredModels = lib.mapAttrs (
    _: m:
    [
      {
        backend = hlib.backendOfModel m;
        model = m.servedName;
      }
    ]
    ++ map (f: { inherit (f) backend model; }) m.fallbacks
  ) top.models;
  generatedModels = instanceModels // llamaModels // declaredModels;

  credentials =
    lib.optionalAttrs (cfg.keysFile != null) { keys = cfg.keysFile; }
    // lib.optionalAttrs (cfg.store.urlFile != null) { store-url = cfg.store.urlFile; }
    // lib.mapAttrs' (name: b: lib.nameValuePair "backend-${name}" b.apiKeyFile) (
      lib.filterAttrs (_: b: b.apiKeyFile != null) cfg.cloudBackends
    )
    // cfg.unitCredentials;

  finalBackends = cfg.settings.backends or [ ];
  backendNames = map (b: b.name or "<unnamed>") finalBackends;
  duplicateBackends = lib.unique (
    builtins.filter (n: lib.count (x: x == n) backendNames > 1) backendNames
  );
  localBackends = builtins.filter (b: (b.locality or "local") == "local") finalBackends;
  cloudBackendNames = map (b: b.name or "<unnamed>") (
    builtins.filter (b: (b.locality or "local") == "cloud") finalBackends
  );

  # Loopback-only when the router listens on loopback and every backend URL
  # (and the trace collector's) is a loopback address: then the unit may also refuse any other IP.
  backendHosts = lib.concatMap (b: map hlib.hostOfUrl (b.urls or [ ])) finalBackends;
  # The trace collector (hwc.ai.telemetry) counts as a peer too.
  otlpHosts = lib.optional (top.telemetry.otlpEndpoint != null) (
    hlib.hostOfUrl top.telemetry.otlpEndpoint
  );
  # A shared store is a peer too; one named only in a credential file is on
  # a host the evaluation cannot see.
  storeHosts = lib.optional (cfg.store.url != null) (hlib.hostOfUrl cfg.store.url);
  allLoopback =
    hlib.isLoopback cfg.host
    && backendHosts != [ ]
    && cfg.store.urlFile == null
    && builtins.all (h: h != null && hlib.isLoopback h) (backendHosts ++ otlpHosts ++ storeHosts);

  drainSeconds =
    let
      d = cfg.settings.server.drain_timeout or "30s";
      m = builtins.match "([0-9]+)s" d;
    in
    if m == null then 30 else lib.toInt (builtins.head m);

  unit = import ../nix/units/router.nix {
    bin = lib.getExe cfg.package;
    inherit (cfg) configFile;
    inherit credentials;
    ipAddressAllow = if cfg.restrictToLoopback then [ "localhost" ] else null;
    drainTimeoutSec = drainSeconds;
    killBin = "${pkgs.coreutils}/bin/kill";
  };
in
{
  imports = [
    (import ./daemon.nix {
      inherit daemon;
      settingsGenerated = ''
        This module also fills in `auth`, a `[[backends]]` entry for every
        enabled runtime and cloud backend, and a `[models.<name>]` entry for
        every declared model and vLLM instance; `backends` you add here are
        appended, a `models.<name>.targets` you set replaces the generated one.
      '';
      settingsExample = literalExpression ''
        {
          aliases.default = "gpt-oss-20b";
          auto = { default_model = "gpt-oss-20b"; strong_model = "gpt-oss-120b"; };
          fallback.cooldown = "10s";
        }
      '';
    })
  ];

  options.hwc.ai.router = {
    keysFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/hwc-ai/router-keys.toml";
      description = ''
        The router's API keys file (format in docs/router.md, `[auth]`), on
        the host and outside the Nix store. Passed with `LoadCredential` as
        credential `keys`; `auth.keys_file` is set to it.
      '';
    };

    allowAnonymous = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Let requests without `Authorization` in (`auth.allow_anonymous`).
        Only for a router on loopback of a single-user host.
      '';
    };

    localOnly = mkOption {
      type = types.bool;
      default = false;
      description = ''
        A router that never sends a request off the host's own runtimes: no
        cloud backend may be configured (evaluation fails if one is), and
        anonymous requests are `local-only`.
      '';
    };

    store = {
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "postgres://router@db.lan/hwc_router";
        description = ''
          A PostgreSQL database for the router's state (`state.url`): usage
          and daily budgets, `Idempotency-Key` answers and stored responses,
          shared by every router given the same one (docs/router.md,
          "Several routers, one store"). Without a password (it would be in
          the Nix store; use `urlFile`). null: the SQLite file in the state
          directory.
        '';
      };
      urlFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/secrets/hwc-ai/router-store-url";
        description = ''
          File holding the whole PostgreSQL URL, password included
          (`state.url_file`), passed with `LoadCredential` as `store-url`.
          Outside the Nix store. The database's host is then unknown at
          evaluation, so `restrictToLoopback` defaults to false.
        '';
      };
    };

    restrictToLoopback = mkOption {
      type = types.bool;
      default = allLoopback;
      defaultText = literalMD "true when the router, all its backends and its store are on loopback";
      description = ''
        Confine the unit's sockets to loopback (`IPAddressDeny=any`,
        `IPAddressAllow=localhost`). On by default when nothing else could be
        reached anyway; turn it off if clients or backends on other hosts
        must talk to the router.
      '';
    };

    cloudBackends = mkOption {
      default = { };
      example = literalExpression ''
        {
          openrouter = {
            urls = [ "https://openrouter.ai/api/v1" ];
            apiKeyFile = "/run/secrets/openrouter-key";
          };
        }
      '';
      description = ''
        Cloud providers, as `locality = "cloud"` backends: used for fallback
        and never for `local-only` requests. The key file is passed with
        `LoadCredential` (credential `backend-<name>`).
      '';
      type = types.attrsOf (
        types.submodule {
          options = {
            kind = mkOption {
              type = types.enum [
                "openai"
                "anthropic"
              ];
              default = "openai";
              description = "`openai` for any OpenAI-compatible API, `anthropic` for the Messages API.";
            };
            urls = mkOption {
              type = types.nonEmptyListOf types.str;
              example = [ "https://api.anthropic.com/v1" ];
              description = "Base URLs up to and including `/v1`.";
            };
            apiKeyFile = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "File holding the provider's API key, outside the Nix store.";
            };
            responsesApi = mkOption {
              type = types.bool;
              default = false;
              description = "The provider serves `/v1/responses`.";
            };
            settings = mkOption {
              type = settingsFormat.type;
              default = { };
              example = {
                first_token_timeout = "30s";
              };
              description = "Further keys of this `[[backends]]` entry (docs/router.md).";
            };
          };
        }
      );
    };

    runtimesServeResponses = {
      ollama = mkOption {
        type = types.bool;
        default = ollamaVersion != "" && lib.versionAtLeast ollamaVersion "0.13.3";
        defaultText = literalMD "true when `hwc.ai.runtimes.ollama.package` is Ollama 0.13.3 or later";
        description = ''
          Ollama serves `/v1/responses` (since 0.13.3, stateless): the router
          passes Responses requests through (`responses_api = true`) instead of
          translating them to chat completions. Stored responses and
          `previous_response_id` are the router's either way.
        '';
      };
      llamaCpp = mkOption {
        type = types.bool;
        default = true;
        description = ''
          llama.cpp's llama-server serves `/v1/responses` (recent builds; it
          keeps no responses): the router passes Responses requests through
          (`responses_api = true`). Set false for an older build that answers
          404 there, and the router translates them to chat completions.
        '';
      };
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    hwc.ai.router.unit = unit;
    hwc.ai.router.settings = {
      auth = {
        allow_anonymous = lib.mkDefault cfg.allowAnonymous;
      }
      // lib.optionalAttrs (cfg.keysFile != null) { keys_file = "keys"; }
      // lib.optionalAttrs cfg.localOnly { anonymous_privacy = "local-only"; };
      backends = runtimeBackends ++ cloudBackends;
      models = lib.mapAttrs (_: targets: { targets = lib.mkDefault targets; }) generatedModels;
      state = lib.mkIf (cfg.store.url != null || cfg.store.urlFile != null) {
        url = lib.mkIf (cfg.store.url != null) cfg.store.url;
        url_file = lib.mkIf (cfg.store.urlFile != null) "store-url";
      };
    };

    assertions = [
      {
        assertion = duplicateBackends == [ ];
        message = ''
          hwc.ai.router: backend ${lib.concatStringsSep ", " duplicateBackends} is defined twice.
          Backends of enabled runtimes (${
            lib.concatMapStringsSep ", " (b: b.name) runtimeBackends
          }) are added automatically; remove them from hwc.ai.router.settings.backends.
        '';
      }
      {
        assertion = finalBackends != [ ];
        message = ''
          hwc.ai.router has no backend. Enable a runtime (hwc.ai.runtimes.ollama.enable,
          hwc.ai.runtimes.llamaCpp.enable or an hwc.ai.runtimes.vllm.instances entry),
          or add one to hwc.ai.router.cloudBackends.
        '';
      }
      {
        assertion = cfg.localOnly -> localBackends != [ ];
        message = ''
          hwc.ai.router.localOnly is set, but the router has no local backend, so it
          could answer nothing. Enable a runtime on this host
          (hwc.ai.runtimes.ollama.enable = true, hwc.ai.runtimes.llamaCpp.enable = true
          or an hwc.ai.runtimes.vllm.instances entry).
        '';
      }
      {
        assertion = cfg.localOnly -> cloudBackendNames == [ ];
        message = ''
          hwc.ai.router.localOnly is set, but cloud backends are configured:
          ${lib.concatStringsSep ", " cloudBackendNames}. Remove them
          (hwc.ai.router.cloudBackends / settings.backends), or set localOnly = false.
        '';
      }
      {
        assertion = cfg.keysFile != null || cfg.allowAnonymous || (cfg.settings.auth ? keys_file);
        message = ''
          hwc.ai.router needs API keys: set hwc.ai.router.keysFile to a keys file
          (docs/router.md, [auth]), or hwc.ai.router.allowAnonymous = true for a
          loopback-only, single-user host.
        '';
      }
      {
        assertion = !(cfg.store.url != null && cfg.store.urlFile != null);
        message = ''
          hwc.ai.router: store.url and store.urlFile are both set; keep one (urlFile when the URL
          holds a password).
        '';
      }
      {
        assertion = cfg.store.url == null || !(hlib.hasPassword cfg.store.url);
        message = ''
          hwc.ai.router.store.url holds a password, which would be in the Nix store for every local
          user to read. Put the whole URL in a file outside the store and set
          hwc.ai.router.store.urlFile to it instead.
        '';
      }
      {
        assertion = cfg.keysFile == null || !(lib.hasPrefix builtins.storeDir cfg.keysFile);
        message = ''
          hwc.ai.router.keysFile points into the Nix store (${toString cfg.keysFile}), which every
          local user can read. Keep it outside (for example /run/secrets/..., written by
          sops-nix or agenix).
        '';
      }
    ];

    systemd.services.hwc-model-router = {
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
      ]
      # Start after local runtimes so that the first requests find them;
      # not Requires=: the router serves (and falls back) without them.
      ++ map (e: e.unit) (builtins.filter (e: !(lib.hasPrefix "vllm-" e.backend)) endpoints);
    };
  };
}
