# hwc.ai.agent: hwc-agent-runner, the operations agent. Every action a job
# proposes is classified by the R0-R3 policy (R0 runs, R1 runs with its
# rollback recorded first, R2 needs one approval, R3 two), recorded in a
# hash-chained, signed audit, and shell commands run in a bubblewrap sandbox
# (docs/agent-runner.md). The options every daemon has (enable, package,
# host, port, tokenFiles, tokens, settings, ...) come from ./daemon.nix; the
# unit is ../nix/units/agent-runner.nix.
#
# What is its own here: the policy (environments and rules rendered to a
# policy file, or a file of the operator's), the router it asks, its
# secrets as credentials (router key, checkpoint signing key, PostgreSQL
# URL), the repositories jobs work on, and `unitControl`: the units polkit
# lets the runner's fixed user start, stop, restart and reload over D-Bus
# (../nix/units/agent-runner-polkit.nix), the host's ceiling on what any
# policy may approve.
#
# Written against crates/hwc-agent-runner/src/config.rs ([server], [auth],
# [store], [policy], [audit], [model], [limits], [sandbox], [tools],
# [retention]) and src/policy/rules.rs (the policy file); check the
# generated files with `hwc-agent-runner --config FILE --check-config`.
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
  cfg = top.agent;
  hlib = import ./lib.nix { inherit lib; };
  daemon = hlib.daemon "agent";
  serviceName = lib.removeSuffix ".service" daemon.unit;

  risks = [
    "R0"
    "R1"
    "R2"
    "R3"
  ];

  # Credential names (the ones examples/agent-runner.toml uses).
  credentialNames = {
    routerKey = "agent-router-key";
    auditKey = "agent-audit-key";
    storeUrl = "agent-store-url";
    mcpToken = "agent-mcp-token";
    sshKnownHosts = "agent-ssh-known-hosts";
    sshKey = "agent-ssh-key";
  };
  # One credential per cluster's kubeconfig and per pipeline's token.
  kubeconfigCredential = env: "agent-kubeconfig-${env}";
  ciTokenCredential = name: "agent-ci-token-${name}";

  # The unit's IP filter when every peer is known by address (see
  # ipAddressAllow): the router, the bridge, ssh hosts, cluster API servers
  # and CI APIs, with loopback.
  isIpLiteral =
    a:
    builtins.match "[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+(/[0-9]+)?" a != null
    || builtins.match "\\[?[0-9a-fA-F:]+:[0-9a-fA-F:]*]?(/[0-9]+)?" a != null;
  peerHosts =
    map hlib.hostOfUrl (
      lib.filter (u: u != null) [
        cfg.routerUrl
        cfg.mcp.bridgeUrl
        (cfg.settings.tools.prometheus_url or null)
        (top.telemetry.otlpEndpoint or null)
      ]
    )
    ++ lib.mapAttrsToList (_: h: h.address) cfg.ssh.hosts
    ++ lib.mapAttrsToList (_: p: hlib.hostOfUrl p.apiUrl) cfg.ci.pipelines;
  remote = lib.filter (h: h == null || !(hlib.isLoopback h)) peerHosts;
  everyPeerByAddress =
    hlib.isLoopback cfg.host
    && lib.all (h: h != null && isIpLiteral h) remote
    && lib.all (k: k.apiServerAddresses != [ ]) (lib.attrValues cfg.kubernetes)
    && cfg.repositories == [ ];
  autoIpAddressAllow =
    if everyPeerByAddress then
      lib.unique (
        [ "localhost" ]
        ++ map (h: lib.removeSuffix "]" (lib.removePrefix "[" h)) remote
        ++ lib.concatMap (k: k.apiServerAddresses) (lib.attrValues cfg.kubernetes)
      )
    else
      null;

  # The policy file from `environments` and `rules` (src/policy/rules.rs:
  # PolicyFile, EnvironmentSpec, RuleSpec), when either is set.
  generated = cfg.rules != [ ] || cfg.environments != { };
  policy = {
    version = 1;
    approval_ttl = cfg.approvalTtl;
    environments = lib.mapAttrs (
      _: e:
      {
        inherit (e) production denied;
      }
      // lib.optionalAttrs (e.maxRisk != null) { max_risk = e.maxRisk; }
    ) cfg.environments;
    rules = map (
      r:
      {
        inherit (r)
          name
          pattern
          decision
          risk
          justification
          unless_args
          network
          reversible
          match
          not_match
          ;
      }
      // lib.optionalAttrs (r.environments != null) { inherit (r) environments; }
    ) cfg.rules;
  };
  policyFile =
    if cfg.policyFile != null then
      "${cfg.policyFile}"
    else if generated then
      "${(pkgs.formats.toml { }).generate "hwc-agent-policy.toml" policy}"
    else
      null;

  # What the runner runs on the host and in the sandbox: found through
  # `[sandbox] path`, the PATH it gives every command it starts (the runner
  # clears the environment of each; the unit's own PATH is not inherited).
  toolPackages = [
    pkgs.bubblewrap
    pkgs.git
    pkgs.openssh
    config.systemd.package
    pkgs.iproute2
    pkgs.procps
    pkgs.util-linux
    pkgs.coreutils
  ];
  # The runner's default `[sandbox] path`, after the tools above.
  systemPath = "/run/current-system/sw/bin:/usr/local/bin:/usr/bin:/bin";

  # systemd passes polkit the unit's full name; the runner adds .service to
  # a name without a suffix, so the rule does too.
  unitName = u: if lib.hasInfix "." u then u else "${u}.service";
  controlled = lib.unique (map unitName cfg.unitControl);
  # What the agent must never stop (the policy's never-stop-the-gate rule).
  protectedUnits = [
    daemon.unit
    "polkit.service"
    "dbus.service"
    "systemd-journald.service"
  ];

  unit = import ../nix/units/agent-runner.nix {
    bin = lib.getExe cfg.package;
    inherit (cfg) configFile user repositories ipAddressAllow;
    credentials = cfg.unitCredentials;
    killBin = "${pkgs.coreutils}/bin/kill";
  };

  polkitRule = import ../nix/units/agent-runner-polkit.nix {
    inherit (cfg) user;
    units = controlled;
  };

  inherit (hlib) hasPassword;

  environmentType = types.submodule {
    options = {
      production = mkOption {
        type = types.bool;
        default = false;
        description = ''
          A production environment: a command no rule matches is denied
          (elsewhere it needs one approval).
        '';
      };
      denied = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "dd"
          "mkfs"
        ];
        description = "Programs and tools (first words) denied here whatever the rules say.";
      };
      maxRisk = mkOption {
        type = types.nullOr (types.enum risks);
        default = null;
        example = "R2";
        description = "The highest class allowed here at all (`max_risk`); above it is denied. null: no ceiling.";
      };
    };
  };

  ruleType = types.submodule {
    options = {
      name = mkOption {
        type = types.str;
        description = "Shown in decisions, audit records and approvals; unique.";
      };
      pattern = mkOption {
        type = types.nonEmptyListOf (types.either types.str (types.nonEmptyListOf types.str));
        example = [
          "systemctl"
          [
            "restart"
            "start"
          ]
          "ollama.service"
        ];
        description = ''
          The command prefix it matches: one glob per word, or a list of
          alternative globs (`*` stops at `/`, `**` crosses it).
        '';
      };
      decision = mkOption {
        type = types.enum [
          "allow"
          "prompt"
          "forbidden"
        ];
        default = "allow";
        description = "`allow`: runs at `risk`; `prompt`: needs approval (at least R2); `forbidden`: never runs.";
      };
      risk = mkOption {
        type = types.enum risks;
        default = "R0";
        description = "The class of what it matches (ignored when forbidden).";
      };
      justification = mkOption {
        type = types.str;
        description = "Why: shown to the approver and the model.";
      };
      environments = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        description = "Environments it applies in (declared in `environments`); all when null.";
      };
      unless_args = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Arguments (globs) that take a command out of this rule (`find` without `-exec`, say).";
      };
      network = mkOption {
        type = types.bool;
        default = false;
        description = "The shell sandbox gives what it matches network access.";
      };
      reversible = mkOption {
        type = types.bool;
        default = true;
        description = "False when what it matches cannot be undone: at least R3.";
      };
      match = mkOption {
        type = types.nonEmptyListOf types.str;
        description = "Command lines the rule must match (checked when the policy loads).";
      };
      not_match = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Command lines the rule must not match (checked when the policy loads).";
      };
    };
  };
in
{
  imports = [
    (import ./daemon.nix {
      inherit daemon;
      settingsGenerated = ''
        This module also fills in `[audit] host` (networking.hostName),
        `[model] url` (routerUrl) and the keys of
        the options below: `[policy] file`, `[audit] signing_key_file`,
        `[model] api_key_file`, `[store]`, `[tools] repositories`,
        `[retention] tool_output` and `[sandbox] path`.
      '';
      settingsExample = {
        model.default_alias = "gpt-oss-20b";
        limits.max_running_jobs = 2;
      };
    })
  ];

  options.hwc.ai.agent = {
    user = mkOption {
      type = types.str;
      default = "hwc-ai-agent";
      description = ''
        Fixed system user the runner runs as; the polkit rule of
        `unitControl` names it. (A DynamicUser has no stable name to grant
        rights to.)
      '';
    };

    environments = mkOption {
      type = types.attrsOf environmentType;
      default = { };
      example = literalExpression ''
        {
          dev = { };
          prod = { production = true; denied = [ "dd" "mkfs" ]; maxRisk = "R2"; };
        }
      '';
      description = ''
        The environments jobs run in (`[environments.<name>]` of the policy
        file). With this or `rules` set, the module writes the policy file
        (version 1) from them; with neither, the runner uses `policyFile`,
        or its built-in policy (examples/agent-policy.toml).
      '';
    };

    rules = mkOption {
      type = types.listOf ruleType;
      default = [ ];
      example = literalExpression ''
        [
          {
            name = "fleet-restart";
            pattern = [ "systemctl" [ "restart" "start" ] [ "ollama.service" "hwc-model-router.service" ] ];
            decision = "prompt";
            risk = "R2";
            justification = "restarting a fleet unit interrupts requests in flight";
            match = [ "systemctl restart ollama.service" ];
            not_match = [ "systemctl restart sshd.service" ];
          }
        ]
      '';
      description = ''
        The policy's rules (`[[rules]]`, the fields as in the policy file);
        for each command the strictest matching rule wins. Every `match`
        and `not_match` example is checked when the runner loads the file.
      '';
    };

    approvalTtl = mkOption {
      type = types.str;
      default = "1h";
      description = "How long an approval stays valid (`approval_ttl` of the generated policy).";
    };

    policyFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./agent-policy.toml";
      description = ''
        A policy file of your own (`[policy] file`; the format of
        examples/agent-policy.toml), instead of `environments` and `rules`.
        null, with neither set: the runner's built-in policy.
      '';
    };

    routerUrl = mkOption {
      type = types.nullOr types.str;
      default = if top.router.enable then "${top.router.url}/v1" else null;
      defaultText = literalMD "`\${hwc.ai.router.url}/v1` when hwc.ai.router is enabled, else null";
      example = "http://gpu-server.lan:8470/v1";
      description = "The model router's OpenAI base URL (`[model] url`).";
    };

    routerKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/hwc-ai/agent-router-key";
      description = ''
        File holding the runner's API key for the router (`[model]
        api_key_file`), passed with `LoadCredential` as
        `${credentialNames.routerKey}`. Outside the Nix store.
      '';
    };

    mcp = {
      bridgeUrl = mkOption {
        type = types.nullOr types.str;
        default = if top.mcp.enable then top.mcp.url else null;
        defaultText = literalMD "hwc.ai.mcp.url when hwc.ai.mcp is enabled, else null";
        example = "http://tools.lan:8471";
        description = ''
          hwc-mcp-bridge's base URL for the `mcp_tools` and `mcp_call` tools
          (`[tools.mcp] bridge_url`); null: no MCP tools.
        '';
      };
      tokenFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/secrets/hwc-ai/agent-mcp-token";
        description = ''
          File holding the runner's bridge token (`[tools.mcp] token_file`),
          passed with `LoadCredential` as `${credentialNames.mcpToken}`. With
          hwc.ai.mcp on this host it is also given to the bridge as the token
          `agent-runner` (role requester, scoped to `servers`). Outside the
          Nix store.
        '';
      };
      servers = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [ "time" "git" ];
        description = ''
          The bridge's servers the runner's token may use (its scopes on this
          host's bridge); null: every server. What a call may do is still
          the policy's (words `mcp SERVER TOOL`).
        '';
      };
    };

    auditKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/hwc-ai/agent-audit-key";
      description = ''
        File holding the Ed25519 seed that signs audit checkpoints (`[audit]
        signing_key_file`; `hwc-agent-runner audit keygen FILE` makes one),
        passed with `LoadCredential` as `${credentialNames.auditKey}`.
        null: the runner makes one in its state directory at first start.
      '';
    };

    store = {
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "postgres://runner@db.lan/hwc_agent";
        description = ''
          Where jobs, approvals and the audit live (`[store] url`): a
          `postgres://` URL for several runners sharing them, without a
          password (it would be in the Nix store; use `urlFile`). null: the
          embedded SQLite database in the state directory.
        '';
      };
      urlFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/secrets/hwc-ai/agent-store-url";
        description = ''
          File holding the whole PostgreSQL URL, password included (`[store]
          url_file`), passed with `LoadCredential` as
          `${credentialNames.storeUrl}`. Outside the Nix store.
        '';
      };
    };

    retention = mkOption {
      type = types.str;
      default = "30d";
      description = ''
        How long tool output is kept in job events (`[retention]
        tool_output`); the audit keeps its hash forever.
      '';
    };

    ssh = {
      hosts = mkOption {
        default = { };
        example = literalExpression ''
          { db1 = { address = "db1.lan"; user = "ops"; environment = "prod"; }; }
        '';
        description = ''
          Hosts the `ssh` tool may run commands on (`[[tools.ssh.hosts]]`), by
          name; each host's commands are judged in its `environment`.
        '';
        type = types.attrsOf (
          types.submodule {
            options = {
              address = mkOption {
                type = types.str;
                description = "Its address (name or IP).";
              };
              port = mkOption {
                type = types.port;
                default = 22;
                description = "Its SSH port.";
              };
              user = mkOption {
                type = types.str;
                description = "The user to log in as.";
              };
              environment = mkOption {
                type = types.str;
                description = "The policy environment its commands are judged in.";
              };
            };
          }
        );
      };
      knownHostsFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/etc/hwc-ai/agent-known-hosts";
        description = ''
          The pinned host keys (OpenSSH known_hosts format), passed with
          `LoadCredential` as `${credentialNames.sshKnownHosts}`: a host
          whose key is not in it is refused, never trusted on first use.
        '';
      };
      keyFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/secrets/hwc-ai/agent-ssh-key";
        description = ''
          The runner's private SSH key, passed with `LoadCredential` as
          `${credentialNames.sshKey}`. Outside the Nix store.
        '';
      };
    };

    knowledge = {
      paths = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "/srv/runbooks"
          "/srv/postmortems"
        ];
        description = ''
          Directories of Markdown and text (runbooks, postmortems,
          architecture docs) that `search_knowledge` searches, with the
          incident records of finished jobs (`[tools.knowledge] paths`).
          Read-only to the runner; re-read every `reindexEvery`.
        '';
      };
      embeddingModel = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "all-minilm";
        description = ''
          A router alias for `/v1/embeddings`: hybrid search (BM25 and dense,
          fused by reciprocal rank); null: BM25 only.
        '';
      };
      reindexEvery = mkOption {
        type = types.str;
        default = "10m";
        description = "How often the directories are re-read (changed files only).";
      };
    };

    kubernetes = mkOption {
      default = { };
      example = literalExpression ''
        {
          prod = {
            kubeconfigFile = "/run/secrets/hwc-ai/kubeconfig-prod";
            context = "prod-agent";
            namespaces = [ "web" "db" ];
            apiServerAddresses = [ "10.0.0.10" ];
          };
        }
      '';
      description = ''
        Kubernetes clusters the `kubectl` tool acts on, by the policy
        environment their actions are judged in
        (`[tools.kubernetes.clusters.<env>]`). Reads are R0, rollout
        restart/undo and scale R2, apply and delete R2 (R3 in `prod`) by the
        built-in policy; writes are planned with a server dry run and a
        rollback first.
      '';
      type = types.attrsOf (
        types.submodule {
          options = {
            kubeconfigFile = mkOption {
              type = types.str;
              example = "/run/secrets/hwc-ai/kubeconfig-prod";
              description = ''
                The kubeconfig, passed with `LoadCredential` as
                `agent-kubeconfig-<env>`. Outside the Nix store (it holds a
                token or a client key).
              '';
            };
            context = mkOption {
              type = types.str;
              description = "The context in it this environment's cluster is reached through.";
            };
            namespaces = mkOption {
              type = types.listOf types.str;
              example = [ "web" ];
              description = "The namespaces the agent may act in; nothing else is reachable through the tool.";
            };
            apiServerAddresses = mkOption {
              type = types.listOf types.str;
              default = [ ];
              example = [ "10.0.0.10" ];
              description = ''
                The API server's IP addresses or prefixes, for the unit's IP
                filter (ipAddressAllow); empty: unknown, and the filter is not
                set automatically.
              '';
            };
          };
        }
      );
    };

    ci.pipelines = mkOption {
      default = { };
      example = literalExpression ''
        {
          deploy-web = {
            apiUrl = "https://git.example.org/api/v1";
            repository = "ops/web";
            workflow = "deploy.yml";
            tokenFile = "/run/secrets/hwc-ai/forgejo-token";
            environment = "prod";
            deploy = true;
          };
        }
      '';
      description = ''
        CI pipelines the `ci` tool may trigger and read, by name
        (`[[tools.ci.pipelines]]`): GitHub Actions, or Forgejo's and Gitea's
        Actions through the same REST API. A trigger is R1; a pipeline
        marked `deploy` is R2 (R3 in `prod`) by the built-in policy.
      '';
      type = types.attrsOf (
        types.submodule {
          options = {
            apiUrl = mkOption {
              type = types.str;
              default = "https://api.github.com";
              description = "The API's base URL (a Forgejo or Gitea instance's ends in /api/v1).";
            };
            repository = mkOption {
              type = types.str;
              example = "ops/web";
              description = "owner/repo.";
            };
            workflow = mkOption {
              type = types.str;
              example = "deploy.yml";
              description = "The workflow file name (or id); it needs a `workflow_dispatch` trigger.";
            };
            defaultRef = mkOption {
              type = types.str;
              default = "main";
              description = "The ref a trigger runs when the call names none.";
            };
            tokenFile = mkOption {
              type = types.str;
              example = "/run/secrets/hwc-ai/ci-token";
              description = ''
                The API token (Actions read and write), passed with
                `LoadCredential` as `agent-ci-token-<name>` and read at each
                call. Outside the Nix store.
              '';
            };
            environment = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "The policy environment its runs are judged in; null: the job's.";
            };
            deploy = mkOption {
              type = types.bool;
              default = false;
              description = "A deploy: its trigger is the words `ci deploy NAME` (R2, R3 in prod) rather than `ci trigger NAME` (R1).";
            };
          };
        }
      );
    };

    ipAddressAllow = mkOption {
      type = types.nullOr (types.listOf types.str);
      default = autoIpAddressAllow;
      defaultText = literalMD ''
        `[ "localhost" ]` plus the declared peers' addresses when every peer
        (router, bridge, ssh hosts, cluster API servers, CI APIs) is given
        by IP address and no repository is declared; otherwise `null`
        '';
      example = [
        "localhost"
        "10.0.0.0/24"
      ];
      description = ''
        Confines the unit's sockets (`IPAddressDeny=any` plus
        `IPAddressAllow=` these): the runner and its sandboxed commands reach
        only these addresses. Computed when every peer is known by address;
        a host name (api.github.com, a router on gpu-server.lan) or a
        repository with remotes leaves it unset, as systemd filters by
        address only. null: no IP filter.
      '';
    };

    repositories = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/srv/git/infra" ];
      description = ''
        Git repositories a job may name (`[tools] repositories`); each job
        works in its own worktree of one. They are writable by the unit
        (`ReadWritePaths=`, git keeps worktrees under `.git`): each must
        exist when the runner starts, and belong to its user (git refuses
        a repository another user owns).
      '';
    };

    unitControl = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "ollama.service"
        "hwc-model-router.service"
      ];
      description = ''
        The units the runner may start, stop, restart and reload over D-Bus:
        a polkit rule grants its user exactly these verbs on exactly these
        units (a name without a suffix is a `.service`). The policy still
        decides whether a job may ask and with how many approvals; this is
        the host's ceiling. Empty: no unit control at all.
      '';
    };

    unitControlRule = mkOption {
      type = types.str;
      internal = true;
      readOnly = true;
      default = polkitRule;
      description = "The polkit rule of unitControl (read-only).";
    };

    generatedPolicy = mkOption {
      type = types.nullOr types.attrs;
      internal = true;
      readOnly = true;
      default = if cfg.policyFile == null && generated then policy else null;
      description = "The policy written from environments and rules, as data (read-only; null when not written).";
    };
  };

  config = lib.mkIf (top.enable && cfg.enable) {
    hwc.ai.agent.unit = unit;

    hwc.ai.agent.credentials = lib.mkMerge [
      (lib.mkIf (cfg.routerKeyFile != null) { ${credentialNames.routerKey} = cfg.routerKeyFile; })
      (lib.mkIf (cfg.auditKeyFile != null) { ${credentialNames.auditKey} = cfg.auditKeyFile; })
      (lib.mkIf (cfg.store.urlFile != null) { ${credentialNames.storeUrl} = cfg.store.urlFile; })
      (lib.mkIf (cfg.mcp.tokenFile != null) { ${credentialNames.mcpToken} = cfg.mcp.tokenFile; })
      (lib.mkIf (cfg.ssh.knownHostsFile != null) {
        ${credentialNames.sshKnownHosts} = cfg.ssh.knownHostsFile;
      })
      (lib.mkIf (cfg.ssh.keyFile != null) { ${credentialNames.sshKey} = cfg.ssh.keyFile; })
      (lib.mapAttrs' (
        env: k: lib.nameValuePair (kubeconfigCredential env) k.kubeconfigFile
      ) cfg.kubernetes)
      (lib.mapAttrs' (name: p: lib.nameValuePair (ciTokenCredential name) p.tokenFile) cfg.ci.pipelines)
    ];

    # The bridge on this host knows the runner's token.
    hwc.ai.mcp.tokens = lib.mkIf (top.mcp.enable && cfg.mcp.tokenFile != null) {
      agent-runner = {
        file = cfg.mcp.tokenFile;
        role = "requester";
        scopes = cfg.mcp.servers;
      };
    };

    hwc.ai.agent.settings = {
      model = {
        url = lib.mkIf (cfg.routerUrl != null) cfg.routerUrl;
        # json_schema mode decodes `unit` arguments from these names.
        units = lib.mkIf (controlled != [ ]) (lib.mkDefault controlled);
        api_key_file = lib.mkIf (cfg.routerKeyFile != null) credentialNames.routerKey;
      };
      audit.signing_key_file = lib.mkIf (cfg.auditKeyFile != null) credentialNames.auditKey;
      # The name jobs target and records carry: one runner per host, named
      # like the host, so two runners sharing a store never claim each
      # other's jobs (ADR 0010).
      audit.host = lib.mkIf (config.networking.hostName != "") (lib.mkDefault config.networking.hostName);
      store = lib.mkIf (cfg.store.url != null || cfg.store.urlFile != null) {
        url = lib.mkIf (cfg.store.url != null) cfg.store.url;
        url_file = lib.mkIf (cfg.store.urlFile != null) credentialNames.storeUrl;
      };
      policy.file = lib.mkIf (policyFile != null) policyFile;
      tools.repositories = lib.mkIf (cfg.repositories != [ ]) cfg.repositories;
      tools.knowledge = lib.mkIf (cfg.knowledge.paths != [ ]) {
        inherit (cfg.knowledge) paths;
        embedding_model = lib.mkIf (cfg.knowledge.embeddingModel != null) cfg.knowledge.embeddingModel;
        reindex_every = cfg.knowledge.reindexEvery;
      };
      tools.ssh = lib.mkIf (cfg.ssh.hosts != { }) {
        hosts = lib.mapAttrsToList (name: h: { inherit name; } // h) cfg.ssh.hosts;
        known_hosts = lib.mkIf (cfg.ssh.knownHostsFile != null) credentialNames.sshKnownHosts;
        key_file = lib.mkIf (cfg.ssh.keyFile != null) credentialNames.sshKey;
      };
      tools.kubernetes = lib.mkIf (cfg.kubernetes != { }) {
        program = lib.getExe pkgs.kubectl;
        clusters = lib.mapAttrs (env: k: {
          kubeconfig = kubeconfigCredential env;
          inherit (k) context namespaces;
        }) cfg.kubernetes;
      };
      tools.ci = lib.mkIf (cfg.ci.pipelines != { }) {
        pipelines = lib.mapAttrsToList (
          name: p:
          {
            inherit name;
            api_url = p.apiUrl;
            inherit (p) repository workflow deploy;
            default_ref = p.defaultRef;
            token_file = ciTokenCredential name;
          }
          // lib.optionalAttrs (p.environment != null) { inherit (p) environment; }
        ) cfg.ci.pipelines;
      };
      tools.mcp = lib.mkIf (cfg.mcp.bridgeUrl != null) {
        bridge_url = cfg.mcp.bridgeUrl;
        token_file = lib.mkIf (cfg.mcp.tokenFile != null) credentialNames.mcpToken;
      };
      retention.tool_output = cfg.retention;
      sandbox.path = lib.mkDefault "${lib.makeBinPath toolPackages}:${systemPath}";
    };

    assertions = [
      {
        assertion = cfg.ssh.hosts == { } || (cfg.ssh.knownHostsFile != null && cfg.ssh.keyFile != null);
        message = ''
          hwc.ai.agent.ssh.hosts is set without knownHostsFile and keyFile: host keys are pinned
          (never trusted on first use) and the key comes from a file. Set both.
        '';
      }
      {
        assertion = cfg.tokenFiles != [ ] || cfg.tokens != { };
        message = ''
          hwc.ai.agent has no tokens: the runner has no anonymous access. Give it at least one,
          for example hwc.ai.agent.tokens.alice = { file = "/run/secrets/hwc-ai/alice"; role = "requester"; };
          (roles: reader, requester, approver, admin; R2 and R3 actions need approvers).
        '';
      }
      {
        assertion = cfg.routerUrl != null;
        message = ''
          hwc.ai.agent needs a model router: enable hwc.ai.router on this host, or set
          hwc.ai.agent.routerUrl to one elsewhere (for example "http://gpu-server.lan:8470/v1").
        '';
      }
      {
        assertion = !(cfg.policyFile != null && generated);
        message = ''
          hwc.ai.agent: policyFile and environments/rules are both set; the policy comes from one
          place. Either keep policyFile = ${toString cfg.policyFile} and remove hwc.ai.agent.rules and
          hwc.ai.agent.environments, or remove policyFile and let the module write the policy.
        '';
      }
      {
        assertion = generated -> cfg.environments != { };
        message = ''
          hwc.ai.agent.rules is set but hwc.ai.agent.environments is empty: a policy declares at
          least one environment, for example hwc.ai.agent.environments.prod.production = true;
        '';
      }
      {
        assertion = lib.all (
          r: r.environments == null || lib.all (e: cfg.environments ? ${e}) r.environments
        ) cfg.rules;
        message = ''
          hwc.ai.agent.rules: a rule names an environment hwc.ai.agent.environments does not declare:
          ${lib.concatMapStringsSep ", " (r: "${r.name} (${lib.concatStringsSep ", " r.environments})") (
            lib.filter (
              r: r.environments != null && !(lib.all (e: cfg.environments ? ${e}) r.environments)
            ) cfg.rules
          )}; declared: ${lib.concatStringsSep ", " (builtins.attrNames cfg.environments)}.
        '';
      }
      {
        assertion = lib.length (lib.unique (map (r: r.name) cfg.rules)) == lib.length cfg.rules;
        message = ''
          hwc.ai.agent.rules: two rules share a name (${
            lib.concatStringsSep ", " (
              lib.unique (lib.filter (n: lib.count (m: m == n) (map (r: r.name) cfg.rules) > 1) (
                map (r: r.name) cfg.rules
              ))
            )
          }); names must be unique.
        '';
      }
      {
        assertion = !(cfg.store.url != null && cfg.store.urlFile != null);
        message = ''
          hwc.ai.agent: store.url and store.urlFile are both set; keep one (urlFile when the URL
          holds a password).
        '';
      }
      {
        assertion = cfg.store.url == null || !(hasPassword cfg.store.url);
        message = ''
          hwc.ai.agent.store.url holds a password, which would be in the Nix store for every local
          user to read. Put the whole URL in a file outside the store and set
          hwc.ai.agent.store.urlFile to it instead.
        '';
      }
      {
        assertion = lib.all (p: lib.hasPrefix "/" p) cfg.repositories;
        message = ''
          hwc.ai.agent.repositories: every repository must be an absolute path; got
          ${lib.concatStringsSep ", " (lib.filter (p: !(lib.hasPrefix "/" p)) cfg.repositories)}.
        '';
      }
      {
        assertion = lib.all (u: builtins.match "[A-Za-z0-9@._:\\\\-]+" u != null) cfg.unitControl;
        message = ''
          hwc.ai.agent.unitControl: a unit name is letters, digits and @._:-\ only (no globs: polkit
          grants exactly the units listed); got ${lib.concatStringsSep ", " cfg.unitControl}.
        '';
      }
      {
        assertion = lib.all (u: !(builtins.elem u protectedUnits)) controlled;
        message = ''
          hwc.ai.agent.unitControl names ${
            lib.concatStringsSep ", " (lib.filter (u: builtins.elem u protectedUnits) controlled)
          }: the agent must never stop the runner, polkit, D-Bus or the journal that record and
          limit it. Remove it from the list.
        '';
      }
    ];

    warnings = lib.optional (!config.security.allowUserNamespaces) ''
      hwc.ai.agent: security.allowUserNamespaces = false, but the runner's shell sandbox
      (bubblewrap) needs user namespaces; every shell command will be refused (the runner's
      /status says why). Typed tools (systemctl, journal, git, files) still work.
    '';

    users.users.${cfg.user} = {
      isSystemUser = true;
      group = cfg.user;
      description = "hwc-ai agent runner";
    };
    users.groups.${cfg.user} = { };

    security.polkit = lib.mkIf (controlled != [ ]) {
      enable = true;
      extraConfig = polkitRule;
    };

    systemd.services.${serviceName} = {
      # The runner's own PATH; the commands it starts get `[sandbox] path`.
      path = toolPackages;
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
        "dbus.service"
      ]
      ++ lib.optional top.router.enable "hwc-model-router.service";
    };
  };
}
