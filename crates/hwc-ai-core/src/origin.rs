//! `Origin` and `Host` checks every daemon that a browser may reach can
//! share: a request's `Origin` is accepted when absent, listed, or the
//! daemon's own (its authority equals the request's `Host`); a `Host` when
//! its name (port ignored) is listed. Pure functions over header values, so
//! each daemon phrases its own refusal (the MCP bridge as JSON-RPC, the
//! agent runner as the fleet's error JSON).

use axum::http::{header, HeaderMap, Uri};

/// A request's `Origin` (`"<invalid>"` when it is not visible ASCII, so
/// it is refused like any foreign origin) and `Host` (the header, or the
/// URI's authority where HTTP/2 carries it there).
pub fn origin_and_host<'a>(
    headers: &'a HeaderMap,
    uri: &'a Uri,
) -> (Option<&'a str>, Option<&'a str>) {
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("<invalid>"));
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    (origin, host)
}

/// Whether `origin` (an `Origin` header value) is the origin of the
/// request itself: `http://` or `https://` followed by exactly `host` (the
/// request's `Host` header value, port included), compared without case.
/// `null`, other schemes and a missing `host` are never the same origin.
pub fn is_same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((authority, host), (Some(a), Some(h)) if !a.is_empty() && a.eq_ignore_ascii_case(h))
}

/// Whether a request with `origin` may proceed: no `Origin` at all (not a
/// browser, or a same-origin GET), an origin in `allowed` (compared without
/// case), or the request's own origin ([`is_same_origin`]).
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    match origin {
        None => true,
        Some(o) => allowed.iter().any(|a| a.eq_ignore_ascii_case(o)) || is_same_origin(o, host),
    }
}

/// The host part of a `Host` header value: `[::1]:8471` → `::1`,
/// `localhost:8471` → `localhost`.
pub fn host_of(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match value.rsplit_once(':') {
        // A bare IPv6 address has more than one colon: no port to strip.
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => value,
    }
}

/// Whether `host` (a `Host` header value) names one of `allowed` (port
/// ignored, compared without case); a missing `Host` never does.
pub fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    host.is_some_and(|h| {
        let name = host_of(h);
        allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_is_scheme_plus_the_host_header() {
        let host = Some("127.0.0.1:8472");
        assert!(is_same_origin("http://127.0.0.1:8472", host));
        assert!(is_same_origin("https://127.0.0.1:8472", host));
        assert!(is_same_origin(
            "https://Agent.Example.org",
            Some("agent.example.org")
        ));
        for (o, h) in [
            ("http://127.0.0.1:3000", host),
            ("http://localhost:8472", host),
            ("http://127.0.0.1:8472", None),
            ("null", Some("null")),
            ("http://", Some("")),
            ("ftp://127.0.0.1:8472", host),
            ("http://127.0.0.1:8472.evil.example", host),
        ] {
            assert!(!is_same_origin(o, h), "{o} {h:?}");
        }
    }

    #[test]
    fn origins_absent_listed_or_own_are_allowed() {
        let allowed = vec!["https://webui.lan".to_string()];
        let host = Some("127.0.0.1:8472");
        assert!(origin_allowed(None, host, &allowed));
        assert!(origin_allowed(Some("https://WEBUI.lan"), host, &allowed));
        assert!(origin_allowed(
            Some("http://127.0.0.1:8472"),
            host,
            &allowed
        ));
        assert!(!origin_allowed(Some("http://evil.example"), host, &allowed));
        assert!(!origin_allowed(Some("null"), host, &[]));
    }

    #[test]
    fn origin_and_host_come_from_the_headers_or_the_uri() {
        let mut h = HeaderMap::new();
        let uri: Uri = "http://127.0.0.1:8472/agent/jobs".parse().unwrap();
        assert_eq!(origin_and_host(&h, &uri), (None, Some("127.0.0.1:8472")));
        h.insert(header::HOST, "agent.example.org".parse().unwrap());
        h.insert(
            header::ORIGIN,
            axum::http::HeaderValue::from_bytes(b"https://caf\xc3\xa9").unwrap(),
        );
        assert_eq!(
            origin_and_host(&h, &uri),
            (Some("<invalid>"), Some("agent.example.org"))
        );
    }

    #[test]
    fn hosts_are_compared_without_their_port() {
        let hosts: Vec<String> = ["127.0.0.1", "localhost", "::1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (h, ok) in [
            ("127.0.0.1:8471", true),
            ("localhost", true),
            ("LOCALHOST:1", true),
            ("[::1]:8471", true),
            ("::1", true),
            ("evil.example:8471", false),
            ("127.0.0.1.evil:80", false),
        ] {
            assert_eq!(host_allowed(Some(h), &hosts), ok, "{h}");
        }
        assert!(!host_allowed(None, &hosts));
        assert_eq!(host_of("[::1]:8471"), "::1");
        assert_eq!(host_of("example.org:80"), "example.org");
        assert_eq!(host_of("fe80::1"), "fe80::1");
    }
}
