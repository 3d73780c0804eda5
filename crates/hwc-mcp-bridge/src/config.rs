//! The bridge's configuration: `[server]`, `[telemetry]`, `[auth]`,
//! `[http]` and one `[[servers]]` entry per stdio MCP server.
//! docs/mcp-bridge.md documents every key; examples/mcp-bridge.toml is a
//! full example.

use hwc_ai_core::auth::AuthConfig;
use hwc_ai_core::backoff::{Backoff, Jitter};
use hwc_ai_core::config::Validate;
use hwc_ai_core::process::{Limits, RestartPolicy};
use hwc_ai_core::server::ServerConfig;
use hwc_ai_core::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default port of the bridge.
pub const DEFAULT_PORT: u16 = 8471;

/// The whole configuration, as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// Listener and limits shared by every daemon.
    pub server: ServerConfig,
    /// Trace export and sampling, shared by every daemon.
    pub telemetry: TelemetryConfig,
    /// Bearer tokens; `scopes` name servers (`time`) or tools (`time/get_current_time`).
    pub auth: AuthConfig,
    /// Origin and Host validation, sessions.
    pub http: HttpConfig,
    /// The stdio MCP servers, one child each.
    pub servers: Vec<ServerEntry>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::on_port(DEFAULT_PORT),
            telemetry: TelemetryConfig::default(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            servers: Vec::new(),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `Origin` values accepted besides none at all; any other gets 403.
    pub allowed_origins: Vec<String>,
    /// `Host` values (port ignored) accepted; the listen host is added.
    pub allowed_hosts: Vec<String>,
    /// Most session-era sessions kept at once; the least recently used is
    /// ended (404 on its next request) to make room.
    pub max_sessions: usize,
    /// A session unused this long is ended.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_hosts: vec!["127.0.0.1".into(), "localhost".into(), "::1".into()],
            max_sessions: 4096,
            session_idle_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// How clients share children.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// One child for every session (requests multiplexed onto it).
    #[default]
    Shared,
    /// A child per session, at most `max_children` ([`crate::isolation`]).
    PerSession,
}

/// `[servers.restart]`: the restart backoff of a child.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    /// Delay before the first restart (doubling, jittered).
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// Longest delay between restarts.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Most restarts within `window`; beyond it the server is left failed.
    pub max_restarts: u32,
    /// The window `max_restarts` counts in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_restarts: 10,
            window: Duration::from_secs(300),
        }
    }
}

impl RestartConfig {
    /// The core's restart policy for these values.
    pub fn policy(&self) -> RestartPolicy {
        RestartPolicy {
            backoff: Backoff {
                base: self.base,
                max: self.max,
                jitter: Jitter::Half,
            },
            max_restarts: self.max_restarts,
            window: self.window,
            ..RestartPolicy::default()
        }
    }
}

/// One `[[servers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerEntry {
    /// `[a-z0-9][a-z0-9_-]*`, unique; the URL is `/mcp/<name>`.
    pub name: String,
    /// Absolute path, or a name looked up in `PATH`.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Plain environment values.
    pub env: BTreeMap<String, String>,
    /// `VAR = file`: the variable gets the file's content (relative files
    /// under `$CREDENTIALS_DIRECTORY`), read at start, never logged.
    pub env_files: BTreeMap<String, PathBuf>,
    /// Working directory of the child.
    pub cwd: Option<PathBuf>,
    /// Tools clients may see and call; all when absent.
    pub allowed_tools: Option<Vec<String>>,
    /// Tools never shown nor called; wins over `allowed_tools`.
    pub denied_tools: Vec<String>,
    /// `tools/call` requests in flight at once; more wait up to `call_timeout`.
    pub max_concurrent_calls: usize,
    /// Longest a request may take (waiting for a slot included).
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Largest message accepted from the child; a larger one is dropped and
    /// its caller gets a JSON-RPC error.
    pub max_result_bytes: usize,
    /// `shared` (one child, sessions multiplexed onto it) or `per-session`
    /// (a child per session, at most `max_children`; no stateless or
    /// OpenAPI requests).
    pub isolation: Isolation,
    /// Children at most with `isolation = "per-session"`.
    pub max_children: usize,
    /// `/readyz` fails while this server is down.
    pub required: bool,
    /// Time between pings of the child.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A ping not answered within this restarts the child.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// Resource limits of the child and what it forks.
    pub limits: Limits,
    /// Restart backoff.
    pub restart: RestartConfig,
}

impl Default for ServerEntry {
    fn default() -> Self {
        Self {
            name: String::new(),
            command: String::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_files: BTreeMap::new(),
            cwd: None,
            allowed_tools: None,
            denied_tools: Vec::new(),
            max_concurrent_calls: 16,
            call_timeout: Duration::from_secs(60),
            max_result_bytes: 1024 * 1024,
            isolation: Isolation::Shared,
            max_children: 8,
            required: true,
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            restart: RestartConfig::default(),
        }
    }
}

/// True for `[a-z0-9][a-z0-9_-]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The program for `command`: an absolute path that exists, or the first
/// match in `path` (a `PATH` value); an error saying what to change.
pub fn resolve_command(command: &str, path: Option<&std::ffi::OsStr>) -> Result<PathBuf, String> {
    let p = Path::new(command);
    if p.is_absolute() {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "command `{command}` does not exist; install it or fix the path"
            ))
        };
    }
    if command.contains('/') {
        return Err(format!(
            "command `{command}` is a relative path; give an absolute path or a bare name found in PATH"
        ));
    }
    path.into_iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(command))
        .find(|c| c.is_file())
        .ok_or_else(|| {
            format!("command `{command}` is not in PATH; give its absolute path or install it")
        })
}

impl BridgeConfig {
    /// True when the listen address is a loopback one.
    pub fn listens_on_loopback(&self) -> bool {
        self.server.listen.ip().is_loopback()
    }

    /// The Host values accepted: `http.allowed_hosts` plus the listen host.
    pub fn effective_hosts(&self) -> Vec<String> {
        let mut hosts = self.http.allowed_hosts.clone();
        let ip = self.server.listen.ip();
        if !ip.is_unspecified() {
            hosts.push(ip.to_string());
        }
        hosts
    }

    fn server_problems(&self, s: &ServerEntry, i: usize) -> Vec<String> {
        let who = if s.name.is_empty() {
            format!("servers[{i}]")
        } else {
            format!("server `{}`", s.name)
        };
        let mut p = Vec::new();
        if s.name.is_empty() {
            p.push(format!("{who}: `name` is required"));
        } else if !valid_name(&s.name) {
            p.push(format!(
                "{who}: the name must match [a-z0-9][a-z0-9_-]* (it is part of the URL /mcp/<name>)"
            ));
        }
        if s.command.is_empty() {
            p.push(format!("{who}: `command` is required"));
        }
        if s.max_concurrent_calls == 0 {
            p.push(format!(
                "{who}: max_concurrent_calls is 0, which refuses every call; set it to at least 1"
            ));
        }
        if s.call_timeout.is_zero() || s.ping_timeout.is_zero() || s.ping_interval.is_zero() {
            p.push(format!(
                "{who}: call_timeout, ping_interval and ping_timeout must be longer than 0"
            ));
        }
        if s.max_result_bytes < 1024 {
            p.push(format!(
                "{who}: max_result_bytes is {}; set at least 1024 (an initialize result alone is larger)",
                s.max_result_bytes
            ));
        }
        if s.max_children == 0 {
            p.push(format!("{who}: max_children must be at least 1"));
        }
        if s.restart.base.is_zero() || s.restart.max < s.restart.base {
            p.push(format!(
                "{who}: restart.base must be above 0 and restart.max at least restart.base"
            ));
        }
        if s.restart.max_restarts == 0 {
            p.push(format!("{who}: restart.max_restarts must be at least 1"));
        }
        for var in s.env.keys().chain(s.env_files.keys()) {
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                p.push(format!(
                    "{who}: `{var}` is not a valid environment variable name"
                ));
            }
        }
        for var in s.env_files.keys() {
            if s.env.contains_key(var) {
                p.push(format!(
                    "{who}: `{var}` is set in both env and env_files; keep one"
                ));
            }
        }
        p
    }
}

impl Validate for BridgeConfig {
    fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = self.server.problems();
        p.extend(self.telemetry.problems());
        let mut seen = HashSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            p.extend(self.server_problems(s, i));
            if !s.name.is_empty() && !seen.insert(s.name.as_str()) {
                p.push(format!("server `{}`: the name is used twice", s.name));
            }
        }
        let no_tokens = self.auth.token_files.is_empty() && self.auth.tokens.is_empty();
        if no_tokens && !self.listens_on_loopback() {
            p.push(format!(
                "server.listen is {} (not loopback) and [auth] has no token: anyone could call tools; add [[auth.tokens]] or listen on 127.0.0.1",
                self.server.listen
            ));
        }
        let names: HashSet<&str> = self.servers.iter().map(|s| s.name.as_str()).collect();
        for t in &self.auth.tokens {
            for scope in t.scopes.iter().flatten() {
                let server = scope.split('/').next().unwrap_or("");
                if !names.contains(server) {
                    p.push(format!(
                        "auth token {}: scope `{scope}` names no configured server",
                        t.file.display()
                    ));
                }
            }
        }
        if self.http.max_sessions == 0 || self.http.session_idle_timeout.is_zero() {
            p.push("http.max_sessions and http.session_idle_timeout must be above 0".into());
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<BridgeConfig, String> {
        hwc_ai_core::config::load_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_a_full_entry() {
        let c = parse(
            "[[servers]]\nname = \"time\"\ncommand = \"/bin/true\"\ncall_timeout = \"2s\"\n\
             allowed_tools = [\"a\"]\n[servers.limits]\nopen_files = 64\n[servers.restart]\nbase = \"1s\"\nmax = \"10s\"\n",
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), DEFAULT_PORT);
        let s = &c.servers[0];
        assert_eq!(s.call_timeout, Duration::from_secs(2));
        assert_eq!(s.max_concurrent_calls, 16);
        assert_eq!(s.limits.open_files, Some(64));
        assert_eq!(s.restart.policy().backoff.max, Duration::from_secs(10));
        assert_eq!(s.allowed_tools.as_deref(), Some(&["a".to_string()][..]));
    }

    #[test]
    fn problems_name_the_server_and_the_fix() {
        let cases = [
            ("[[servers]]\nname = \"Time\"\ncommand = \"x\"\n", "must match [a-z0-9]"),
            ("[[servers]]\nname = \"a\"\ncommand = \"x\"\n[[servers]]\nname = \"a\"\ncommand = \"y\"\n", "server `a`: the name is used twice"),
            ("[[servers]]\nname = \"a\"\n", "`command` is required"),
            ("[[servers]]\nname = \"a\"\ncommand = \"x\"\nisolation = \"pooled\"\n", "pooled"),
            ("[[servers]]\nname = \"a\"\ncommand = \"x\"\nmax_concurrent_calls = 0\n", "max_concurrent_calls is 0"),
            ("[[servers]]\nname = \"a\"\ncommand = \"x\"\ntimeout = \"1s\"\n", "timeout"),
            ("[server]\nlisten = \"0.0.0.0:8471\"\n", "not loopback"),
            ("[[auth.tokens]]\nfile = \"t\"\nrole = \"requester\"\nscopes = [\"git\"]\n", "scope `git` names no configured server"),
        ];
        for (toml, want) in cases {
            let e = parse(toml).unwrap_err();
            assert!(e.contains(want), "want `{want}` in: {e}");
        }
    }

    #[test]
    fn names_and_commands() {
        for (n, ok) in [
            ("time", true),
            ("a_b-9", true),
            ("9x", true),
            ("-x", false),
            ("", false),
            ("A", false),
            ("a/b", false),
        ] {
            assert_eq!(valid_name(n), ok, "{n}");
        }
        assert!(resolve_command("/bin/sh", None).is_ok());
        assert!(resolve_command("/nonexistent/x", None)
            .unwrap_err()
            .contains("does not exist"));
        assert!(resolve_command("sh", Some(std::ffi::OsStr::new("/usr/bin:/bin"))).is_ok());
        assert!(
            resolve_command("no-such-cmd-xyz", Some(std::ffi::OsStr::new("/bin")))
                .unwrap_err()
                .contains("not in PATH")
        );
        assert!(resolve_command("./x", None)
            .unwrap_err()
            .contains("relative"));
    }

    #[test]
    fn hosts_include_the_listen_host() {
        let c = parse("[server]\nlisten = \"127.0.0.2:1\"\n").unwrap();
        assert!(c.effective_hosts().contains(&"127.0.0.2".to_string()));
    }
}
