//! The approval page: plain HTML, CSS and JavaScript built into the binary
//! (no framework, no CDN, no request to anywhere but this runner), served
//! at `/ui/` without auth; every piece of data it shows comes from the
//! API with the operator's token. ADR 0012 says why it is built this way.
//!
//! This module also holds what protects the page and the API in a
//! browser: [`CONTENT_SECURITY_POLICY`] and the other headers of
//! [`security_headers`] (set on every response of the runner's routes),
//! and [`origin_guard`], which refuses a state-changing request whose
//! `Origin` is another site's ([`check_origin`]).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use hwc_ai_core::ApiError;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

/// The page's Content-Security-Policy: scripts, styles and images from
/// the runner only (no inline script or style, no `eval`), requests to the
/// runner only, no plugins, no `<base>`, no form submission (the sign-in
/// form is handled by script; without script it cannot send the token
/// anywhere), never framed, and Trusted Types required, so even an
/// `innerHTML` assignment the page never makes would throw.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Everything the page is made of.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/ui/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("ui/index.html"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ui/app.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("ui/app.css"),
    },
    Asset {
        path: "/ui/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("ui/favicon.svg"),
    },
];

/// The strong validator of `body`: the first 16 bytes of its SHA-256 in hex, quoted.
pub fn etag_of(body: &[u8]) -> String {
    let d = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&d[..16]))
}

/// Whether an `If-None-Match` value names `etag` (or is `*`).
pub fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t == etag || t.strip_prefix("W/").is_some_and(|w| w == etag))
    })
}

/// The ETags of [`ASSETS`], computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| ASSETS.iter().map(|a| etag_of(a.body)).collect())
}

/// Answers the asset at `index`: 304 when the browser's copy is current;
/// `no-cache` so a new runner's page is picked up at the next load.
fn serve(index: usize, headers: &HeaderMap) -> Response {
    let (Some(asset), Some(tag)) = (ASSETS.get(index), etags().get(index)) else {
        return ApiError::not_found("unknown_endpoint", "no such page asset").into_response();
    };
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let etag = HeaderValue::from_str(tag).unwrap_or(HeaderValue::from_static("\"0\""));
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if not_modified(inm, tag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), cache]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
            cache,
        ],
        asset.body,
    )
        .into_response()
}

/// The page's routes (no auth: the assets hold no data): `/` and `/ui`
/// redirect to `/ui/`, which serves the page and its three files.
pub fn routes() -> Router {
    let mut r = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }));
    for (i, a) in ASSETS.iter().enumerate() {
        r = r.route(a.path, get(move |h: HeaderMap| async move { serve(i, &h) }));
    }
    r
}

/// The headers set on every response of the runner's routes (a header the
/// handler set already is kept): the CSP, no framing, no referrer, no
/// MIME sniffing, the page in its own browsing context group, nothing of
/// it embeddable elsewhere, no powerful browser features.
pub fn security_headers() -> [(HeaderName, HeaderValue); 7] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "camera=(), microphone=(), geolocation=(), usb=(), payment=(), clipboard-read=()",
            ),
        ),
    ]
}

/// Adds [`security_headers`] to `h`, plus `Cache-Control: no-store` where
/// the handler set no caching (API answers carry a token's view of jobs:
/// no shared or disk cache keeps them) and `X-Accel-Buffering: no` on an
/// event stream (nginx then passes events on as they come).
pub fn add_headers(h: &mut HeaderMap) {
    for (k, v) in security_headers() {
        h.entry(k).or_insert(v);
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    let sse = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if sse {
        h.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
    }
}

/// Middleware: [`add_headers`] on every response.
pub async fn secure(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    add_headers(resp.headers_mut());
    resp
}

/// `scheme://authority` of a configured origin, if it is one: `http` or
/// `https`, a non-empty host with an optional port, nothing after it.
pub fn parse_origin(s: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = s.split_once("://")?;
    let bad = |c: char| c.is_whitespace() || "/?#@\\".contains(c);
    if !matches!(scheme, "http" | "https") || authority.is_empty() || authority.contains(bad) {
        return None;
    }
    Some((scheme, authority))
}

/// Whether `method` can change anything (everything but GET, HEAD,
/// OPTIONS and TRACE).
pub fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Ok unless `method` changes state and `origin` is present, not the
/// runner's own (`http(s)://` + `host`) and not in `allowed`; the refusal
/// says what to do otherwise.
pub fn check_origin(
    method: &Method,
    origin: Option<&str>,
    host: Option<&str>,
    allowed: &[String],
) -> Result<(), String> {
    if !changes_state(method) || hwc_ai_core::origin::origin_allowed(origin, host, allowed) {
        return Ok(());
    }
    Err(format!(
        "a page at Origin `{}` may not send {method} requests to this runner (its own origin is http(s)://{}); \
         only the runner's approval page may. Behind a reverse proxy, pass the Host header through \
         (nginx: proxy_set_header Host $host) or list the page's origin in [ui] allowed_origins",
        origin.unwrap_or_default(),
        host.unwrap_or("<no Host header>")
    ))
}

/// Middleware: a state-changing request from another site's page gets
/// 403 before authentication (CSRF defence in depth; no cookie carries
/// authority here, see ADR 0012).
pub async fn origin_guard(
    State(allowed): State<Arc<Vec<String>>>,
    req: Request,
    next: Next,
) -> Response {
    let (origin, host) = hwc_ai_core::origin::origin_and_host(req.headers(), req.uri());
    if let Err(why) = check_origin(req.method(), origin, host, &allowed) {
        tracing::warn!(origin = origin.unwrap_or_default(), method = %req.method(), path = %req.uri().path(), "cross-origin request refused");
        return ApiError::forbidden("origin_refused", why).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_csp_allows_only_this_origin_and_no_inline_script() {
        let csp = CONTENT_SECURITY_POLICY;
        let directive = |name: &str| {
            csp.split(';')
                .map(str::trim)
                .find(|d| d.split_whitespace().next() == Some(name))
                .map(|d| d.split_whitespace().skip(1).collect::<Vec<_>>())
        };
        assert_eq!(directive("default-src").unwrap(), ["'self'"]);
        assert_eq!(directive("script-src").unwrap(), ["'self'"]);
        assert_eq!(directive("connect-src").unwrap(), ["'self'"]);
        assert_eq!(directive("frame-ancestors").unwrap(), ["'none'"]);
        assert_eq!(directive("object-src").unwrap(), ["'none'"]);
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!csp.contains("http"), "no other origin: {csp}");
        assert!(!csp.contains("data:"), "{csp}");
        assert!(HeaderValue::from_str(csp).is_ok());
    }

    #[test]
    fn headers_are_added_without_overriding_the_handler() {
        let mut h = HeaderMap::new();
        add_headers(&mut h);
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert!(h.get("x-accel-buffering").is_none());
        let mut sse = HeaderMap::new();
        sse.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        sse.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        add_headers(&mut sse);
        assert_eq!(sse[header::CACHE_CONTROL], "no-cache");
        assert_eq!(sse["x-accel-buffering"], "no");
    }

    #[test]
    fn only_state_changing_requests_from_other_origins_are_refused() {
        let host = Some("127.0.0.1:8472");
        let none: &[String] = &[];
        let post = Method::POST;
        assert!(
            check_origin(&post, None, host, none).is_ok(),
            "curl, the CLI"
        );
        assert!(check_origin(&post, Some("http://127.0.0.1:8472"), host, none).is_ok());
        assert!(check_origin(&Method::GET, Some("http://evil.example"), host, none).is_ok());
        let e = check_origin(&post, Some("http://evil.example"), host, none).unwrap_err();
        assert!(
            e.contains("evil.example") && e.contains("allowed_origins"),
            "{e}"
        );
        assert!(check_origin(&Method::DELETE, Some("null"), host, none).is_err());
        assert!(check_origin(&post, Some("http://127.0.0.1:8472"), None, none).is_err());
        let proxied = vec!["https://agent.example.org".to_string()];
        assert!(check_origin(&post, Some("https://agent.example.org"), host, &proxied).is_ok());
        assert!(check_origin(
            &post,
            Some("https://agent.example.org"),
            Some("agent.example.org"),
            none
        )
        .is_ok());
    }

    #[test]
    fn origins_in_the_config_are_scheme_and_authority_only() {
        assert_eq!(
            parse_origin("https://agent.example.org"),
            Some(("https", "agent.example.org"))
        );
        assert!(parse_origin("http://[::1]:8472").is_some());
        for bad in [
            "agent.example.org",
            "https://",
            "https://a.example/ui/",
            "ftp://a.example",
            "https://user@a.example",
            "https://a.example?x",
        ] {
            assert!(parse_origin(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn etags_answer_304_for_the_current_copy() {
        let tag = etag_of(b"page");
        assert_eq!(tag.len(), 34);
        assert!(not_modified(Some(&tag), &tag));
        assert!(not_modified(Some(&format!("\"x\", W/{tag}")), &tag));
        assert!(not_modified(Some("*"), &tag));
        assert!(!not_modified(Some("\"x\""), &tag));
        assert!(!not_modified(None, &tag));
        assert_eq!(etags().len(), ASSETS.len());
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_writes_no_html() {
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            for needle in ["http://", "https://", "//cdn", "@import"] {
                // The SVG's XML namespace is a name, not a request.
                if a.path.ends_with(".svg") && needle == "http://" {
                    continue;
                }
                assert!(!text.contains(needle), "{} contains {needle}", a.path);
            }
        }
        let js = std::str::from_utf8(ASSETS[1].body).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "localStorage",
            "document.cookie",
        ] {
            assert!(!js.contains(sink), "app.js uses {sink}");
        }
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
    }
}
