# Module evaluation tests of hwc.ai.agent (modules/agent-runner.nix): the
# policy file written from environments and rules, the polkit rule of
# unitControl, the secrets as credentials, the router's URL by default, the
# unit's fixed user and sandbox relaxations, and every misconfiguration the
# module refuses. Part of ./tests.nix, which passes its helpers.
{
  lib,
  clean,
  holds,
  rejects,
  throws,
  minimal,
}:
let
  inherit (lib) hasInfix hasPrefix hasSuffix;

  svc = c: c.systemd.services.hwc-agent-runner;
  sc = c: (svc c).serviceConfig;
  settings = c: c.hwc.ai.agent.settings;

  tokens = {
    alice = {
      file = "/run/secrets/hwc-ai/alice";
      role = "requester";
    };
    bob = {
      file = "/run/secrets/hwc-ai/bob";
      role = "approver";
    };
  };

  fleetRestart = {
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
  };
  reading = {
    name = "read";
    pattern = [
      [
        "cat"
        "ls"
      ]
    ];
    justification = "reading changes nothing";
    match = [ "cat /etc/os-release" ];
  };

  # Tokens only: the built-in policy, the local router, SQLite.
  plain = minimal ++ [
    {
      hwc.ai.agent = {
        enable = true;
        inherit tokens;
      };
    }
  ];

  # Everything the module has options for.
  full = minimal ++ [
    {
      hwc.ai.agent = {
        enable = true;
        inherit tokens;
        routerKeyFile = "/run/secrets/hwc-ai/agent-router-key";
        auditKeyFile = "/run/secrets/hwc-ai/agent-audit-key";
        store.urlFile = "/run/secrets/hwc-ai/agent-store-url";
        environments = {
          dev = { };
          prod = {
            production = true;
            denied = [ "dd" ];
            maxRisk = "R2";
          };
        };
        rules = [
          fleetRestart
          reading
        ];
        approvalTtl = "30m";
        unitControl = [
          "ollama"
          "hwc-model-router.service"
        ];
        repositories = [ "/srv/git/infra" ];
        retention = "7d";
      };
    }
  ];
in
[
  (clean "agent: a runner with tokens only" plain)
  (clean "agent: a runner with a policy, unit control, secrets and a repository" full)
  (holds "agent: the registry entry (port 8472, its unit, component agent-runner, probed)" full (
    c:
    let
      d = lib.findFirst (d: d.attr == "agent") null (import ../daemons.nix);
    in
    d.crate == "hwc-agent-runner"
    && d.port == 8472
    && d.unit == "hwc-agent-runner.service"
    && d.component == "agent-runner"
    && d.probe == "hwc"
    && d.auth == "tokens"
    && c.hwc.ai.agent.url == "http://127.0.0.1:8472"
    && (settings c).server.listen == "127.0.0.1:8472"
  ))
  (holds "agent: monitoring scrapes it with the label component = agent-runner" (
    full ++ [ { hwc.ai.monitoring.enable = true; } ]
  ) (
    c:
    let
      jobs = c.hwc.ai.monitoring.scrapeConfigs;
      job = lib.findFirst (j: j.job_name == "hwc-agent-runner") null jobs;
      sconf = builtins.head job.static_configs;
    in
    job != null && sconf.labels.component == "agent-runner" && sconf.targets == [ "127.0.0.1:8472" ]
  ))
  (holds "agent: the prober probes it and may restart it" (
    full ++ [ { hwc.ai.healthProber.enable = true; } ]
  ) (
    c:
    lib.any (
      t: t.name == "agent-runner" && t.kind == "hwc" && t.restart_unit == "hwc-agent-runner.service"
    ) c.hwc.ai.healthProber.settings.targets
    && builtins.elem "hwc-agent-runner.service" c.hwc.ai.healthProber.restartUnits
  ))
  (holds "agent: environments and rules become the policy file (version 1, approval_ttl)" full (
    c:
    let
      p = c.hwc.ai.agent.generatedPolicy;
      rules = lib.listToAttrs (map (r: lib.nameValuePair r.name r) p.rules);
    in
    p.version == 1
    && p.approval_ttl == "30m"
    && p.environments == {
      dev = {
        production = false;
        denied = [ ];
      };
      prod = {
        production = true;
        denied = [ "dd" ];
        max_risk = "R2";
      };
    }
    && rules.fleet-restart == {
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
      unless_args = [ ];
      network = false;
      reversible = true;
      match = [ "systemctl restart ollama.service" ];
      not_match = [ "systemctl restart sshd.service" ];
    }
    # Defaults as the runner's own (allow, R0, every environment).
    && rules.read.decision == "allow"
    && rules.read.risk == "R0"
    && !(rules.read ? environments)
    && hasSuffix "-hwc-agent-policy.toml" (settings c).policy.file
    && hasPrefix builtins.storeDir (settings c).policy.file
  ))
  (holds "agent: a policy file of your own is [policy] file" (
    plain ++ [ { hwc.ai.agent.policyFile = "/etc/hwc-ai/agent-policy.toml"; } ]
  ) (
    c:
    (settings c).policy.file == "/etc/hwc-ai/agent-policy.toml"
    && c.hwc.ai.agent.generatedPolicy == null
  ))
  (holds "agent: neither: no [policy] file, the runner's built-in policy" plain (
    c: !((settings c).policy or { } ? file) && c.hwc.ai.agent.generatedPolicy == null
  ))
  (holds "agent: the polkit rule grants its user exactly the listed units and verbs" full (
    c:
    let
      rule = c.security.polkit.extraConfig;
    in
    c.security.polkit.enable
    && rule == c.hwc.ai.agent.unitControlRule
    && hasInfix ''action.id == "org.freedesktop.systemd1.manage-units"'' rule
    && hasInfix ''subject.user == "hwc-ai-agent"'' rule
    && hasInfix ''["start","stop","restart","reload"].indexOf(action.lookup("verb")) >= 0'' rule
    # A name without a suffix is a .service (systemd passes the full name).
    && hasInfix ''["ollama.service","hwc-model-router.service"].indexOf(action.lookup("unit"))'' rule
    && lib.length (lib.splitString "polkit.addRule" rule) == 2
  ))
  (holds "agent: with the prober, both rules, each for its own user" (
    full ++ [ { hwc.ai.healthProber.enable = true; } ]
  ) (
    c:
    let
      rule = c.security.polkit.extraConfig;
    in
    hasInfix ''subject.user == "hwc-ai-agent"'' rule
    && hasInfix ''subject.user == "hwc-ai-prober"'' rule
    && lib.length (lib.splitString "polkit.addRule" rule) == 3
  ))
  (holds "agent: json_schema mode decodes unit names from unitControl" full (
    c: (settings c).model.units == [ "ollama.service" "hwc-model-router.service" ]
  ))
  (holds "agent: no unitControl, no polkit rule" plain (
    c: c.security.polkit.extraConfig == "" && !c.security.polkit.enable
  ))
  (holds "agent: its secrets are credentials the config names, never paths" full (
    c:
    let
      s = settings c;
      creds = (sc c).LoadCredential;
    in
    s.model.api_key_file == "agent-router-key"
    && s.audit.signing_key_file == "agent-audit-key"
    && s.store.url_file == "agent-store-url"
    && !(s.store ? url)
    && builtins.elem "agent-router-key:/run/secrets/hwc-ai/agent-router-key" creds
    && builtins.elem "agent-audit-key:/run/secrets/hwc-ai/agent-audit-key" creds
    && builtins.elem "agent-store-url:/run/secrets/hwc-ai/agent-store-url" creds
    && builtins.elem "token-alice:/run/secrets/hwc-ai/alice" creds
    && builtins.elem "token-bob:/run/secrets/hwc-ai/bob" creds
  ))
  (holds "agent: without them, no such keys (SQLite, a key made at first start)" plain (
    c:
    let
      s = settings c;
    in
    !(s.model ? api_key_file) && !((s.audit or { }) ? signing_key_file) && (s.store or { }) == { }
  ))
  (holds "agent: records and job targets carry the host's name" (
    plain ++ [ { networking.hostName = "edge-p1000"; } ]
  ) (c: (settings c).audit.host == "edge-p1000"))
  (holds "agent: a PostgreSQL URL without a password goes in the config" (
    plain ++ [ { hwc.ai.agent.store.url = "postgres://runner@db.lan/hwc_agent"; } ]
  ) (c: (settings c).store == { url = "postgres://runner@db.lan/hwc_agent"; }))
  (holds "agent: the local router's URL by default" plain (
    c: (settings c).model.url == "http://127.0.0.1:8470/v1"
  ))
  (holds "agent: ... on the router's port" (plain ++ [ { hwc.ai.router.port = 9470; } ]) (
    c: (settings c).model.url == "http://127.0.0.1:9470/v1"
  ))
  (holds "agent: a router elsewhere" (
    plain
    ++ [
      {
        hwc.ai.router.enable = lib.mkForce false;
        hwc.ai.agent.routerUrl = "http://gpu-server.lan:8470/v1";
      }
    ]
  ) (c: (settings c).model.url == "http://gpu-server.lan:8470/v1"))
  (holds "agent: started after the router and D-Bus" plain (
    c:
    builtins.elem "hwc-model-router.service" (svc c).after
    && builtins.elem "dbus.service" (svc c).after
  ))
  (holds "agent: repositories are [tools] repositories and writable by the unit" full (
    c:
    (settings c).tools.repositories == [ "/srv/git/infra" ]
    && (sc c).ReadWritePaths == [ "/srv/git/infra" ]
    && (sc c).ProtectHome == true
  ))
  (holds "agent: a repository under /home is visible, read-only but for itself" (
    full ++ [ { hwc.ai.agent.repositories = lib.mkForce [ "/home/ops/infra" ]; } ]
  ) (c: (sc c).ProtectHome == "read-only" && (sc c).ReadWritePaths == [ "/home/ops/infra" ]))
  (holds "agent: retention is [retention] tool_output" full (
    c: (settings c).retention.tool_output == "7d"
  ))
  (holds "agent: a fixed system user, in the journal's group, no capability" full (
    c:
    let
      s = sc c;
    in
    s.DynamicUser == false
    && s.User == "hwc-ai-agent"
    && s.Group == "hwc-ai-agent"
    && s.SupplementaryGroups == [ "systemd-journal" ]
    && s.CapabilityBoundingSet == [ "" ]
    && s.NoNewPrivileges
    && c.users.users.hwc-ai-agent.isSystemUser
    && c.users.users.hwc-ai-agent.group == "hwc-ai-agent"
    && c.users.groups ? hwc-ai-agent
  ))
  (holds "agent: the sandbox's relaxations, and only those" full (
    c:
    let
      s = sc c;
    in
    s.RestrictNamespaces == "cgroup ipc mnt net pid user uts"
    && s.ProtectHostname == false
    && s.ProcSubset == "all"
    && builtins.elem "AF_NETLINK" s.RestrictAddressFamilies
    && !(builtins.elem "AF_PACKET" s.RestrictAddressFamilies)
    && s.SystemCallFilter == [
      "@system-service"
      "~@privileged"
      "~@resources"
      "@mount"
      "capset"
      "sethostname"
    ]
    # What stays as the baseline has it.
    && s.PrivateUsers
    && s.ProtectProc == "invisible"
    && s.ProtectKernelTunables
    && s.MemoryDenyWriteExecute
    && s.PrivateDevices
  ))
  (holds "agent: systemctl reload sends SIGHUP (tokens and policy re-read)" full (
    c: hasInfix "/bin/kill -HUP $MAINPID" (sc c).ExecReload
  ))
  (holds "agent: bubblewrap, git, systemd, ss, ps are in [sandbox] path and the unit's path" full (
    c:
    let
      path = (settings c).sandbox.path;
      has = name: lib.any (d: hasSuffix "-${name}/bin" d) (lib.splitString ":" path);
    in
    lib.all has [
      "bubblewrap"
      "git"
      "systemd"
      "iproute2"
      "procps"
      "util-linux"
      "coreutils"
    ]
    && hasSuffix ":/run/current-system/sw/bin:/usr/local/bin:/usr/bin:/bin" path
    && lib.any (p: (p.name or "") == "bubblewrap") (svc c).path
  ))
  (holds "agent: user namespaces turned off: a warning that names the sandbox" (
    plain ++ [ { security.allowUserNamespaces = false; } ]
  ) (c: lib.any (w: hasInfix "security.allowUserNamespaces = false" w) c.warnings))
  (holds "agent: no such warning otherwise" plain (
    c: !(lib.any (w: hasInfix "allowUserNamespaces" w) c.warnings)
  ))
  (rejects "agent: no token" (minimal ++ [ { hwc.ai.agent.enable = true; } ])
    "hwc.ai.agent has no tokens"
  )
  (rejects "agent: no router and no routerUrl" (
    plain ++ [ { hwc.ai.router.enable = lib.mkForce false; } ]
  ) "hwc.ai.agent needs a model router")
  (rejects "agent: policyFile and rules both set" (
    full ++ [ { hwc.ai.agent.policyFile = "/etc/hwc-ai/agent-policy.toml"; } ]
  ) "hwc.ai.agent: policyFile and environments/rules are both set")
  (throws "agent: a maxRisk that is no class" (
    plain ++ [ { hwc.ai.agent.environments.prod.maxRisk = "R4"; } ]
  ) [ "hwc" "ai" "agent" "generatedPolicy" ])
  (throws "agent: a rule decision that does not exist" (
    plain
    ++ [
      {
        hwc.ai.agent.environments.dev = { };
        hwc.ai.agent.rules = [ (reading // { decision = "ask"; }) ];
      }
    ]
  ) [ "hwc" "ai" "agent" "generatedPolicy" ])
  (throws "agent: a rule without a match example" (
    plain
    ++ [
      {
        hwc.ai.agent.environments.dev = { };
        hwc.ai.agent.rules = [ (removeAttrs reading [ "match" ]) ];
      }
    ]
  ) [ "hwc" "ai" "agent" "generatedPolicy" ])
  (rejects "agent: rules without an environment" (
    plain ++ [ { hwc.ai.agent.rules = [ reading ]; } ]
  ) "hwc.ai.agent.environments is empty")
  (rejects "agent: a rule in an environment not declared" (
    plain
    ++ [
      {
        hwc.ai.agent.environments.dev = { };
        hwc.ai.agent.rules = [ fleetRestart ];
      }
    ]
  ) "fleet-restart (prod); declared: dev")
  (rejects "agent: two rules with one name" (
    plain
    ++ [
      {
        hwc.ai.agent.environments.dev = { };
        hwc.ai.agent.rules = [
          reading
          reading
        ];
      }
    ]
  ) "two rules share a name (read)")
  (rejects "agent: unitControl naming the runner's own unit" (
    plain ++ [ { hwc.ai.agent.unitControl = [ "hwc-agent-runner" ]; } ]
  ) "unitControl names hwc-agent-runner.service")
  (rejects "agent: unitControl with a glob" (
    plain ++ [ { hwc.ai.agent.unitControl = [ "vllm-*.service" ]; } ]
  ) "no globs")
  (rejects "agent: a secret in the Nix store" (
    plain ++ [ { hwc.ai.agent.auditKeyFile = "/nix/store/0000-agent-audit-key"; } ]
  ) "hwc.ai.agent: secrets point into the Nix store")
  (rejects "agent: a password in store.url" (
    plain ++ [ { hwc.ai.agent.store.url = "postgres://runner:hunter2@db.lan/hwc_agent"; } ]
  ) "hwc.ai.agent.store.url holds a password")
  (rejects "agent: store.url and store.urlFile both" (
    plain
    ++ [
      {
        hwc.ai.agent.store = {
          url = "postgres://runner@db.lan/hwc_agent";
          urlFile = "/run/secrets/hwc-ai/agent-store-url";
        };
      }
    ]
  ) "store.url and store.urlFile are both set")
  (rejects "agent: a relative repository" (
    plain ++ [ { hwc.ai.agent.repositories = [ "srv/git/infra" ]; } ]
  ) "every repository must be an absolute path")
  (holds "agent: the bridge on this host serves the MCP tools, with a token both know" (
    plain
    ++ [
      (
        { pkgs, ... }:
        {
          hwc.ai.mcp = {
            enable = true;
            servers.time.package = pkgs.mcp-server-time;
          };
          hwc.ai.agent.mcp = {
            tokenFile = "/run/secrets/hwc-ai/agent-mcp-token";
            servers = [ "time" ];
          };
        }
      )
    ]
  ) (
    c:
    let
      t = lib.findFirst (t: t.name == "agent-runner") null c.hwc.ai.mcp.settings.auth.tokens;
    in
    (settings c).tools.mcp == {
      bridge_url = "http://127.0.0.1:8471";
      token_file = "agent-mcp-token";
    }
    && builtins.elem "agent-mcp-token:/run/secrets/hwc-ai/agent-mcp-token" (sc c).LoadCredential
    && t != null
    && t.role == "requester"
    && t.scopes == [ "time" ]
  ))
  (holds "agent: no MCP tools without a bridge" plain (c: !((settings c).tools ? mcp)))
  (holds "agent: ssh hosts with their pinned keys and key as credentials" (
    plain
    ++ [
      {
        hwc.ai.agent.ssh = {
          hosts.db1 = {
            address = "db1.lan";
            user = "ops";
            environment = "prod";
          };
          knownHostsFile = "/etc/hwc-ai/agent-known-hosts";
          keyFile = "/run/secrets/hwc-ai/agent-ssh-key";
        };
      }
    ]
  ) (
    c:
    (settings c).tools.ssh == {
      hosts = [
        {
          name = "db1";
          address = "db1.lan";
          port = 22;
          user = "ops";
          environment = "prod";
        }
      ];
      known_hosts = "agent-ssh-known-hosts";
      key_file = "agent-ssh-key";
    }
    && builtins.elem "agent-ssh-key:/run/secrets/hwc-ai/agent-ssh-key" (sc c).LoadCredential
    && builtins.elem "agent-ssh-known-hosts:/etc/hwc-ai/agent-known-hosts" (sc c).LoadCredential
  ))
  (rejects "agent: ssh hosts without pinned keys" (
    plain
    ++ [
      {
        hwc.ai.agent.ssh.hosts.db1 = {
          address = "db1.lan";
          user = "ops";
          environment = "prod";
        };
      }
    ]
  ) "host keys are pinned")
  (holds "agent: knowledge directories are what search_knowledge searches" (
    plain ++ [ { hwc.ai.agent.knowledge.paths = [ "/srv/runbooks" ]; } ]
  ) (
    c:
    (settings c).tools.knowledge == {
      paths = [ "/srv/runbooks" ];
      reindex_every = "10m";
    }
  ))
  (holds "agent: kubernetes clusters by environment, kubeconfigs as credentials" (
    plain
    ++ [
      {
        hwc.ai.agent.kubernetes.prod = {
          kubeconfigFile = "/run/secrets/hwc-ai/kubeconfig-prod";
          context = "prod-agent";
          namespaces = [ "web" ];
        };
      }
    ]
  ) (
    c:
    (settings c).tools.kubernetes.clusters == {
      prod = {
        kubeconfig = "agent-kubeconfig-prod";
        context = "prod-agent";
        namespaces = [ "web" ];
      };
    }
    && lib.hasSuffix "/bin/kubectl" (settings c).tools.kubernetes.program
    && builtins.elem "agent-kubeconfig-prod:/run/secrets/hwc-ai/kubeconfig-prod" (sc c).LoadCredential
  ))
  (holds "agent: CI pipelines with their tokens as credentials" (
    plain
    ++ [
      {
        hwc.ai.agent.ci.pipelines.deploy-web = {
          apiUrl = "https://git.example.org/api/v1";
          repository = "ops/web";
          workflow = "deploy.yml";
          tokenFile = "/run/secrets/hwc-ai/forgejo-token";
          environment = "prod";
          deploy = true;
        };
      }
    ]
  ) (
    c:
    (settings c).tools.ci.pipelines == [
      {
        name = "deploy-web";
        api_url = "https://git.example.org/api/v1";
        repository = "ops/web";
        workflow = "deploy.yml";
        default_ref = "main";
        token_file = "agent-ci-token-deploy-web";
        environment = "prod";
        deploy = true;
      }
    ]
    && builtins.elem "agent-ci-token-deploy-web:/run/secrets/hwc-ai/forgejo-token" (sc c).LoadCredential
    # A CI API by host name: systemd cannot filter by name, so no filter.
    && !((sc c) ? IPAddressDeny)
  ))
  (holds "agent: every peer on loopback: sockets confined to loopback" plain (
    c: (sc c).IPAddressDeny == "any" && (sc c).IPAddressAllow == [ "localhost" ]
  ))
  (holds "agent: ssh hosts and API servers by address join the IP filter" (
    plain
    ++ [
      {
        hwc.ai.agent = {
          ssh = {
            hosts.db1 = {
              address = "10.0.0.5";
              user = "ops";
              environment = "prod";
            };
            knownHostsFile = "/etc/hwc-ai/agent-known-hosts";
            keyFile = "/run/secrets/hwc-ai/agent-ssh-key";
          };
          kubernetes.prod = {
            kubeconfigFile = "/run/secrets/hwc-ai/kubeconfig-prod";
            context = "prod-agent";
            namespaces = [ "web" ];
            apiServerAddresses = [ "10.0.1.0/28" ];
          };
        };
      }
    ]
  ) (
    c:
    (sc c).IPAddressAllow == [
      "localhost"
      "10.0.0.5"
      "10.0.1.0/28"
    ]
  ))
  (holds "agent: an ssh host by name leaves the unit unfiltered" (
    plain
    ++ [
      {
        hwc.ai.agent.ssh = {
          hosts.db1 = {
            address = "db1.lan";
            user = "ops";
            environment = "prod";
          };
          knownHostsFile = "/etc/hwc-ai/agent-known-hosts";
          keyFile = "/run/secrets/hwc-ai/agent-ssh-key";
        };
      }
    ]
  ) (c: !((sc c) ? IPAddressDeny)))
]
