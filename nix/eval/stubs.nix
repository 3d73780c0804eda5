# Stand-ins for the parts of NixOS and nixpkgs the hwc.ai modules touch, so
# that the modules can be evaluated with nixpkgs' `lib` alone
# (lib.evalModules), on a machine where full nixpkgs is not available.
#
# What is faithful: the option names, types and defaults we set or read,
# copied from these nixpkgs files (as read with the search tool, 2026-11):
#   nixos/modules/services/misc/ollama.nix       services.ollama.*
#   nixos/modules/services/misc/llama-cpp.nix    services.llama-cpp.*
#   nixos/modules/services/misc/open-webui.nix   services.open-webui.*
#   nixos/modules/misc/nixpkgs.nix               nixpkgs.config (its merge), nixpkgs.pkgs
#   pkgs/by-name/op/open-webui/package.nix,      pkgs.open-webui's meta.license (unfree)
#     pkgs/stdenv/generic/check-meta.nix         and its refusal unless unfree is allowed
#   nixos/modules/hardware/video/nvidia.nix      hardware.nvidia.*, services.xserver.videoDrivers
#   nixos/modules/misc/assertions.nix            assertions, warnings
#   nixos/lib/systemd-unit-options.nix           systemd.services.<name> (unitOption merge)
#   nixos/modules/security/polkit.nix            security.polkit.*
#   nixos/modules/security/misc.nix              security.allowUserNamespaces
#   nixos/modules/system/boot/systemd.nix        systemd.package
#   pkgs/pkgs-lib/formats.nix                    pkgs.formats.toml (type; generate is faked)
#   nixos/modules/services/monitoring/prometheus/default.nix, grafana.nix
#                                                services.prometheus.*, services.grafana.*
# and the unit each nixpkgs service defines, reduced to the keys our modules
# override (so that the merge with ours is exercised).
#
# What is not: packages are fake derivations (a name and a store path, never
# built); the few NixOS namespaces the example machines set that our modules
# never read (boot, fileSystems, hardware.cpu...) are declared as
# free-form values (`loose` below), unchecked. Everything else is strict: a
# name that no module declares (a typo in hwc.ai.*, services.ollama.*...) is
# an evaluation error, as on NixOS. The real thing is `nix flake check`
# (flake.nix), which evaluates every machine against full nixpkgs.
{ lib, config, ... }:
let
  inherit (lib) mkOption types;

  # promTypes.scrape_config of nixpkgs' prometheus module, as strict as
  # there: a submodule (an unknown key is an error), job_name required,
  # static_configs a list of { targets; labels; }. Its keys that nixpkgs
  # types as submodules we never set (tls_config, basic_auth, the *_sd_configs)
  # are plain attribute sets here; the ones not listed are errors, as a key
  # nixpkgs does not know is there.
  optional =
    type:
    mkOption {
      type = types.nullOr type;
      default = null;
    };
  staticConfig = types.submodule {
    options = {
      targets = mkOption { type = types.listOf types.str; };
      labels = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
    };
  };
  scrapeConfig = types.submodule {
    options = {
      job_name = mkOption { type = types.str; };
      scrape_interval = optional types.str;
      scrape_timeout = optional types.str;
      metrics_path = optional types.str;
      scheme = optional (
        types.enum [
          "http"
          "https"
        ]
      );
      honor_labels = optional types.bool;
      params = optional (types.attrsOf (types.listOf types.str));
      static_configs = optional (types.listOf staticConfig);
      file_sd_configs = optional (types.listOf types.attrs);
      relabel_configs = optional (types.listOf types.attrs);
      metric_relabel_configs = optional (types.listOf types.attrs);
      authorization = optional types.attrs;
      basic_auth = optional types.attrs;
      bearer_token_file = optional types.str;
      tls_config = optional types.attrs;
    };
  };

  fakeDrv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
      drvPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha1" name)}-${name}.drv";
      meta.mainProgram = lib.head (lib.splitString "-" name);
      outputs = [ "out" ];
    }
    // extra;
  pkgWithMain =
    name: main:
    fakeDrv name {
      meta.mainProgram = main;
      override = args: pkgWithMain "${name}-overridden" main;
    };

  llamaCpp =
    flags:
    let
      variant =
        if flags.cudaSupport or false then
          "-cuda"
        else if flags.rocmSupport or false then
          "-rocm"
        else
          "";
    in
    fakeDrv "llama-cpp${variant}" {
      meta.mainProgram = "llama";
      passthru = flags;
      override = f: llamaCpp (flags // f);
    };

  vllmOf = variant: { python3Packages.vllm = pkgWithMain "vllm${variant}" "vllm"; };

  # pkgs/by-name/op/open-webui/package.nix: meta.license as there (unfree).
  # meta.unfree, meta.available and the refusal to give it a store path as
  # pkgs/stdenv/generic/check-meta.nix derives them from the nixpkgs config
  # `nc` of the package set (allowUnfree, allowUnfreePackages,
  # allowUnfreePredicate).
  openWebuiFor =
    nc:
    let
      drv =
        pkgWithMain "open-webui" "open-webui"
        // {
          pname = "open-webui";
          version = "0.6.40";
        };
      allowed =
        nc.allowUnfree or false
        || builtins.elem (lib.getName drv) (nc.allowUnfreePackages or [ ])
        || lib.isFunction (nc.allowUnfreePredicate or null) && nc.allowUnfreePredicate drv;
      refusal = "Refusing to evaluate package 'open-webui-0.6.40' in pkgs/by-name/op/open-webui/package.nix because it has an unfree license (‘Open WebUI License’)";
    in
    drv
    // {
      meta = drv.meta // {
        license = {
          fullName = "Open WebUI License";
          url = "https://github.com/open-webui/open-webui/blob/0cef844168e97b70de2abee4c076cc30ffec6193/LICENSE";
          free = false;
        };
        unfree = true;
        available = allowed;
      };
    }
    // lib.optionalAttrs (!allowed) {
      outPath = throw refusal;
      drvPath = throw refusal;
    };

  tomlFormat = {
    type =
      let
        valueType =
          types.oneOf [
            types.bool
            types.int
            types.float
            types.str
            types.path
            (types.attrsOf valueType)
            (types.listOf valueType)
          ]
          // {
            description = "TOML value";
          };
      in
      valueType;
    # The real one runs remarshal's json2toml over builtins.toJSON value;
    # here the value rides along for the tests to read.
    generate = name: value: fakeDrv name { passthru.value = value; };
  };

  pkgs =
    {
      ollama = pkgWithMain "ollama" "ollama";
      ollama-cuda = pkgWithMain "ollama-cuda" "ollama";
      ollama-rocm = pkgWithMain "ollama-rocm" "ollama";
      llama-cpp = llamaCpp { };
      open-webui = openWebuiFor { };
      curl = pkgWithMain "curl" "curl";
      coreutils = pkgWithMain "coreutils" "coreutils";
      gnused = pkgWithMain "gnused" "sed";
      # What the agent runner's tools run (modules/agent-runner.nix).
      bubblewrap = pkgWithMain "bubblewrap" "bwrap";
      git = pkgWithMain "git" "git";
      iproute2 = pkgWithMain "iproute2" "ip";
      openssh = pkgWithMain "openssh" "ssh";
      kubectl = pkgWithMain "kubectl" "kubectl";
      procps = pkgWithMain "procps" "ps";
      util-linux = pkgWithMain "util-linux" "lsblk";
      systemd = pkgWithMain "systemd" "systemctl";
      writeText = name: text: fakeDrv name { passthru.text = text; };
      # pkgs/by-name/mc/mcp-server-*: packaged MCP servers (mainProgram as there).
      mcp-server-time = pkgWithMain "mcp-server-time" "mcp-server-time";
      mcp-server-git = pkgWithMain "mcp-server-git" "mcp-server-git";
      mcp-server-filesystem = pkgWithMain "mcp-server-filesystem" "mcp-server-filesystem";
      pkgsCuda = vllmOf "-cuda";
      pkgsRocm = vllmOf "-rocm";
      cudaPackages = fakeDrv "cudaPackages" { };
      cudaPackages_12 = fakeDrv "cudaPackages_12" { };
      formats.toml = _: tomlFormat;
      stdenv.hostPlatform.system = "x86_64-linux";
    }
    // vllmOf "";
  # The package set for a nixpkgs config (pkgs.config is that config, as in nixpkgs).
  pkgsFor =
    nc:
    pkgs
    // {
      config = nc;
      open-webui = openWebuiFor nc;
    };

  # nixos/modules/misc/nixpkgs.nix: configType (attribute sets, or functions
  # of { lib, pkgs }) and mergeConfig (lists concatenate, any other value:
  # one definition wins; packageOverrides not modelled).
  nixpkgsConfig =
    let
      optCall = f: x: if lib.isFunction f then f x else f;
      pick =
        _: values:
        if builtins.isList (lib.head values) then lib.concatLists values else lib.head values;
      mergeConfig =
        lhs: rhs:
        lib.zipAttrsWith pick [
          (optCall lhs { inherit lib pkgs; })
          (optCall rhs { inherit lib pkgs; })
        ];
    in
    lib.mkOptionType {
      name = "nixpkgs-config";
      description = "nixpkgs config";
      check = x: builtins.isAttrs x || lib.isFunction x;
      merge = _: lib.foldr (def: mergeConfig def.value) { };
    };

  # nixos/lib/systemd-unit-options.nix: lists concatenate, scalars must agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: lib.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };

  serviceType = types.submodule {
    freeformType = types.lazyAttrsOf types.anything;
    options = {
      description = mkOption {
        type = types.str;
        default = "";
      };
      wantedBy = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      wants = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      after = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      requires = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      bindsTo = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
    };
  };
  loose = mkOption {
    type = types.lazyAttrsOf types.anything;
    default = { };
  };
in
{
  options = {
    # Set by the example machines, read by none of our modules.
    boot = loose;
    fileSystems = loose;
    swapDevices = mkOption {
      type = types.listOf types.anything;
      default = [ ];
    };
    hardware.cpu = loose;

    # nixos/modules/misc/nixpkgs.nix: `config` makes the pkgs of the modules
    # (below), unless `pkgs` passes in a package set built elsewhere, which
    # ignores `config` (null here for unset); the rest (hostPlatform...)
    # free-form.
    nixpkgs = mkOption {
      type = types.submodule {
        freeformType = types.lazyAttrsOf types.anything;
        options.config = mkOption {
          type = nixpkgsConfig;
          default = { };
        };
        options.pkgs = mkOption {
          type = types.nullOr types.raw;
          default = null;
        };
      };
      default = { };
    };
    networking.hostName = mkOption {
      type = types.str;
      default = "nixos";
    };
    system.stateVersion = mkOption {
      type = types.str;
      default = "26.05";
    };

    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    systemd.services = mkOption {
      type = types.attrsOf serviceType;
      default = { };
    };

    # nixos/modules/system/boot/systemd.nix: path units (free-form here).
    systemd.paths = mkOption {
      type = types.attrsOf (types.submodule { freeformType = types.lazyAttrsOf types.anything; });
      default = { };
    };

    users.users = mkOption {
      type = types.attrsOf (types.submodule { freeformType = types.lazyAttrsOf types.anything; });
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (types.submodule { freeformType = types.lazyAttrsOf types.anything; });
      default = { };
    };

    security.polkit.enable = mkOption {
      type = types.bool;
      default = false;
    };
    security.polkit.extraConfig = mkOption {
      type = types.lines;
      default = "";
    };
    security.allowUserNamespaces = mkOption {
      type = types.bool;
      default = true;
    };

    systemd.package = mkOption {
      type = types.package;
      default = pkgs.systemd;
    };

    networking.firewall.allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
    };

    services.xserver.videoDrivers = mkOption {
      type = types.listOf types.str;
      default = [
        "modesetting"
        "fbdev"
      ];
    };
    hardware.graphics.enable = mkOption {
      type = types.bool;
      default = false;
    };
    hardware.nvidia = {
      open = mkOption {
        type = types.nullOr types.bool;
        default = null;
      };
      package = mkOption {
        type = types.unspecified;
        default = null;
      };
      datacenter.enable = mkOption {
        type = types.bool;
        default = false;
      };
      modesetting.enable = mkOption {
        type = types.bool;
        default = false;
      };
      nvidiaPersistenced = mkOption {
        type = types.bool;
        default = false;
      };
      nvidiaSettings = mkOption {
        type = types.bool;
        default = true;
      };
    };

    # nixos/modules/services/misc/ollama.nix
    services.ollama = {
      enable = lib.mkEnableOption "ollama";
      package = mkOption {
        type = types.package;
        default = pkgs.ollama;
      };
      user = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      group = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      home = mkOption {
        type = types.str;
        default = "/var/lib/ollama";
      };
      models = mkOption {
        type = types.str;
        default = "/var/lib/ollama/models";
      };
      host = mkOption {
        type = types.str;
        default = "127.0.0.1";
      };
      port = mkOption {
        type = types.port;
        default = 11434;
      };
      rocmOverrideGfx = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      environmentVariables = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
      loadModels = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      syncModels = mkOption {
        type = types.bool;
        default = false;
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
      };
    };

    # nixos/modules/services/misc/llama-cpp.nix
    services.llama-cpp = {
      enable = lib.mkEnableOption "llama-cpp";
      package = mkOption {
        type = types.package;
        default = pkgs.llama-cpp;
      };
      model = mkOption { type = types.path; };
      extraFlags = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      host = mkOption {
        type = types.str;
        default = "127.0.0.1";
      };
      port = mkOption {
        type = types.port;
        default = 8080;
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
      };
    };

    # nixos/modules/services/monitoring/prometheus/default.nix (the options
    # hwc.ai.monitoring sets or reads)
    services.prometheus = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      port = mkOption {
        type = types.port;
        default = 9090;
      };
      listenAddress = mkOption {
        type = types.str;
        default = "0.0.0.0";
      };
      scrapeConfigs = mkOption {
        type = types.listOf scrapeConfig;
        default = [ ];
      };
      ruleFiles = mkOption {
        type = types.listOf types.path;
        default = [ ];
      };
    };

    # nixos/modules/services/monitoring/grafana.nix (settings is a freeform
    # INI tree there too; provision.*.settings are typed submodules)
    services.grafana = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      dataDir = mkOption {
        type = types.str;
        default = "/var/lib/grafana";
      };
      settings = mkOption {
        type = types.submodule { freeformType = types.attrsOf (types.attrsOf types.anything); };
        default = { };
      };
      provision = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        datasources.settings = mkOption {
          type = types.nullOr (types.attrsOf types.anything);
          default = null;
        };
        dashboards.settings = mkOption {
          type = types.nullOr (types.attrsOf types.anything);
          default = null;
        };
      };
    };

    # nixos/modules/config/system-path.nix
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };

    # nixos/modules/system/etc/etc.nix
    environment.etc = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.text = mkOption {
            type = types.nullOr types.lines;
            default = null;
          };
          options.source = mkOption {
            type = types.nullOr types.path;
            default = null;
          };
        }
      );
      default = { };
    };

    # nixos/modules/services/misc/open-webui.nix
    services.open-webui = {
      enable = lib.mkEnableOption "open-webui";
      package = mkOption {
        type = types.package;
        default = pkgs.open-webui;
      };
      stateDir = mkOption {
        type = types.path;
        default = "/var/lib/open-webui";
      };
      host = mkOption {
        type = types.str;
        default = "127.0.0.1";
      };
      port = mkOption {
        type = types.port;
        default = 8080;
      };
      environment = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
      environmentFile = mkOption {
        type = types.nullOr types.path;
        default = null;
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
      };
    };
  };

  config._module.args.pkgs = lib.mkDefault (
    if config.nixpkgs.pkgs != null then config.nixpkgs.pkgs else pkgsFor config.nixpkgs.config
  );

  # The units the nixpkgs modules define, reduced to what ours override.
  imports = [
    (
      { config, ... }:
      {
        config = lib.mkMerge [
          (lib.mkIf config.services.ollama.enable {
            systemd.services.ollama = {
              wantedBy = [ "multi-user.target" ];
              environment = config.services.ollama.environmentVariables // {
                OLLAMA_HOST = "${config.services.ollama.host}:${toString config.services.ollama.port}";
              };
              serviceConfig = {
                Type = "exec";
                DynamicUser = true;
                ExecStart = "${lib.getExe config.services.ollama.package} serve";
                PrivateDevices = false;
                DevicePolicy = "closed";
              };
            };
          })
          # In full (nixpkgs' serviceConfig as there), so that the unit our
          # module makes of it can be scored.
          (lib.mkIf config.services.llama-cpp.enable {
            systemd.services.llama-cpp = {
              description = "LLaMA C++ server";
              wantedBy = [ "multi-user.target" ];
              serviceConfig = {
                Type = "idle";
                KillSignal = "SIGINT";
                ExecStart =
                  let
                    c = config.services.llama-cpp;
                  in
                  "${c.package}/bin/llama-server --host ${c.host} --port ${toString c.port} -m ${c.model} ${lib.escapeShellArgs c.extraFlags}";
                Restart = "on-failure";
                RestartSec = 300;
                PrivateDevices = false;
                DynamicUser = true;
                CapabilityBoundingSet = "";
                RestrictAddressFamilies = [
                  "AF_INET"
                  "AF_INET6"
                  "AF_UNIX"
                ];
                NoNewPrivileges = true;
                PrivateMounts = true;
                PrivateTmp = true;
                PrivateUsers = true;
                ProtectClock = true;
                ProtectControlGroups = true;
                ProtectHome = true;
                ProtectKernelLogs = true;
                ProtectKernelModules = true;
                ProtectKernelTunables = true;
                ProtectSystem = "strict";
                MemoryDenyWriteExecute = true;
                LockPersonality = true;
                RemoveIPC = true;
                RestrictNamespaces = true;
                RestrictRealtime = true;
                RestrictSUIDSGID = true;
                SystemCallArchitectures = "native";
                SystemCallFilter = [
                  "@system-service"
                  "~@privileged"
                ];
                SystemCallErrorNumber = "EPERM";
                ProtectProc = "invisible";
                ProtectHostname = true;
                ProcSubset = "pid";
              };
            };
          })
          (lib.mkIf config.services.open-webui.enable {
            systemd.services.open-webui = {
              wantedBy = [ "multi-user.target" ];
              environment = config.services.open-webui.environment;
              serviceConfig = {
                ExecStart =
                  let
                    c = config.services.open-webui;
                  in
                  "${lib.getExe c.package} serve --host ${c.host} --port ${toString c.port}";
                DynamicUser = true;
              }
              // lib.optionalAttrs (config.services.open-webui.environmentFile != null) {
                EnvironmentFile = config.services.open-webui.environmentFile;
              };
            };
          })
        ];
      }
    )
  ];
}
