# The hwc-ai daemons: the one list every other place reads. Builtins only
# (no nixpkgs, no lib), so the checks that run without nixpkgs read it too.
#
# Read by: nix/packages.nix (one package per crate), modules/lib.nix (the
# shared options of every daemon module, modules/daemon.nix), the monitoring
# scrape list, the health prober's generated targets, the evaluation tests
# (nix/eval), nix/check-units.nix and tests/vm (as JSON:
# `nix-instantiate --eval --strict --json nix/daemons.nix`).
#
# A new daemon is one entry here plus modules/<its module>.nix with only its
# own options and nix/units/<unit>.nix (docs/adding-a-daemon.md).
#
# Fields:
#   crate        the Cargo package, its binary, and its package attribute
#                (hwc.ai.packages.<crate>, pkgs.<crate> with the overlay);
#   attr         its options: hwc.ai.<attr>;
#   component    the `component` label of its metrics (dashboards, alerts)
#                and its name as a health prober target;
#   description  the package's meta.description;
#   port         the default of hwc.ai.<attr>.port (8470 onwards);
#   unit         its systemd unit;
#   unitFile     the unit as plain data: nix/units/<unitFile>, a function
#                of at least { bin; configFile; credentials; };
#   probe        how the health prober probes it (its `kind`), or null for
#                not probed (the prober does not probe itself);
#   auth         the `[auth]` schema of its configuration: "tokens" is
#                hwc-ai-core's (token_files and [[auth.tokens]] with roles,
#                the module's tokenFiles/tokens options); "keys" is the
#                router's own keys file (docs/router.md);
#   settings     the sections its configuration shares with every daemon,
#                which the module builder fills in: server (listen), auth,
#                telemetry (docs/configuration.md);
#   doc          where its own configuration keys are documented.
[
  {
    crate = "hwc-model-router";
    attr = "router";
    component = "router";
    description = "OpenAI-compatible gateway in front of Ollama, vLLM, llama.cpp and cloud providers";
    port = 8470;
    unit = "hwc-model-router.service";
    unitFile = "router.nix";
    probe = "hwc";
    auth = "keys";
    settings = [
      "server"
      "auth"
      "telemetry"
    ];
    doc = "docs/router.md";
  }
  {
    crate = "hwc-health-prober";
    attr = "healthProber";
    component = "health-prober";
    description = "Probes every runtime and daemon, restarts failed units over D-Bus";
    port = 8473;
    unit = "hwc-health-prober.service";
    unitFile = "health-prober.nix";
    probe = null;
    auth = "tokens";
    settings = [
      "server"
      "auth"
      "telemetry"
    ];
    doc = "docs/health-prober.md";
  }
  {
    crate = "hwc-model-manager";
    attr = "modelManager";
    component = "model-manager";
    description = "Declared models: pull, pin, verify, update, prune, disk guard";
    port = 8474;
    unit = "hwc-model-manager.service";
    unitFile = "model-manager.nix";
    probe = "hwc";
    auth = "tokens";
    settings = [
      "server"
      "auth"
      "telemetry"
    ];
    doc = "docs/model-manager.md";
  }
  {
    crate = "hwc-mcp-bridge";
    attr = "mcp";
    component = "mcp-bridge";
    description = "Streamable HTTP front for stdio MCP servers: supervised children, both protocol eras, tool policy";
    port = 8471;
    unit = "hwc-mcp-bridge.service";
    unitFile = "mcp-bridge.nix";
    probe = "hwc";
    auth = "tokens";
    settings = [
      "server"
      "auth"
      "telemetry"
    ];
    doc = "docs/mcp-bridge.md";
  }
  {
    crate = "hwc-agent-runner";
    attr = "agent";
    component = "agent-runner";
    description = "Operations agent gated by an R0-R3 policy, with approvals and a tamper-evident audit";
    port = 8472;
    unit = "hwc-agent-runner.service";
    unitFile = "agent-runner.nix";
    probe = "hwc";
    auth = "tokens";
    settings = [
      "server"
      "auth"
      "telemetry"
    ];
    doc = "docs/agent-runner.md";
  }
]
