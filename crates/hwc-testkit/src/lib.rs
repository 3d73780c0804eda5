//! Real peers for integration tests, shared by every daemon crate so no two
//! test suites start them differently.

pub mod actions;
pub mod daemon;
pub mod inprocess;
pub mod kube;
pub mod llama;
pub mod mcp;
pub mod phoenix;
pub mod postgres;
pub mod scripted;

/// A loopback TCP port that was free a moment ago (the kernel's pick). For
/// a peer that binds it itself, or for an address nothing listens on.
#[allow(clippy::unwrap_used)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sum of the samples of metric `name` in a Prometheus text
/// exposition whose lines contain every one of `needles` (label pairs such
/// as `outcome="ok"`); `None` when no line matches. A test asserts on what
/// a daemon exports with it instead of parsing the text its own way.
pub fn metric(text: &str, name: &str, needles: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

/// A command that runs `program` (give it args and env as usual) in the
/// background of a shell which kills it when its stdin, a pipe of ours,
/// closes: so a peer dies with the test process however that ends, even
/// SIGKILLed. Its output goes to `log`, or nowhere.
pub fn held_by_pipe(
    program: &std::path::Path,
    log: Option<&std::path::Path>,
) -> std::process::Command {
    const SCRIPT: &str = r#"
        "$0" "$@" >"$HWC_TESTKIT_HELD_LOG" 2>&1 &
        pid=$!
        cat >/dev/null
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    "#;
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg(program)
        .env(
            "HWC_TESTKIT_HELD_LOG",
            log.unwrap_or(std::path::Path::new("/dev/null")),
        )
        .stdin(std::process::Stdio::piped());
    cmd
}

/// Status and body of a plain HTTP/1.0 GET on loopback, without an async
/// runtime; `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// What snapshot tests compare: the parts of `/status` and `/metrics` that
/// the CLI and the dashboards rely on, without the values that change.
pub mod snapshot {
    use serde_json::Value;

    /// `v` with every leaf replaced by its type (`"<number>"`, `"<string>"`,
    /// `"<bool>"`; null stays null) and keys sorted: the shape of a
    /// `/status` document. Sorted because serde_json's key order depends on
    /// whether some crate in the build enables its `preserve_order`.
    pub fn shape(v: &Value) -> Value {
        match v {
            Value::Null => Value::Null,
            Value::Bool(_) => "<bool>".into(),
            Value::Number(_) => "<number>".into(),
            Value::String(_) => "<string>".into(),
            Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
            Value::Object(o) => {
                let mut entries: Vec<_> = o.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), shape(v)))
                        .collect(),
                )
            }
        }
    }

    /// The `# HELP` and `# TYPE` lines of a metrics page, sorted: the names,
    /// types and help texts dashboards and alerts are written against.
    pub fn metric_families(text: &str) -> String {
        let mut lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("# HELP ") || l.starts_with("# TYPE "))
            .collect();
        lines.sort_by_key(|l| (l.split(' ').nth(2).unwrap_or(""), l.starts_with("# TYPE")));
        lines.dedup();
        lines.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_sums_the_matching_samples() {
        let text = "# HELP hwc_router_requests Model requests\n\
            hwc_router_requests_total{model=\"m\",backend=\"a\",outcome=\"ok\"} 2\n\
            hwc_router_requests_total{model=\"m\",backend=\"b\",outcome=\"ok\"} 3\n\
            hwc_router_requests_total{model=\"m\",backend=\"b\",outcome=\"cancelled\"} 1\n";
        let m = |needles: &[&str]| super::metric(text, "hwc_router_requests_total", needles);
        assert_eq!(m(&["outcome=\"ok\""]), Some(5.0));
        assert_eq!(m(&["backend=\"b\"", "outcome=\"cancelled\""]), Some(1.0));
        assert_eq!(m(&["outcome=\"failed\""]), None);
    }
}
