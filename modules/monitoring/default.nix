# hwc.ai.monitoring: every enabled hwc-ai daemon and runtime scraped by
# Prometheus with the labels the dashboards and alerts read (host,
# component, model), the alert rules of ./alerts.rules.yml, and the Grafana
# dashboards of ../../dashboards provisioned with their datasource.
#
# Prometheus and Grafana are nixpkgs' own services (services.prometheus,
# services.grafana); this module fills them in. A fleet with one central
# Prometheus sets `prometheus.enable = false` on the other hosts and reads
# their `hwc.ai.monitoring.scrapeConfigs` (or /etc/hwc-ai/prometheus/
# scrape-configs.json) on the central one. docs/monitoring.md is the guide.
{ config, lib, ... }:
let
  inherit (lib) mkOption types literalMD;
  top = config.hwc.ai;
  cfg = top.monitoring;
  rt = top.runtimes;
  hlib = import ../lib.nix { inherit lib; };

  # host:port Prometheus scrapes for a server bound to `host`.
  targetOf =
    host: port:
    "${if cfg.targetHost != null then cfg.targetHost else hlib.urlHost host}:${toString port}";

  # Everything with metrics on this host: the enabled daemons (every one in
  # ../../nix/daemons.nix serves /metrics) and runtimes, each with the
  # option that sets its bind address (for the warning below).
  # Ollama has no /metrics: the prober's probe of it stands for it.
  scraped =
    map (d: {
      name = "hwc-${d.component}";
      inherit (d) component;
      inherit (top.${d.attr}) host port;
      option = "hwc.ai.${d.attr}.host";
    }) (lib.filter (d: top.${d.attr}.enable) hlib.daemons)
    # llama-server runs with --metrics (modules/runtimes/llama-cpp.nix).
    ++ lib.optional rt.llamaCpp.enable {
      name = "hwc-llama-cpp";
      component = "llama-cpp";
      inherit (rt.llamaCpp) host port;
      model = rt.llamaCpp.modelName;
      option = "hwc.ai.runtimes.llamaCpp.host";
    }
    ++ lib.mapAttrsToList (name: inst: {
      name = "hwc-vllm-${name}";
      component = "vllm";
      inherit (inst) host port;
      model = inst.servedModelName;
      option = "hwc.ai.runtimes.vllm.instances.${name}.host";
    }) (lib.filterAttrs (_: i: i.enable) rt.vllm.instances);

  jobs = map (t: {
    job_name = t.name;
    scrape_interval = cfg.scrapeInterval;
    metrics_path = "/metrics";
    static_configs = [
      {
        targets = [ (targetOf t.host t.port) ];
        labels = {
          host = cfg.hostLabel;
          inherit (t) component;
        }
        // lib.optionalAttrs (t ? model) { inherit (t) model; };
      }
    ];
  }) scraped;


  promUrl =
    if cfg.prometheus.url != null then
      cfg.prometheus.url
    else
      hlib.baseUrl config.services.prometheus.listenAddress config.services.prometheus.port;

  secretsDir = "${config.services.grafana.dataDir}/hwc-ai-secrets";
  adminPasswordPath =
    if cfg.grafana.adminPasswordFile != null then
      cfg.grafana.adminPasswordFile
    else
      "${secretsDir}/admin-password";
  secretKeyPath =
    if cfg.grafana.secretKeyFile != null then cfg.grafana.secretKeyFile else "${secretsDir}/secret-key";
  generated =
    lib.optional (cfg.grafana.adminPasswordFile == null) "admin-password"
    ++ lib.optional (cfg.grafana.secretKeyFile == null) "secret-key";

  loopbackTargets = lib.filter (t: hlib.isLoopback t.host) scraped;
in
{
  options.hwc.ai.monitoring = {
    enable = lib.mkEnableOption ''
      Prometheus scrapes of every enabled hwc-ai daemon and runtime, the
      hwc-ai alert rules, and (with `grafana.enable`) the dashboards'';

    scrapeInterval = mkOption {
      type = types.str;
      default = "15s";
      description = "How often each hwc-ai target is scraped (`scrape_interval` of every job).";
    };

    hostLabel = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = literalMD "`networking.hostName`";
      description = "The `host` label on every target: the dashboards' host picker.";
    };

    targetHost = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "gpu-server.lan";
      description = ''
        The address Prometheus uses to reach this host's daemons. `null`:
        each daemon's own bind address (loopback for a wildcard bind), right
        when Prometheus runs here. Set it when a central Prometheus scrapes
        this host.
      '';
    };

    scrapeConfigs = mkOption {
      type = types.listOf (types.attrsOf types.anything);
      readOnly = true;
      default = jobs;
      defaultText = literalMD "one job per enabled daemon and runtime";
      description = ''
        The scrape jobs of this host, in `services.prometheus.scrapeConfigs`
        form, for a central Prometheus to import (for example from another
        host's configuration in the same flake). Also written to
        `/etc/hwc-ai/prometheus/scrape-configs.json`.
      '';
    };

    prometheus = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Run Prometheus on this host (`services.prometheus`), scraping the
          jobs above and loading the hwc-ai alert rules. On by default so a
          single host works with no other step; turn it off when a central
          Prometheus scrapes this host (set `targetHost`, and `url` if
          Grafana runs here).
        '';
      };

      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "http://prometheus.lan:9090";
        description = ''
          The Prometheus Grafana queries. `null`: the one on this host
          (`services.prometheus.listenAddress` and `port`).
        '';
      };
    };

    grafana = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Run Grafana on this host (`services.grafana`) with the Prometheus
          datasource (uid `hwc-prometheus`) and the hwc-ai dashboards (fleet,
          router, runtimes, agents) provisioned, read-only, in the folder
          "hwc-ai".
        '';
      };

      host = mkOption {
        type = types.str;
        default = "127.0.0.1";
        description = "Address Grafana listens on (`services.grafana.settings.server.http_addr`).";
      };

      port = mkOption {
        type = types.port;
        # Not Grafana's usual 3000: hwc.ai.openWebui.port has it.
        default = 3001;
        description = "Port Grafana listens on (`services.grafana.settings.server.http_port`).";
      };

      adminPasswordFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/keys/grafana-admin-password";
        description = ''
          File with the password of Grafana's `admin` user (read by Grafana
          through its `$__file{}` provider; keep it out of the Nix store).
          `null`: a random one is generated at first start into
          `/var/lib/grafana/hwc-ai-secrets/admin-password`.
        '';
      };

      secretKeyFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = ''
          File with Grafana's `secret_key` (signs cookies, encrypts datasource
          secrets). `null`: generated at first start into
          `/var/lib/grafana/hwc-ai-secrets/secret-key`.
        '';
      };
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = jobs != [ ];
            message = ''
              hwc.ai.monitoring is enabled but nothing on this host has metrics to scrape:
              enable ${lib.concatMapStringsSep ", " (d: "hwc.ai.${d.attr}") hlib.daemons}, llama.cpp
              or a vLLM instance (Ollama has no /metrics; the health prober's probes stand for it),
              or set hwc.ai.monitoring.enable = false.
            '';
          }
          {
            assertion = cfg.grafana.enable -> (cfg.prometheus.enable || cfg.prometheus.url != null);
            message = ''
              hwc.ai.monitoring.grafana is enabled but has no Prometheus to query: keep
              hwc.ai.monitoring.prometheus.enable = true, or set hwc.ai.monitoring.prometheus.url
              to the central Prometheus.
            '';
          }
        ];

        warnings = lib.optional (!cfg.prometheus.enable && cfg.targetHost == null && loopbackTargets != [ ]) ''
          hwc.ai.monitoring: Prometheus does not run on this host, but ${
            lib.concatMapStringsSep ", " (t: "${t.option} = \"${t.host}\"") loopbackTargets
          } is loopback, which a remote Prometheus can't reach. Bind those to an address
          it can reach (and open the firewall to it), and set hwc.ai.monitoring.targetHost.
        '';

        environment.etc."hwc-ai/prometheus/scrape-configs.json".text = builtins.toJSON jobs;
      }

      # A remote Prometheus must reach the router: don't confine its unit
      # to loopback (the operator can still force it back).
      (lib.mkIf (!cfg.prometheus.enable) {
        hwc.ai.router.restrictToLoopback = lib.mkDefault false;
      })

      (lib.mkIf cfg.prometheus.enable {
        services.prometheus = {
          enable = true;
          listenAddress = lib.mkDefault "127.0.0.1";
          scrapeConfigs = jobs;
          ruleFiles = [ ./alerts.rules.yml ];
        };
      })

      (lib.mkIf cfg.grafana.enable {
        services.grafana = {
          enable = true;
          settings = {
            server = {
              http_addr = cfg.grafana.host;
              http_port = cfg.grafana.port;
            };
            security = {
              admin_user = lib.mkDefault "admin";
              admin_password = "$__file{${adminPasswordPath}}";
              secret_key = "$__file{${secretKeyPath}}";
            };
            analytics.reporting_enabled = lib.mkDefault false;
          };
          provision = {
            enable = true;
            datasources.settings = {
              apiVersion = 1;
              datasources = [
                {
                  name = "Prometheus (hwc-ai)";
                  type = "prometheus";
                  uid = "hwc-prometheus";
                  url = promUrl;
                  isDefault = true;
                }
              ];
            };
            dashboards.settings = {
              apiVersion = 1;
              providers = [
                {
                  name = "hwc-ai";
                  type = "file";
                  folder = "hwc-ai";
                  allowUiUpdates = false;
                  options.path = ../../dashboards;
                }
              ];
            };
          };
        };

        # Grafana reads its secrets from files ($__file{}); make the ones
        # not given, once, before Grafana's first start.
        systemd.services.hwc-grafana-secrets = lib.mkIf (generated != [ ]) {
          description = "Generate Grafana's hwc-ai secrets";
          wantedBy = [ "grafana.service" ];
          before = [ "grafana.service" ];
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            UMask = "0077";
          };
          script = ''
            mkdir -p ${secretsDir}
            for f in ${lib.concatStringsSep " " generated}; do
              if [ ! -s "${secretsDir}/$f" ]; then
                head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "${secretsDir}/$f"
              fi
            done
            chown -R grafana:grafana ${secretsDir}
            chmod 0700 ${secretsDir}
          '';
        };
      })
    ]
  );
}
