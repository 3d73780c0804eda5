//! Header rules: `Origin` and `Host` validation (DNS rebinding), protocol
//! version negotiation, and the 2026-07-28 standard request headers
//! (`Mcp-Method`, `Mcp-Name`) checked against the body.
//!
//! The `Mcp-Method`/`Mcp-Name` check is ported from the official Rust SDK
//! `rmcp` 3.11.0, `src/transport/common/mcp_headers.rs`
//! (`validate_request_headers`, `extract_name`, `decode_header_value`,
//! `header_str`), Copyright the rmcp authors, licensed Apache-2.0 (as is
//! this project). Changes: errors as plain strings. The `Mcp-Param-*`
//! checks ([`validate_param_headers`], against the tool's input schema as
//! the child last listed it) are this project's own.

use axum::http::HeaderMap;
use base64::Engine;
use hwc_ai_core::origin::{self, host_of};
use serde_json::Value;

/// The session-era revisions served, newest first.
pub const SESSION_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// The stateless revision served.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// Every revision served, newest first.
pub const ALL_VERSIONS: [&str; 4] = [STATELESS_VERSION, "2025-11-25", "2025-06-18", "2025-03-26"];
/// `_meta` key carrying the protocol version of a stateless request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key of a 2026-07-28 request's client capabilities.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

const HEADER_MCP_METHOD: &str = "Mcp-Method";
const HEADER_MCP_NAME: &str = "Mcp-Name";
const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// The version to answer a session-era `initialize` with: the client's
/// when served, else the newest served.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SESSION_VERSIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(SESSION_VERSIONS[0])
}

/// Ok when `origin` is absent, listed, or the bridge's own origin (its
/// authority equals the request's `Host`, which `check_host` then
/// validates: a same-origin request is no DNS-rebinding vector, and the
/// conformance suite's `dns-rebinding-protection` sends one); the
/// offending value otherwise. The rule is core's
/// ([`hwc_ai_core::origin::origin_allowed`]), shared with the agent runner.
pub fn check_origin(
    origin: Option<&str>,
    host: Option<&str>,
    allowed: &[String],
) -> Result<(), String> {
    match origin {
        Some(o) if !origin::origin_allowed(origin, host, allowed) => Err(format!(
            "Origin `{o}` is not allowed; add it to http.allowed_origins if this web page may use the bridge"
        )),
        _ => Ok(()),
    }
}

/// Ok when `host` (a `Host` header value) is in `allowed` (port ignored);
/// a missing Host is refused (HTTP/1.1 requires it).
pub fn check_host(host: Option<&str>, allowed: &[String]) -> Result<(), String> {
    let Some(h) = host else {
        return Err("no Host header".into());
    };
    if origin::host_allowed(host, allowed) {
        Ok(())
    } else {
        Err(format!(
            "Host `{h}` is not allowed; add `{}` to http.allowed_hosts if clients reach the bridge under that name",
            host_of(h)
        ))
    }
}

/// Methods whose `Mcp-Name` comes from `params.name`.
const NAME_FROM_NAME: &[&str] = &["tools/call", "prompts/get"];
/// Methods whose `Mcp-Name` comes from `params.uri`.
const NAME_FROM_URI: &[&str] = &[
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
];
/// Methods whose `Mcp-Name` comes from `params.taskId` (tasks extension).
const NAME_FROM_TASK_ID: &[&str] = &["tasks/get", "tasks/update", "tasks/cancel"];

/// The `Mcp-Name` value for a request, if its method carries one.
fn extract_name(method: &str, params: Option<&Value>) -> Option<String> {
    let params = params?;
    let key = if NAME_FROM_NAME.contains(&method) {
        "name"
    } else if NAME_FROM_URI.contains(&method) {
        "uri"
    } else if NAME_FROM_TASK_ID.contains(&method) {
        "taskId"
    } else {
        return None;
    };
    params.get(key)?.as_str().map(str::to_owned)
}

/// Reverses the `=?base64?...?=` sentinel; `None` for invalid Base64/UTF-8.
fn decode_header_value(value: &str) -> Option<String> {
    match value
        .strip_prefix(BASE64_PREFIX)
        .and_then(|inner| inner.strip_suffix(BASE64_SUFFIX))
    {
        Some(inner) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(inner)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(value.to_owned()),
    }
}

/// The sole value of `name`; duplicates and non-visible-ASCII values are errors.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("duplicate {name} header"));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| format!("{name} header contains invalid characters"))
}

/// Checks `Mcp-Method` and `Mcp-Name` against the request body: `Err`
/// (the reason) maps to JSON-RPC -32020, HTTP 400.
pub fn validate_request_headers(headers: &HeaderMap, request: &Value) -> Result<(), String> {
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return Ok(());
    };
    let params = request.get("params");
    match header_str(headers, HEADER_MCP_METHOD)? {
        None => return Err("missing required Mcp-Method header".to_owned()),
        Some(value) if value != method => {
            return Err(format!(
                "Mcp-Method header `{value}` does not match body method `{method}`"
            ));
        }
        Some(_) => {}
    }
    if let Some(expected) = extract_name(method, params) {
        match header_str(headers, HEADER_MCP_NAME)? {
            None => return Err(format!("missing required Mcp-Name header for `{method}`")),
            Some(raw) => {
                let decoded = decode_header_value(raw)
                    .ok_or_else(|| "Mcp-Name header is not valid Base64".to_owned())?;
                if decoded != expected {
                    return Err(format!(
                        "Mcp-Name header `{decoded}` does not match body value `{expected}`"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A parameter a tool mirrors into a header (`x-mcp-header` in its input
/// schema), found through `properties` keys only, as the spec requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The header's name after `Mcp-Param-`.
    pub name: String,
    /// The chain of `properties` keys from the schema root.
    pub path: Vec<String>,
}

/// Every `x-mcp-header` of `schema` statically reachable from its root
/// (annotations behind `items`, composition keywords or `$ref` are not
/// reachable and not honoured; a client must not list such a tool).
pub fn param_headers(schema: &Value) -> Vec<ParamHeader> {
    fn walk(schema: &Value, path: &mut Vec<String>, out: &mut Vec<ParamHeader>) {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (key, sub) in props {
            path.push(key.clone());
            if let Some(name) = sub.get("x-mcp-header").and_then(Value::as_str) {
                if !name.is_empty() && out.len() < 64 {
                    out.push(ParamHeader {
                        name: name.to_string(),
                        path: path.clone(),
                    });
                }
            }
            if path.len() < 16 {
                walk(sub, path, out);
            }
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out);
    out
}

/// Whether a header's (decoded) text is the body's primitive `value`:
/// strings as they are, integers numerically (`42.0` is `42`), booleans
/// as `true`/`false`.
fn param_matches(header: &str, value: &Value) -> bool {
    match value {
        Value::String(s) => header == s,
        Value::Bool(b) => header == if *b { "true" } else { "false" },
        Value::Number(n) => match (header.trim().parse::<f64>(), n.as_f64()) {
            (Ok(h), Some(v)) => h == v,
            _ => false,
        },
        _ => false,
    }
}

/// Checks the `Mcp-Param-*` headers of a `tools/call` against its
/// arguments, by the tool's input schema: a value present in the body
/// needs its header, decoded equal; `Err` (the reason) is -32020, HTTP 400.
pub fn validate_param_headers(
    headers: &HeaderMap,
    schema: &Value,
    arguments: Option<&Value>,
) -> Result<(), String> {
    for p in param_headers(schema) {
        let header = format!("mcp-param-{}", p.name.to_ascii_lowercase());
        let raw = header_str(headers, &header)?;
        let value = arguments.and_then(|a| {
            p.path
                .iter()
                .try_fold(a, |v, k| v.get(k))
                .filter(|v| !v.is_null())
        });
        let Some(value) = value else {
            continue;
        };
        let Some(raw) = raw else {
            return Err(format!(
                "missing Mcp-Param-{} header: the tool mirrors argument `{}` into it",
                p.name,
                p.path.join(".")
            ));
        };
        let decoded = decode_header_value(raw)
            .ok_or_else(|| format!("Mcp-Param-{} header is not valid Base64", p.name))?;
        if !param_matches(&decoded, value) {
            return Err(format!(
                "Mcp-Param-{} header `{decoded}` does not match body value {value} of `{}`",
                p.name,
                p.path.join(".")
            ));
        }
    }
    Ok(())
}

/// The `MCP-Protocol-Version` header, if present and readable.
pub fn protocol_version_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};
    use serde_json::json;

    #[test]
    fn param_headers_are_found_through_properties_only() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "query": {"type": "string"},
            "opts": {"type": "object", "properties": {
                "dry": {"type": "boolean", "x-mcp-header": "Dry"}}},
            "list": {"type": "array", "items": {"properties": {
                "x": {"type": "string", "x-mcp-header": "X"}}}},
            "alt": {"anyOf": [{"type": "string", "x-mcp-header": "Alt"}]}
        }});
        let mut got = param_headers(&schema);
        got.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            got,
            vec![
                ParamHeader {
                    name: "Dry".into(),
                    path: vec!["opts".into(), "dry".into()]
                },
                ParamHeader {
                    name: "Region".into(),
                    path: vec!["region".into()]
                },
            ]
        );
        assert!(param_headers(&json!(null)).is_empty());
    }

    #[test]
    fn param_headers_match_the_body() {
        let schema = json!({"properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "n": {"type": "integer", "x-mcp-header": "N"},
            "dry": {"type": "boolean", "x-mcp-header": "Dry"}}});
        let args = json!({"region": "us-west1", "n": 42, "dry": false});
        let ok = hm(&[
            ("mcp-param-region", "us-west1"),
            ("mcp-param-n", "42.0"),
            ("mcp-param-dry", "false"),
        ]);
        assert_eq!(validate_param_headers(&ok, &schema, Some(&args)), Ok(()));
        // Base64 sentinel, decoded before comparing.
        let args_utf8 = json!({"region": "Hello, 世界"});
        let b64 = hm(&[("mcp-param-region", "=?base64?SGVsbG8sIOS4lueVjA==?=")]);
        assert_eq!(
            validate_param_headers(&b64, &schema, Some(&args_utf8)),
            Ok(())
        );
        // Absent or null in the body: no header expected.
        assert_eq!(
            validate_param_headers(&hm(&[]), &schema, Some(&json!({"region": null}))),
            Ok(())
        );
        assert_eq!(validate_param_headers(&hm(&[]), &schema, None), Ok(()));
        for (headers, args, why) in [
            (hm(&[]), json!({"region": "eu"}), "missing Mcp-Param-Region"),
            (
                hm(&[("mcp-param-region", "us")]),
                json!({"region": "eu"}),
                "does not match",
            ),
            (
                hm(&[("mcp-param-n", "41")]),
                json!({"n": 42}),
                "does not match",
            ),
            (
                hm(&[("mcp-param-dry", "False")]),
                json!({"dry": false}),
                "does not match",
            ),
            (
                hm(&[("mcp-param-region", "=?base64?***?=")]),
                json!({"region": "x"}),
                "not valid Base64",
            ),
        ] {
            let e = validate_param_headers(&headers, &schema, Some(&args)).unwrap_err();
            assert!(e.contains(why), "{args}: {e}");
        }
        let mut bad = HeaderMap::new();
        bad.insert(
            "mcp-param-region",
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        let e = validate_param_headers(&bad, &schema, Some(&json!({"region": "x"}))).unwrap_err();
        assert!(e.contains("invalid characters"), "{e}");
    }

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2024-11-05")), "2025-11-25");
        assert_eq!(negotiate(Some("2026-07-28")), "2025-11-25");
        assert_eq!(negotiate(None), "2025-11-25");
    }

    #[test]
    fn origin_and_host() {
        let allowed = vec!["http://webui.lan:8080".to_string()];
        let host = Some("127.0.0.1:8471");
        assert!(check_origin(None, host, &allowed).is_ok());
        assert!(check_origin(Some("http://webui.lan:8080"), host, &allowed).is_ok());
        assert!(check_origin(Some("http://evil.example"), host, &allowed)
            .unwrap_err()
            .contains("evil"));
        // The bridge's own origin (same authority as Host) is accepted;
        // another port or name on the same machine is not.
        assert!(check_origin(Some("http://127.0.0.1:8471"), host, &allowed).is_ok());
        assert!(check_origin(Some("http://127.0.0.1:3000"), host, &allowed).is_err());
        assert!(check_origin(Some("http://localhost:8471"), host, &allowed).is_err());
        assert!(check_origin(Some("http://127.0.0.1:8471"), None, &allowed).is_err());
        assert!(check_origin(Some("null"), Some("null"), &allowed).is_err());
        // The host table itself is core's (hwc_ai_core::origin); here the
        // bridge's answers.
        let hosts: Vec<String> = vec!["127.0.0.1".into(), "::1".into()];
        assert!(check_host(Some("[::1]:8471"), &hosts).is_ok());
        let e = check_host(Some("evil.example:8471"), &hosts).unwrap_err();
        assert!(
            e.contains("add `evil.example` to http.allowed_hosts"),
            "{e}"
        );
        assert_eq!(check_host(None, &hosts).unwrap_err(), "no Host header");
    }

    #[test]
    fn standard_headers_against_the_body() {
        let call = json!({"method": "tools/call", "params": {"name": "get_current_time"}});
        type Row<'a> = (Vec<(&'a str, &'a str)>, &'a Value, Result<(), &'a str>);
        let table: Vec<Row> = vec![
            (
                vec![
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "get_current_time"),
                ],
                &call,
                Ok(()),
            ),
            (
                vec![
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "=?base64?Z2V0X2N1cnJlbnRfdGltZQ==?="),
                ],
                &call,
                Ok(()),
            ),
            (
                vec![("Mcp-Name", "get_current_time")],
                &call,
                Err("missing required Mcp-Method"),
            ),
            (
                vec![("Mcp-Method", "tools/list")],
                &call,
                Err("does not match body method"),
            ),
            (
                vec![("Mcp-Method", "tools/call")],
                &call,
                Err("missing required Mcp-Name"),
            ),
            (
                vec![("Mcp-Method", "tools/call"), ("Mcp-Name", "other")],
                &call,
                Err("does not match body value"),
            ),
            (
                vec![("Mcp-Method", "tools/call"), ("Mcp-Name", "=?base64?!!?=")],
                &call,
                Err("not valid Base64"),
            ),
            (
                vec![
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "get_current_time"),
                ],
                &call,
                Err("duplicate"),
            ),
        ];
        for (headers, body, want) in table {
            let got = validate_request_headers(&hm(&headers), body);
            match want {
                Ok(()) => assert!(got.is_ok(), "{headers:?}: {got:?}"),
                Err(w) => assert!(
                    got.as_ref().unwrap_err().contains(w),
                    "{headers:?}: {got:?}"
                ),
            }
        }
        let list = json!({"method": "tools/list"});
        assert!(validate_request_headers(&hm(&[("Mcp-Method", "tools/list")]), &list).is_ok());
        let read = json!({"method": "resources/read", "params": {"uri": "file:///x"}});
        assert!(validate_request_headers(
            &hm(&[("Mcp-Method", "resources/read"), ("Mcp-Name", "file:///x")]),
            &read
        )
        .is_ok());
    }
}
