//! The one JSON error shape every hwc-ai endpoint answers with.
//!
//! It is OpenAI's (`{"error":{"message","type","param","code"}}`) so that the
//! official SDKs raise their own exception types for our errors, and so every
//! daemon, OpenAI-compatible or not, fails in the same readable way.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;

/// An error an HTTP client gets back: a status, a stable machine-readable
/// `code`, and a message that tells a person what is wrong and what to do.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// OpenAI error `type` (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// Stable code callers can match on (`model_not_found`, `rate_limited`, ...).
    pub code: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
    /// The request parameter at fault, when there is one.
    pub param: Option<String>,
    /// Sent as `Retry-After` (whole seconds, rounded up) when set.
    pub retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl ApiError {
    /// A new error; prefer the named constructors below for common cases.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// 400: the request itself is wrong.
    pub fn invalid_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    /// 401: no credentials, or credentials that match no key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            message,
        )
    }

    /// 403: authenticated, but policy forbids this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", code, message)
    }

    /// 404 for a model (or other named thing) that does not exist here.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            code,
            message,
        )
    }

    /// 429 with a `Retry-After`.
    pub fn rate_limited(code: &'static str, message: impl Into<String>, retry: Duration) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            code,
            message,
        )
        .with_retry_after(retry)
    }

    /// 503: the daemon sheds load or cannot serve right now; retry later.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry: Duration) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            code,
            message,
        )
        .with_retry_after(retry)
    }

    /// 500 for faults of our own; the message must still be actionable.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message,
        )
    }

    /// Names the request parameter at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Adds a `Retry-After`.
    pub fn with_retry_after(mut self, retry: Duration) -> Self {
        self.retry_after = Some(retry);
        self
    }

    /// The JSON body alone, for places that must write it into a stream.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Envelope {
            error: Body {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .unwrap_or_else(|_| String::from(r#"{"error":{"message":"unencodable error","type":"server_error","param":null,"code":"internal_error"}}"#))
    }
}

/// Whole seconds for a `Retry-After` header, never 0 (0 invites a hot loop).
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.to_json()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(retry) = self.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(retry)),
            );
        }
        resp
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// An error and its causes on one line (`outer: cause: root cause`), for
/// logs and operator messages; a cause whose text the outer message
/// already contains (the `{0}` and `#[error(transparent)]` habit) is not
/// repeated.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_openai_compatible() {
        let e = ApiError::invalid_request("bad_json", "body is not JSON").with_param("messages");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["message"], "body is not JSON");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "messages");
        assert_eq!(v["error"]["code"], "bad_json");
    }

    #[test]
    fn chain_names_every_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot load keys")]
        struct Outer(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("cannot start: {0}")]
        struct Repeats(#[source] std::io::Error);
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "keys.toml: no such file");
        assert_eq!(
            chain(&Outer(io())),
            "cannot load keys: keys.toml: no such file"
        );
        assert_eq!(
            chain(&Repeats(io())),
            "cannot start: keys.toml: no such file"
        );
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(0)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
