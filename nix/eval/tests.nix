# Module evaluation tests: every profile and example machine evaluates with
# no failed assertion and generates the units and configurations it should;
# every misconfiguration the modules guard against fails with a message that
# says what to change. Needs only nixpkgs' lib:
#
#   nix-instantiate --eval --strict --json nix/eval/tests.nix --arg lib "import $NIXPKGS_LIB/lib"
#
# gives { results = [ { name; ok; detail; } ]; renders = { "<path>" = <text or JSON value>; }; }.
# tests/nix runs each result as a test, scores the rendered units and feeds
# the rendered daemon configurations to the daemons' --check-config.
#
# The same tests run against real NixOS in `nix flake check`
# (`eval-tests-nixos`): the flake passes `evalModules`, which evaluates a
# list of modules with lib.nixosSystem and the flake's nixosModules.default
# (the srvos pattern). Where the two disagree, the stand-in is wrong.
{
  lib,
  # null: the stand-ins of ./stubs.nix through lib.evalModules (nixpkgs' lib
  # only). Else a function from a list of modules to an evaluated system
  # (`{ config; options; ... }`) that includes the hwc.ai modules.
  evalModules ? null,
}:
let
  h = import ./. { inherit lib; };
  inherit (h) failedAssertions renderService;
  eval = if evalModules == null then h.eval else evalModules;
  inherit (lib) hasInfix;

  # -- helpers -----------------------------------------------------------

  check = name: ok: detail: { inherit name ok detail; };

  # The configuration evaluates, and no assertion fails.
  clean =
    name: modules:
    let
      e = eval modules;
      r = builtins.tryEval (builtins.deepSeq (failedAssertions e) (failedAssertions e));
    in
    if !r.success then
      check name false "evaluation failed (run with --show-trace)"
    else
      check name (r.value == [ ]) (lib.concatStringsSep "\n" r.value);

  # An assertion fails with a message containing `needle`.
  rejects =
    name: modules: needle:
    let
      msgs = failedAssertions (eval modules);
      r = builtins.tryEval (builtins.deepSeq msgs msgs);
    in
    if !r.success then
      check name false "evaluation failed instead of an assertion"
    else
      check name (lib.any (m: hasInfix needle m) r.value) (
        "expected an assertion containing: ${needle}; got: " + lib.concatStringsSep " | " r.value
      );

  # Evaluation itself fails (e.g. an option that does not exist).
  throws =
    name: modules: path:
    let
      r = builtins.tryEval (builtins.deepSeq (lib.attrByPath path null (eval modules).config) true);
    in
    check name (!r.success) "expected evaluation to fail";

  # `f config` is true.
  holds =
    name: modules: f:
    let
      r = builtins.tryEval (f (eval modules).config);
    in
    check name (r.success && r.value == true) (
      if r.success then "the property does not hold" else "evaluation failed (run with --show-trace)"
    );

  svc = c: name: c.systemd.services.${name};
  sc = c: name: (svc c name).serviceConfig;
  backendNames = c: map (b: b.name) c.hwc.ai.router.settings.backends;
  backendOf =
    c: name: lib.findFirst (b: b.name == name) (throw "no backend ${name}") c.hwc.ai.router.settings.backends;

  # -- configurations ----------------------------------------------------

  edge = [ h.machines.edge-p1000 ];
  gpu = [ h.machines.gpu-server ];

  # A CPU-only host with the edge profile.
  edgeCpu = [
    h.profiles.edge
    { hwc.ai.router.keysFile = "/run/secrets/keys.toml"; }
  ];

  minimal = [
    {
      hwc.ai = {
        enable = true;
        runtimes.ollama.enable = true;
        router = {
          enable = true;
          allowAnonymous = true;
        };
      };
    }
  ];

  # llama.cpp serving a GGUF the model manager downloads.
  llamaFromUrl = [
    {
      hwc.ai = {
        enable = true;
        models.smollm = {
          runtime = "llamaCpp";
          url = "http://mirror.lan/SmolLM2-135M-Instruct.Q4_1.gguf";
          sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
        };
        runtimes.llamaCpp.enable = true;
        modelManager.enable = true;
        router = {
          enable = true;
          allowAnonymous = true;
        };
      };
    }
  ];

  nvidiaHost = {
    services.xserver.videoDrivers = [ "nvidia" ];
    hardware.graphics.enable = true;
  };

  rocm = [
    {
      hardware.graphics.enable = true;
      hwc.ai = {
        enable = true;
        acceleration = "rocm";
        rocm.gfxOverride = "10.3.0";
        runtimes.ollama.enable = true;
        runtimes.llamaCpp = {
          enable = true;
          model = "/var/lib/models/small.gguf";
          port = 8081;
        };
        runtimes.vllm.instances.small = {
          model = "/var/lib/models/small";
          port = 8000;
          gpus = [ 0 ];
        };
        router = {
          enable = true;
          allowAnonymous = true;
        };
      };
    }
  ];

  llamaCpu = [
    {
      hwc.ai = {
        enable = true;
        models.smollm = {
          runtime = "llamaCpp";
          source = "/var/lib/models/SmolLM2-135M-Instruct.Q4_1.gguf";
        };
        runtimes.llamaCpp.enable = true;
        router = {
          enable = true;
          keysFile = "/run/secrets/keys.toml";
        };
      };
    }
  ];

  # llama.cpp built with CUDA on an NVIDIA host.
  llamaCuda = [
    nvidiaHost
    {
      # CUDA is unfree.
      nixpkgs.config.allowUnfree = true;
      hwc.ai = {
        enable = true;
        acceleration = "cuda";
        runtimes.llamaCpp = {
          enable = true;
          model = "/var/lib/models/small.gguf";
        };
        router = {
          enable = true;
          allowAnonymous = true;
        };
      };
    }
  ];

  # Open WebUI on a host whose nixpkgs config does not allow unfree packages.
  openWebuiHost = minimal ++ [
    {
      hwc.ai.openWebui = {
        enable = true;
        environmentFile = "/run/secrets/open-webui.env";
      };
    }
  ];

  # Every daemon, with the options the builder gives them all set: named
  # tokens, admin token files, traces to a collector. Rendered for the
  # daemons' --check-config.
  fleet = minimal ++ [
    {
      hwc.ai = {
        telemetry = {
          otlpEndpoint = "http://127.0.0.1:4318";
          sampleRatio = 0.5;
        };
        healthProber = {
          enable = true;
          tokenFiles = [ "/run/secrets/hwc-ai/prober-admin" ];
        };
        modelManager = {
          enable = true;
          tokens.ops = {
            file = "/run/secrets/hwc-ai/ops";
            role = "reader";
          };
        };
      };
    }
  ];

  # The flake's outputs, with nixpkgs reduced to its lib: enough for
  # nixosModules (packages and checks need all of nixpkgs).
  flake =
    let
      outputs = (import ../../flake.nix).outputs {
        self = outputs // {
          packages.x86_64-linux = h.packages;
        };
        nixpkgs = {
          inherit lib;
          legacyPackages = { };
        };
      };
    in
    outputs;
  viaFlake =
    modules:
    if evalModules != null then
      (evalModules modules).config
    else
      (lib.evalModules {
        modules = [
          ./stubs.nix
          flake.nixosModules.default
        ]
        ++ modules;
      }).config;

  # -- the tests ---------------------------------------------------------

  results = [
    # Example machines and profiles.
    (clean "machine edge-p1000 evaluates without failed assertions" edge)
    (clean "machine gpu-server evaluates without failed assertions" gpu)
    (clean "profile edge on a CPU-only host" edgeCpu)
    (clean "profile cluster on an NVIDIA host" [
      h.profiles.cluster
      nvidiaHost
      { hwc.ai.router.keysFile = "/run/secrets/keys.toml"; }
    ])
    (clean "rocm host with all three runtimes" rocm)
    (clean "llama.cpp on the CPU with a declared model" llamaCpu)

    (holds "edge: Ollama with the CUDA package the machine chose" edge (
      c: c.services.ollama.enable && hasInfix "ollama-cuda" c.services.ollama.package.name
    ))
    (holds "edge: the router's only backend is Ollama, on loopback" edge (
      c:
      # responses_api follows the Ollama package's version (tested below).
      map (b: removeAttrs b [ "responses_api" ]) c.hwc.ai.router.settings.backends == [
        {
          name = "ollama";
          kind = "openai";
          locality = "local";
          urls = [ "http://127.0.0.1:11434/v1" ];
        }
      ]
    ))
    (holds "responses_api: llama.cpp's backend serves /v1/responses" llamaCpu (
      c: (backendOf c "llama-cpp").responses_api or false
    ))
    (holds "responses_api: off for an older llama.cpp when told" (
      llamaCpu ++ [ { hwc.ai.router.runtimesServeResponses.llamaCpp = false; } ]
    ) (c: !((backendOf c "llama-cpp") ? responses_api)))
    (holds "responses_api: Ollama 0.13.3 and later serves /v1/responses" (
      edge
      ++ [
        (
          { pkgs, ... }:
          {
            hwc.ai.runtimes.ollama.package = lib.mkForce (pkgs.ollama // { version = "0.13.5"; });
          }
        )
      ]
    ) (c: (backendOf c "ollama").responses_api or false))
    (holds "responses_api: not for an Ollama before 0.13.3" (
      edge
      ++ [
        (
          { pkgs, ... }:
          {
            hwc.ai.runtimes.ollama.package = lib.mkForce (pkgs.ollama // { version = "0.12.10"; });
          }
        )
      ]
    ) (c: !((backendOf c "ollama") ? responses_api)))
    (holds "responses_api: every vLLM instance's backend" gpu (
      c:
      lib.all (b: b.responses_api or false) (
        builtins.filter (b: lib.hasPrefix "vllm-" b.name) c.hwc.ai.router.settings.backends
      )
      && lib.any (b: lib.hasPrefix "vllm-" b.name) c.hwc.ai.router.settings.backends
    ))
    (holds "edge: gpt-oss-20b routes to Ollama's gpt-oss:20b, alias default" edge (
      c:
      c.hwc.ai.router.settings.models."gpt-oss-20b".targets == [
        {
          backend = "ollama";
          model = "gpt-oss:20b";
        }
      ]
      && c.hwc.ai.router.settings.aliases.default == "gpt-oss-20b"
    ))
    (holds "edge: local-only router: anonymous requests local-only, keys as credential" edge (
      c:
      c.hwc.ai.router.settings.auth == {
        allow_anonymous = false;
        anonymous_privacy = "local-only";
        keys_file = "keys";
      }
      && sc c "hwc-model-router" ? LoadCredential
      && (sc c "hwc-model-router").LoadCredential == [ "keys:/run/secrets/hwc-ai/router-keys.toml" ]
    ))
    (holds "edge: loopback-only router unit is IP-confined to localhost" edge (
      c:
      (sc c "hwc-model-router").IPAddressDeny == "any"
      && (sc c "hwc-model-router").IPAddressAllow == [ "localhost" ]
    ))
    (holds "router: a shared store's URL file is a credential, and the unit is no longer IP-confined"
      (edge ++ [ { hwc.ai.router.store.urlFile = "/run/secrets/hwc-ai/router-store-url"; } ])
      (
        c:
        c.hwc.ai.router.settings.state == { url_file = "store-url"; }
        && builtins.elem "store-url:/run/secrets/hwc-ai/router-store-url" (
          sc c "hwc-model-router"
        ).LoadCredential
        && !((sc c "hwc-model-router") ? IPAddressDeny)
      )
    )
    (holds "router: a store on loopback keeps the loopback confinement"
      (edge ++ [ { hwc.ai.router.store.url = "postgres://router@127.0.0.1/hwc_router"; } ])
      (
        c:
        c.hwc.ai.router.settings.state == { url = "postgres://router@127.0.0.1/hwc_router"; }
        && (sc c "hwc-model-router").IPAddressAllow == [ "localhost" ]
      )
    )
    (holds "router: a store on another host lifts it"
      (edge ++ [ { hwc.ai.router.store.url = "postgres://router@db.lan/hwc_router"; } ])
      (c: !((sc c "hwc-model-router") ? IPAddressDeny))
    )
    (rejects "router: a store URL with a password in the Nix store" (
      edge ++ [ { hwc.ai.router.store.url = "postgres://router:s3cret@db.lan/hwc_router"; } ]
    ) "store.url holds a password")
    (holds "edge: router unit is Type=notify with watchdog, DynamicUser, state dir, restart" edge (
      c:
      let
        s = sc c "hwc-model-router";
      in
      s.Type == "notify"
      && s.NotifyAccess == "main"
      && s.WatchdogSec == 30
      && s.DynamicUser
      && s.StateDirectory == "hwc-ai/router"
      && s.Restart == "on-failure"
      && s.ProtectSystem == "strict"
      && s.MemoryDenyWriteExecute
      && hasInfix "hwc-model-router --config /nix/store/" s.ExecStart
    ))
    (holds "edge: router unit sets no HWC_AI_* environment (unknown keys are errors)" edge (
      c: !(lib.any (lib.hasPrefix "HWC_AI_") (builtins.attrNames (svc c "hwc-model-router").environment))
    ))
    (holds "edge: Ollama models pulled by nixpkgs' loader while the model manager is absent" edge (
      c:
      if c.hwc.ai.modelManager.enable then
        c.services.ollama.loadModels == [ ]
      else
        c.services.ollama.loadModels == [ "gpt-oss:20b" ]
    ))
    (holds "edge: health prober on when its package exists, probing Ollama and the router" edge (
      c:
      c.hwc.ai.healthProber.enable == (h.packages ? hwc-health-prober)
      && (
        !c.hwc.ai.healthProber.enable
        || (
          map (t: t.name) c.hwc.ai.healthProber.settings.targets == [
            "ollama"
            "router"
          ]
          ++ lib.optional c.hwc.ai.modelManager.enable "model-manager"
          && c.hwc.ai.healthProber.restartUnits == [
            "ollama.service"
            "hwc-model-router.service"
          ]
          ++ lib.optional c.hwc.ai.modelManager.enable "hwc-model-manager.service"
        )
      )
    ))
    (holds "edge: polkit lets the prober's user restart exactly its targets' units" edge (
      c:
      !c.hwc.ai.healthProber.enable
      || (
        c.security.polkit.enable
        && hasInfix ''subject.user == "hwc-ai-prober"'' c.security.polkit.extraConfig
        && hasInfix ''action.lookup("verb") == "restart"'' c.security.polkit.extraConfig
        && hasInfix (
          if c.hwc.ai.modelManager.enable then
            ''["ollama.service","hwc-model-router.service","hwc-model-manager.service"].indexOf''
          else
            ''["ollama.service","hwc-model-router.service"].indexOf''
        ) c.security.polkit.extraConfig
        && c.users.users ? hwc-ai-prober
        && (sc c "hwc-health-prober").User == "hwc-ai-prober"
        && !(sc c "hwc-health-prober").DynamicUser
      )
    ))

    (holds "gpu-server: one unit per vLLM instance, each pinned to its GPU" gpu (
      c:
      (svc c "vllm-gpt-oss-120b").environment.CUDA_VISIBLE_DEVICES == "0"
      && (svc c "vllm-gpt-oss-20b").environment.CUDA_VISIBLE_DEVICES == "1"
      && (sc c "vllm-gpt-oss-120b").Type == "exec"
      && (sc c "vllm-gpt-oss-120b").DeviceAllow == [
        "char-nvidiactl"
        "char-nvidia-caps"
        "char-nvidia-frontend"
        "char-nvidia-uvm"
      ]
    ))
    (holds "gpu-server: vLLM from pkgsCuda, gpt-oss arguments, readiness on /health" gpu (
      c:
      let
        s = sc c "vllm-gpt-oss-120b";
      in
      hasInfix (lib.concatStringsSep " " [
        "vllm-cuda/bin/vllm serve openai/gpt-oss-120b --host 127.0.0.1 --port 8001"
        "--served-model-name gpt-oss-120b --tensor-parallel-size 1"
        "--gpu-memory-utilization 0.92 --tool-call-parser openai"
      ]) s.ExecStart
      && hasInfix "--tool-call-parser openai --enable-auto-tool-choice" s.ExecStart
      && hasInfix "curl --fail" s.ExecStartPost
      && hasInfix "http://127.0.0.1:8001/health" s.ExecStartPost
    ))
    (holds "gpu-server: backends from the instances plus the cloud backend, none listed twice" gpu (
      c:
      backendNames c == [
        "vllm-gpt-oss-120b"
        "vllm-gpt-oss-20b"
        "openrouter"
      ]
    ))
    (holds "gpu-server: 120b falls back to OpenRouter; auto escalates 20b -> 120b" gpu (
      c:
      c.hwc.ai.router.settings.models."gpt-oss-120b".targets == [
        {
          backend = "vllm-gpt-oss-120b";
          model = "gpt-oss-120b";
        }
        {
          backend = "openrouter";
          model = "openai/gpt-oss-120b";
        }
      ]
      && c.hwc.ai.router.settings.auto == {
        default_model = "default";
        strong_model = "strong";
      }
      && c.hwc.ai.router.settings.aliases.strong == "gpt-oss-120b"
    ))
    (holds "gpu-server: cloud key by credential, LAN router not IP-confined, port opened" gpu (
      c:
      let
        s = sc c "hwc-model-router";
      in
      lib.elem "backend-openrouter:/run/secrets/hwc-ai/openrouter-key" s.LoadCredential
      && !(s ? IPAddressDeny)
      && c.hwc.ai.router.settings.server.listen == "0.0.0.0:8470"
      && lib.elem 8470 c.networking.firewall.allowedTCPPorts
    ))
    (holds "gpu-server: Open WebUI points at the router, Ollama API off, secrets by file" gpu (
      c:
      c.services.open-webui.environment.OPENAI_API_BASE_URL == "http://127.0.0.1:8470/v1"
      && c.services.open-webui.environment.ENABLE_OLLAMA_API == "False"
      && c.services.open-webui.environmentFile == "/run/secrets/hwc-ai/open-webui.env"
      && c.services.open-webui.port == 3000
    ))

    (holds "cpu: acceleration null picks the CPU packages" edgeCpu (
      c: c.services.ollama.package.name == "ollama"
    ))
    (holds "rocm: ollama-rocm with the gfx override passed through" rocm (
      c: c.services.ollama.package.name == "ollama-rocm" && c.services.ollama.rocmOverrideGfx == "10.3.0"
    ))
    (holds "rocm: llama.cpp built with rocmSupport, /dev/kfd allowed, render group, HSA override" rocm (
      c:
      let
        s = sc c "llama-cpp";
      in
      c.services.llama-cpp.package.passthru.rocmSupport
      && s.DeviceAllow == [
        "char-drm"
        "char-fb"
        "char-kfd"
      ]
      && s.DevicePolicy == "closed"
      && !s.PrivateDevices
      && s.SupplementaryGroups == [
        "render"
        "video"
      ]
      && (svc c "llama-cpp").environment.HSA_OVERRIDE_GFX_VERSION == "10.3.0"
    ))
    (holds "rocm: vLLM from pkgsRocm on HIP_VISIBLE_DEVICES, offline for a local path" rocm (
      c:
      hasInfix "vllm-rocm/bin/vllm" (sc c "vllm-small").ExecStart
      && (svc c "vllm-small").environment.HIP_VISIBLE_DEVICES == "0"
      && (svc c "vllm-small").environment.HF_HUB_OFFLINE == "1"
      && (svc c "vllm-small").environment.HSA_OVERRIDE_GFX_VERSION == "10.3.0"
      && lib.elem "char-kfd" (sc c "vllm-small").DeviceAllow
    ))
    (holds "llama.cpp: the declared model is served under its name, devices closed on CPU" llamaCpu (
      c:
      c.services.llama-cpp.model == "/var/lib/models/SmolLM2-135M-Instruct.Q4_1.gguf"
      && lib.take 3 c.services.llama-cpp.extraFlags == [
        "--alias"
        "smollm"
        "--metrics"
      ]
      && c.hwc.ai.router.settings.models.smollm.targets == [
        {
          backend = "llama-cpp";
          model = "smollm";
        }
      ]
      && (sc c "llama-cpp").PrivateDevices
    ))
    (holds "llama.cpp on the CPU keeps nixpkgs' W^X, user namespace and /proc subset" llamaCpu (
      c:
      let
        s = sc c "llama-cpp";
      in
      s.MemoryDenyWriteExecute && s.PrivateUsers && s.ProcSubset == "pid" && s.DeviceAllow == [ ]
    ))
    (clean "llama.cpp with CUDA on an NVIDIA host" llamaCuda)
    (holds "llama.cpp with CUDA: NVIDIA nodes, all of /proc, W^X and PrivateUsers kept" llamaCuda (
      c:
      let
        s = sc c "llama-cpp";
      in
      s.DeviceAllow == [
        "char-nvidiactl"
        "char-nvidia-caps"
        "char-nvidia-frontend"
        "char-nvidia-uvm"
      ]
      && s.DevicePolicy == "closed"
      && !s.PrivateDevices
      && s.ProcSubset == "all"
      && s.MemoryDenyWriteExecute
      && s.PrivateUsers
      && !(s ? SupplementaryGroups)
    ))
    (holds "rocm: llama.cpp sees all of /proc, keeps W^X and its user namespace" rocm (
      c:
      let
        s = sc c "llama-cpp";
      in
      s.ProcSubset == "all" && s.MemoryDenyWriteExecute && s.PrivateUsers
    ))

    # The flake's module wiring.
    (check "flake: one nixosModule per concern, default, two profiles" (
      builtins.attrNames flake.nixosModules == [
        "agent-runner"
        "core"
        "default"
        "health-prober"
        "llama-cpp"
        "mcp-bridge"
        "model-manager"
        "models"
        "monitoring"
        "ollama"
        "open-webui"
        "profile-cluster"
        "profile-edge"
        "router"
        "vllm"
      ]
    ) (toString (builtins.attrNames flake.nixosModules)))
    (check "flake: nixosModules.default points the package options at the flake's builds" (
      let
        c = viaFlake minimal;
      in
      (c.hwc.ai.router.package.pname or c.hwc.ai.router.package.name) == "hwc-model-router"
      && hasInfix "-hwc-model-router/bin/hwc-model-router --config" (sc c "hwc-model-router").ExecStart
    ) "hwc.ai.router.package is not the flake's hwc-model-router")

    # Overrides and switches.
    (holds "a host overrides a profile default with a plain definition" (
      edgeCpu ++ [ { hwc.ai.runtimes.ollama.port = 11500; } ]
    ) (
      c:
      let
        backend = lib.head c.hwc.ai.router.settings.backends;
      in
      c.services.ollama.port == 11500 && hasInfix ":11500/v1" (lib.head backend.urls)
    ))
    (holds "settings.models.<name>.targets replaces the generated targets" (
      edgeCpu
      ++ [
        {
          hwc.ai.router.settings.models."gpt-oss-20b".targets = [
            {
              backend = "ollama";
              model = "gpt-oss:20b-q8";
            }
          ];
        }
      ]
    ) (
      c:
      let
        targets = c.hwc.ai.router.settings.models."gpt-oss-20b".targets;
      in
      builtins.length targets == 1 && (lib.head targets).model == "gpt-oss:20b-q8"
    ))
    (holds "settings.backends adds to the generated backends" (
      minimal
      ++ [
        {
          hwc.ai.router.settings.backends = [
            {
              name = "lan-vllm";
              kind = "openai";
              urls = [ "http://10.0.0.5:8000/v1" ];
            }
          ];
        }
      ]
    ) (
      c:
      lib.sort lib.lessThan (backendNames c) == [
        "lan-vllm"
        "ollama"
      ]
      && !((sc c "hwc-model-router") ? IPAddressDeny)
    ))
    (holds "hwc.ai.enable = false turns everything off" (
      minimal ++ [ { hwc.ai.enable = lib.mkForce false; } ]
    ) (c: !(c.systemd.services ? hwc-model-router) && !c.services.ollama.enable))
    (throws "an option that does not exist is an error (hwc.ai.router.enabel)" [
      { hwc.ai.router.enabel = true; }
    ] [ "hwc" "ai" "router" ])

    # Misconfigurations: each fails with a message that says what to change.
    (holds "router: systemctl reload sends SIGHUP (keys re-read)" edge (
      c: lib.hasSuffix "-coreutils/bin/kill -HUP $MAINPID" (sc c "hwc-model-router").ExecReload
    ))
    (holds "a llama.cpp model with a url: the manager places it, llama.cpp reads it via the group and starts once it is there"
      llamaFromUrl
      (
        c:
        let
          fm = builtins.head c.hwc.ai.modelManager.settings.file_models;
          gguf = "/var/lib/hwc-ai/models/smollm/SmolLM2-135M-Instruct.Q4_1.gguf";
        in
        fm == {
          name = "smollm";
          dir = "/var/lib/hwc-ai/models/smollm";
          files = [
            {
              url = "http://mirror.lan/SmolLM2-135M-Instruct.Q4_1.gguf";
              sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
              name = "SmolLM2-135M-Instruct.Q4_1.gguf";
            }
          ];
        }
        && c.services.llama-cpp.model == gguf
        && (sc c "hwc-model-manager").User == "hwc-models"
        && (sc c "hwc-model-manager").StateDirectoryMode == "0750"
        && (sc c "hwc-model-manager").UMask == "0027"
        && (sc c "llama-cpp").SupplementaryGroups == [ "hwc-models" ]
        && (svc c "llama-cpp").wantedBy == [ ]
        && c.systemd.paths.llama-cpp-model.pathConfig.PathExists == gguf
        && c.users.groups ? hwc-models
      )
    )
    (holds "without url models the manager stays a DynamicUser" edge (
      c: (sc c "hwc-model-manager").DynamicUser && !(c.users.groups ? hwc-models)
    ))
    (rejects "a url model without its sha256" (
      llamaFromUrl ++ [ { hwc.ai.models.smollm.sha256 = lib.mkForce null; } ]
    ) "has no sha256")
    (rejects "a url model without the model manager" (
      llamaFromUrl ++ [ { hwc.ai.modelManager.enable = lib.mkForce false; } ]
    ) "which the model manager does")
    (rejects "a url for an Ollama model" (
      edge ++ [ { hwc.ai.models."gpt-oss-20b".url = "http://mirror.lan/x.gguf"; } ]
    ) "url is for llama.cpp file models")
    (holds "monitoring: edge scrapes router, prober, manager with host and component labels" edge (
      c:
      let
        jobs = lib.listToAttrs (map (j: lib.nameValuePair j.job_name j) c.services.prometheus.scrapeConfigs);
        sc = j: builtins.head jobs.${j}.static_configs;
      in
      c.services.prometheus.enable
      && builtins.attrNames jobs == [
        "hwc-health-prober"
        "hwc-model-manager"
        "hwc-router"
      ]
      && (sc "hwc-router").targets == [ "127.0.0.1:8470" ]
      && (sc "hwc-router").labels == {
        host = "edge-p1000";
        component = "router";
      }
      && (sc "hwc-health-prober").labels.component == "health-prober"
      && (sc "hwc-model-manager").targets == [ "127.0.0.1:8474" ]
      && jobs.hwc-router.metrics_path == "/metrics"
      && c.services.prometheus.listenAddress == "127.0.0.1"
      && map baseNameOf c.services.prometheus.ruleFiles == [ "alerts.rules.yml" ]
    ))
    (holds "monitoring: gpu-server scrapes each vLLM instance with its model, router on loopback" gpu (
      c:
      let
        jobs = lib.listToAttrs (map (j: lib.nameValuePair j.job_name j) c.services.prometheus.scrapeConfigs);
        labels = j: (builtins.head jobs.${j}.static_configs).labels;
      in
      labels "hwc-vllm-gpt-oss-120b" == {
        host = "gpu-server";
        component = "vllm";
        model = "gpt-oss-120b";
      }
      && (labels "hwc-vllm-gpt-oss-20b").model == "gpt-oss-20b"
      # the router binds 0.0.0.0: Prometheus on the host reaches it on loopback
      && (builtins.head jobs.hwc-router.static_configs).targets == [ "127.0.0.1:8470" ]
      # nixpkgs fills in the scrape_config options left unset, so the jobs
      # are compared by name there and whole in the exported file.
      && map (j: j.job_name) c.hwc.ai.monitoring.scrapeConfigs
        == map (j: j.job_name) c.services.prometheus.scrapeConfigs
      && builtins.fromJSON c.environment.etc."hwc-ai/prometheus/scrape-configs.json".text
        == c.hwc.ai.monitoring.scrapeConfigs
    ))
    (holds "monitoring: llama.cpp scraped with its model name" (
      llamaCpu ++ [ { hwc.ai.monitoring.enable = true; } ]
    ) (
      c:
      let
        j = lib.findFirst (j: j.job_name == "hwc-llama-cpp") null c.services.prometheus.scrapeConfigs;
      in
      j != null
      && (builtins.head j.static_configs).labels.model == "smollm"
      && (builtins.head j.static_configs).targets == [ "127.0.0.1:8080" ]
    ))
    (holds "monitoring: Grafana provisioned with the datasource by uid and the dashboards, secrets by file"
      edge
      (
        c:
        let
          g = c.services.grafana;
          ds = builtins.head g.provision.datasources.settings.datasources;
          p = builtins.head g.provision.dashboards.settings.providers;
        in
        g.enable
        && g.provision.enable
        && ds.uid == "hwc-prometheus"
        && ds.type == "prometheus"
        && ds.url == "http://127.0.0.1:9090"
        && builtins.pathExists (p.options.path + "/router.json")
        && builtins.pathExists (p.options.path + "/fleet.json")
        && builtins.pathExists (p.options.path + "/runtimes.json")
        && builtins.pathExists (p.options.path + "/agents.json")
        && g.settings.server.http_port == 3001
        && g.settings.security.secret_key == "$__file{/var/lib/grafana/hwc-ai-secrets/secret-key}"
        && hasInfix "admin-password secret-key" c.systemd.services.hwc-grafana-secrets.script
        && c.systemd.services.hwc-grafana-secrets.before == [ "grafana.service" ]
      )
    )
    (holds "monitoring: a central Prometheus lifts the router's loopback confinement" (
      edge
      ++ [
        {
          hwc.ai.monitoring = {
            prometheus.enable = false;
            targetHost = "edge.lan";
            grafana.enable = false;
          };
          hwc.ai.router.host = "0.0.0.0";
        }
      ]
    ) (
      c:
      !c.services.prometheus.enable
      && !c.hwc.ai.router.restrictToLoopback
      && (builtins.head (builtins.head c.hwc.ai.monitoring.scrapeConfigs).static_configs).targets == [
        "edge.lan:8470"
      ]
    ))
    (holds "monitoring: a remote Prometheus and loopback daemons give a warning naming them" (
      edge ++ [ { hwc.ai.monitoring.prometheus.enable = false; hwc.ai.monitoring.grafana.enable = false; } ]
    ) (c: lib.any (w: hasInfix "hwc.ai.router.host = \"127.0.0.1\"" w) c.warnings))
    (rejects "monitoring with nothing to scrape" (
      [
        {
          hwc.ai = {
            enable = true;
            runtimes.ollama.enable = true;
            monitoring.enable = true;
          };
        }
      ]
    ) "nothing on this host has metrics to scrape")
    (rejects "Grafana with no Prometheus" (
      edge ++ [ { hwc.ai.monitoring.prometheus.enable = false; } ]
    ) "has no Prometheus to query")
    (rejects "Grafana on Open WebUI's port" (
      gpu ++ [ { hwc.ai.monitoring.grafana.port = 3000; } ]
    ) "hwc.ai.monitoring.grafana.port")
    (rejects "two services on one port" (minimal ++ [ { hwc.ai.runtimes.ollama.port = 8470; } ])
      "port 8470: hwc.ai.runtimes.ollama.port, hwc.ai.router.port"
    )
    (rejects "Open WebUI and llama.cpp both on 8080" (
      llamaCpu
      ++ [
        {
          hwc.ai.openWebui = {
            enable = true;
            port = 8080;
          };
        }
      ]
    ) "port 8080: hwc.ai.runtimes.llamaCpp.port, hwc.ai.openWebui.port")
    (rejects "a local-only router with no local backend" [
      {
        hwc.ai = {
          enable = true;
          router = {
            enable = true;
            allowAnonymous = true;
            localOnly = true;
          };
        };
      }
    ] "hwc.ai.router.localOnly is set, but the router has no local backend")
    (rejects "a local-only router with a cloud backend" (
      minimal
      ++ [
        {
          hwc.ai.router = {
            localOnly = true;
            cloudBackends.openrouter.urls = [ "https://openrouter.ai/api/v1" ];
          };
        }
      ]
    ) "cloud backends are configured:\nopenrouter")
    (rejects "a declared model for a runtime that is not enabled" (
      minimal
      ++ [
        {
          hwc.ai.models.qwen = {
            runtime = "llamaCpp";
            source = "/m/qwen.gguf";
          };
        }
      ]
    ) ''hwc.ai.models."qwen" is served by llama.cpp, which is not enabled'')
    (rejects "a vLLM model without its instance" (
      minimal
      ++ [
        {
          hwc.ai.models."gpt-oss-120b" = {
            runtime = "vllm";
            source = "openai/gpt-oss-120b";
          };
        }
      ]
    ) ''Define hwc.ai.runtimes.vllm.instances."gpt-oss-120b"'')
    (rejects "CUDA without the NVIDIA driver" (
      minimal
      ++ [
        {
          hwc.ai.acceleration = "cuda";
          hardware.graphics.enable = true;
        }
      ]
    ) "needs the NVIDIA kernel driver")
    (rejects "CUDA without hardware.graphics" (
      minimal
      ++ [
        {
          hwc.ai.acceleration = "cuda";
          services.xserver.videoDrivers = [ "nvidia" ];
        }
      ]
    ) "needs\nhardware.graphics.enable = true")
    (rejects "ROCm without hardware.graphics" (minimal ++ [ { hwc.ai.acceleration = "rocm"; } ])
      "needs\nhardware.graphics.enable = true"
    )
    (rejects "a runtime's backend listed again by hand" (
      minimal
      ++ [
        {
          hwc.ai.router.settings.backends = [
            {
              name = "ollama";
              kind = "openai";
              urls = [ "http://127.0.0.1:11434/v1" ];
            }
          ];
        }
      ]
    ) "backend ollama is defined twice")
    (rejects "a router without keys or anonymous access" (
      minimal ++ [ { hwc.ai.router.allowAnonymous = lib.mkForce false; } ]
    ) "hwc.ai.router needs API keys")
    (rejects "a keys file in the Nix store" (
      minimal ++ [ { hwc.ai.router.keysFile = "/nix/store/0000-keys.toml"; } ]
    ) "points into the Nix store")
    (rejects "a router with no backend at all" [
      {
        hwc.ai = {
          enable = true;
          router = {
            enable = true;
            allowAnonymous = true;
          };
        };
      }
    ] "hwc.ai.router has no backend")
    (rejects "Open WebUI refused as unfree: the message names the one line to add" openWebuiHost
      ''
        hwc.ai.openWebui: nixpkgs refuses open-webui, whose license (Open WebUI License) is unfree.
        Allow this one package in the host's configuration:
          nixpkgs.config.allowUnfreePackages = [ "open-webui" ];''
    )
    (holds "Open WebUI allowed by allowUnfreePackages: no failed assertion, its unit renders"
      (openWebuiHost ++ [ { nixpkgs.config.allowUnfreePackages = [ "open-webui" ]; } ])
      (
        c:
        lib.all (a: a.assertion) c.assertions
        && hasInfix "open-webui serve --host 127.0.0.1 --port 3000" (sc c "open-webui").ExecStart
      )
    )
    (clean "Open WebUI with an allowUnfreePredicate naming it" (
      openWebuiHost
      ++ [ { nixpkgs.config.allowUnfreePredicate = pkg: lib.getName pkg == "open-webui"; } ]
    ))
    (clean "Open WebUI with a pkgs built elsewhere that allows it (nixpkgs.pkgs)" (
      openWebuiHost
      ++ [ { nixpkgs.pkgs = (eval [ { nixpkgs.config.allowUnfree = true; } ])._module.args.pkgs; } ]
    ))
    (rejects "Open WebUI without the router" [
      {
        hwc.ai = {
          enable = true;
          openWebui.enable = true;
        };
      }
    ] "Set hwc.ai.router.enable = true")
    (rejects "llama.cpp without a model" (minimal ++ [ { hwc.ai.runtimes.llamaCpp.enable = true; } ])
      "hwc.ai.runtimes.llamaCpp is enabled without a model"
    )
  ]
  ++ import ./mcp-tests.nix {
    inherit
      lib
      clean
      holds
      rejects
      throws
      minimal
      ;
  }
  ++ import ./cli-tests.nix {
    inherit
      lib
      holds
      rejects
      minimal
      ;
  }
  ++ import ./agent-tests.nix {
    inherit
      lib
      clean
      holds
      rejects
      throws
      minimal
      ;
  }
  ++ import ./daemon-tests.nix {
    inherit
      lib
      check
      holds
      rejects
      throws
      minimal
      ;
  };

  # -- renders for tests/nix -------------------------------------------------

  servicesOf =
    c: names:
    lib.listToAttrs (
      map (n: lib.nameValuePair "${n}.service" (renderService c.systemd.services.${n})) (
        builtins.filter (n: c.systemd.services ? ${n}) names
      )
    );
  rendersOf =
    prefix: modules:
    let
      c = (eval modules).config;
      daemons = import ../daemons.nix;
      enabled = builtins.filter (d: c.hwc.ai.${d.attr}.enable) daemons;
      ours =
        map (d: lib.removeSuffix ".service" d.unit) daemons
        ++ map (n: "vllm-${n}") (builtins.attrNames c.hwc.ai.runtimes.vllm.instances)
        ++ [ "llama-cpp" ];
    in
    lib.mapAttrs' (n: v: lib.nameValuePair "${prefix}/${n}" v) (
      servicesOf c ours
      // lib.listToAttrs (map (d: lib.nameValuePair "${d.crate}.json" c.hwc.ai.${d.attr}.settings) enabled)
      # The agent runner's policy file, when the module writes it (its
      # `[policy] file` is a store path that does not exist here).
      // lib.optionalAttrs (c.hwc.ai.agent.enable && c.hwc.ai.agent.generatedPolicy != null) {
        "hwc-agent-runner.policy.json" = c.hwc.ai.agent.generatedPolicy;
      }
    );
in
{
  inherit results;
  renders =
    rendersOf "edge-p1000" edge
    // rendersOf "gpu-server" gpu
    // rendersOf "rocm" rocm
    // rendersOf "llama-cpu" llamaCpu
    // rendersOf "llama-from-url" llamaFromUrl
    // rendersOf "fleet" fleet
    // rendersOf "mcp" (
      minimal
      ++ [
        (
          { pkgs, ... }:
          {
            nixpkgs.config.allowUnfreePackages = [ "open-webui" ];
            hwc.ai.openWebui.enable = true;
            hwc.ai.mcp = {
              enable = true;
              servers.time.package = pkgs.mcp-server-time;
              servers.files = {
                package = pkgs.mcp-server-filesystem;
                args = [ "/srv/share" ];
                readablePaths = [ "/srv/share" ];
                jit = true;
              };
            };
          }
        )
      ]
    )
    // rendersOf "agent" (
      minimal
      ++ [
        {
          hwc.ai.healthProber.enable = true;
          hwc.ai.agent = {
            enable = true;
            tokens.alice = {
              file = "/run/secrets/hwc-ai/alice";
              role = "requester";
            };
            tokens.bob = {
              file = "/run/secrets/hwc-ai/bob";
              role = "approver";
            };
            routerKeyFile = "/run/secrets/hwc-ai/agent-router-key";
            auditKeyFile = "/run/secrets/hwc-ai/agent-audit-key";
            environments = {
              dev = { };
              prod = {
                production = true;
                denied = [ "dd" ];
                maxRisk = "R2";
              };
            };
            rules = [
              {
                name = "fleet-restart";
                pattern = [
                  "systemctl"
                  [
                    "restart"
                    "start"
                  ]
                  "ollama.service"
                ];
                decision = "prompt";
                risk = "R2";
                justification = "restarting a fleet unit interrupts requests in flight";
                environments = [ "prod" ];
                match = [ "systemctl restart ollama.service" ];
                not_match = [ "systemctl restart sshd.service" ];
              }
            ];
            unitControl = [ "ollama.service" ];
            repositories = [ "/srv/git/infra" ];
          };
        }
      ]
    )
    // rendersOf "llama-cuda" llamaCuda;
}
