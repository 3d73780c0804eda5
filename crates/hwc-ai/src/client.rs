//! HTTP to one daemon, and every way that can fail said the way an
//! operator acts on it: which daemon, where, and what to do ("is
//! hwc-model-router.service running? systemctl status hwc-model-router").

use crate::config::Target;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// Why a daemon could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens, or the host cannot be reached.
    #[error("{daemon} at {url} {what}: is {unit} running? systemctl status {short}")]
    Unreachable {
        /// The daemon.
        daemon: &'static str,
        /// Where.
        url: String,
        /// "refused the connection", "did not answer within 10 s", ...
        what: String,
        /// Its unit.
        unit: &'static str,
        /// The unit without `.service`.
        short: &'static str,
    },
    /// 401: no token, or the wrong one.
    #[error(
        "{daemon} at {url} refused {which}: {message}; set [{component}] token_file in {config}"
    )]
    Unauthorized {
        /// The daemon.
        daemon: &'static str,
        /// Where.
        url: String,
        /// "the token" or "the request without a token".
        which: &'static str,
        /// The daemon's message.
        message: String,
        /// Its table.
        component: &'static str,
        /// The CLI's config file.
        config: String,
    },
    /// Any other error answer, with the daemon's own message.
    #[error("{daemon}: {status}: {message}")]
    Refused {
        /// The daemon.
        daemon: &'static str,
        /// The HTTP status.
        status: StatusCode,
        /// The daemon's message (its `error.message`, or the body).
        message: String,
        /// The daemon's error code (`error.code`), if any.
        code: Option<String>,
    },
    /// The answer is not what this CLI understands.
    #[error("{daemon} at {url} answered {path} with something this hwc-ai cannot read ({why}); are the CLI and the daemon the same version?")]
    Unreadable {
        /// The daemon.
        daemon: &'static str,
        /// Where.
        url: String,
        /// The path.
        path: String,
        /// Why.
        why: String,
    },
}

impl ClientError {
    /// The HTTP status of a refusal, if it was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            ClientError::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    /// The daemon and where it is.
    pub target: Target,
    config_path: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of `target`; `config_path` is named in token errors.
    pub fn new(target: Target, config_path: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            target,
            config_path: config_path.to_string(),
            http,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.target.url));
        if let Some(t) = &self.target.token {
            req = req.bearer_auth(t);
        }
        req
    }

    fn transport(&self, e: &reqwest::Error) -> ClientError {
        let d = self.target.daemon;
        let what = if e.is_timeout() {
            "did not answer in time".to_string()
        } else if e.is_connect() {
            "refused the connection".to_string()
        } else {
            format!("could not be reached ({e})")
        };
        ClientError::Unreachable {
            daemon: d.name,
            url: self.target.url.clone(),
            what,
            unit: d.unit,
            short: d.name,
        }
    }

    /// Sends `req` (a request built by [`Client::get`] and friends) and
    /// returns the answer when it is a success.
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.check(resp).await
    }

    /// Sends `req` without the per-request timeout (an open stream).
    pub async fn send_stream(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        self.check(resp).await
    }

    async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let d = self.target.daemon;
        let body = resp.text().await.unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        let message = parsed
            .as_ref()
            .and_then(|v| v.pointer("/error/message").and_then(Value::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| body.trim().chars().take(300).collect());
        let code = parsed
            .as_ref()
            .and_then(|v| v.pointer("/error/code").and_then(Value::as_str))
            .map(str::to_string);
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                daemon: d.name,
                url: self.target.url.clone(),
                which: if self.target.token.is_some() {
                    "the token"
                } else {
                    "the request without a token"
                },
                message,
                component: d.component,
                config: self.config_path.clone(),
            });
        }
        Err(ClientError::Refused {
            daemon: d.name,
            status,
            message,
            code,
        })
    }

    /// A GET request to `path`.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    /// A POST request to `path`.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    /// `GET path` as `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.send(self.get(path)).await?;
        self.read(path, resp).await
    }

    /// `POST path` with `body`, the answer as `T`.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, ClientError> {
        let resp = self.send(self.post(path).json(body)).await?;
        self.read(path, resp).await
    }

    async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
        resp: reqwest::Response,
    ) -> Result<T, ClientError> {
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Unreadable {
            daemon: self.target.daemon.name,
            url: self.target.url.clone(),
            path: path.to_string(),
            why: e.to_string(),
        })
    }
}
