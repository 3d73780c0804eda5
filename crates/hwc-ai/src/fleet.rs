//! The daemons of the fleet as the CLI knows them: the same names, units
//! and default ports as the NixOS registry (nix/daemons.nix; a test in
//! tests/nix keeps the two equal). A `cli.toml` table is named by the
//! daemon's `component`.

use serde::Serialize;

/// One daemon of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Daemon {
    /// Its `component` (the `cli.toml` table, the metrics' `component` label).
    pub component: &'static str,
    /// Its name (`hwc-model-router`).
    pub name: &'static str,
    /// Its systemd unit.
    pub unit: &'static str,
    /// Its default port on loopback.
    pub port: u16,
}

impl Daemon {
    /// `http://127.0.0.1:<port>`.
    pub fn default_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The router.
pub const ROUTER: Daemon = Daemon {
    component: "router",
    name: "hwc-model-router",
    unit: "hwc-model-router.service",
    port: 8470,
};
/// The MCP bridge.
pub const BRIDGE: Daemon = Daemon {
    component: "mcp-bridge",
    name: "hwc-mcp-bridge",
    unit: "hwc-mcp-bridge.service",
    port: 8471,
};
/// The agent runner.
pub const RUNNER: Daemon = Daemon {
    component: "agent-runner",
    name: "hwc-agent-runner",
    unit: "hwc-agent-runner.service",
    port: 8472,
};
/// The health prober.
pub const PROBER: Daemon = Daemon {
    component: "health-prober",
    name: "hwc-health-prober",
    unit: "hwc-health-prober.service",
    port: 8473,
};
/// The model manager.
pub const MANAGER: Daemon = Daemon {
    component: "model-manager",
    name: "hwc-model-manager",
    unit: "hwc-model-manager.service",
    port: 8474,
};

/// Every daemon, by port.
pub const ALL: [Daemon; 5] = [ROUTER, BRIDGE, RUNNER, PROBER, MANAGER];

/// The daemon whose component is `component`.
pub fn by_component(component: &str) -> Option<Daemon> {
    ALL.into_iter().find(|d| d.component == component)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NixOS registry and this table say the same of every daemon.
    #[test]
    fn the_registry_and_the_cli_agree() {
        let registry = include_str!("../../../nix/daemons.nix");
        let entries: Vec<&str> = registry.split("crate = \"").skip(1).collect();
        assert_eq!(entries.len(), ALL.len(), "a daemon missing on one side");
        for d in ALL {
            let e = entries
                .iter()
                .find(|e| e.starts_with(&format!("{}\"", d.name)))
                .unwrap_or_else(|| panic!("{} is not in nix/daemons.nix", d.name));
            for want in [
                format!("component = \"{}\";", d.component),
                format!("port = {};", d.port),
                format!("unit = \"{}\";", d.unit),
            ] {
                assert!(
                    e.contains(&want),
                    "{}: nix/daemons.nix lacks `{want}`",
                    d.name
                );
            }
        }
    }
}
