//! HTTP GET of fleet endpoints (`/status`, `/metrics`, health) and
//! Prometheus instant and range queries. The policy decides which URLs
//! (the example allows loopback only); bodies are capped.

use super::{str_arg, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError, ToolOutput};
use crate::model::ToolSpec;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const MAX_BODY: usize = 256 * 1024;

async fn get(ctx: &Ctx, url: &str) -> Result<ToolOutput, ToolError> {
    let t0 = Instant::now();
    let resp = ctx
        .http
        .get(url)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .map_err(|e| ToolError(format!("GET {url} failed: {e}")))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ToolError(format!("GET {url}: reading the body failed: {e}")))?;
    let hash = crate::audit::sha256_hex(&bytes);
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
    if bytes.len() > MAX_BODY {
        text.push_str(&format!(
            "\n[… {} more bytes left out …]",
            bytes.len() - MAX_BODY
        ));
    }
    Ok(ToolOutput {
        text: format!("HTTP {}\n{text}", status.as_u16()),
        ok: status.is_success(),
        exit_code: Some(i64::from(status.as_u16())),
        output_hash: hash,
        duration_ms: t0.elapsed().as_millis() as i64,
        changes: Vec::new(),
    })
}

/// `GET url`.
pub struct HttpGet;

#[async_trait::async_trait]
impl Tool for HttpGet {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "http_get".into(),
            description: "HTTP GET a URL (a fleet daemon's /status, /metrics or health endpoint) and return status and body.".into(),
            parameters: json!({"type": "object", "required": ["url"], "properties": {
                "url": {"type": "string", "maxLength": 2048}}}),
        }
    }

    async fn plan(&self, args: &Value, _ctx: &Ctx) -> Result<Planned, ToolError> {
        let url = str_arg(args, "url")?;
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ToolError(format!("`{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ToolError(format!("`{url}`: only http and https")));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ToolError("URLs with credentials are not fetched".into()));
        }
        let url = parsed.to_string();
        Ok(Planned {
            tool: "http_get".into(),
            arguments: json!({"url": url}),
            subject: PlanSubject::Commands(vec![vec!["http".into(), "get".into(), url.clone()]]),
            target: url.clone(),
            rollback: None,
            claimed: None,
            summary: format!("GET {url}"),
            item: ItemKind::ToolCall,
            network: false,
            call_id: None,
            environment: None,
        })
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        get(ctx, str_arg(&p.arguments, "url")?).await
    }
}

/// Prometheus `query` and `query_range`.
pub struct PrometheusQuery;

#[async_trait::async_trait]
impl Tool for PrometheusQuery {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "prometheus_query".into(),
            description: "Run a PromQL query: instant, or over the last range_minutes with a step in seconds.".into(),
            parameters: json!({"type": "object", "required": ["query"], "properties": {
                "query": {"type": "string", "maxLength": 4000},
                "range_minutes": {"type": "integer", "minimum": 1, "maximum": 10080},
                "step_seconds": {"type": "integer", "minimum": 1, "maximum": 3600}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let q = str_arg(args, "query")?;
        let range = args["range_minutes"].as_u64();
        let step = args["step_seconds"].as_u64().unwrap_or(60);
        let kind = if range.is_some() {
            "query_range"
        } else {
            "query"
        };
        let mut norm = json!({"query": q});
        if let Some(r) = range {
            norm["range_minutes"] = json!(r);
            norm["step_seconds"] = json!(step);
        }
        Ok(Planned {
            tool: "prometheus_query".into(),
            arguments: norm,
            subject: PlanSubject::Commands(vec![vec!["prometheus".into(), kind.into(), q.into()]]),
            target: ctx.tools.prometheus_url.clone(),
            rollback: None,
            claimed: None,
            summary: format!("PromQL {kind}: {q}"),
            item: ItemKind::ToolCall,
            network: false,
            call_id: None,
            environment: None,
        })
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let base = ctx.tools.prometheus_url.trim_end_matches('/');
        let q = str_arg(&p.arguments, "query")?;
        let mut url = reqwest::Url::parse(&format!("{base}/api/v1/query"))
            .map_err(|e| ToolError(format!("[tools] prometheus_url: {e}")))?;
        match p.arguments["range_minutes"].as_u64() {
            Some(r) => {
                let now = hwc_ai_core::clock::unix_now();
                url.set_path(&format!(
                    "{}/api/v1/query_range",
                    url.path().trim_end_matches("/api/v1/query")
                ));
                url.query_pairs_mut()
                    .append_pair("query", q)
                    .append_pair("start", &(now - 60 * r as i64).to_string())
                    .append_pair("end", &now.to_string())
                    .append_pair(
                        "step",
                        &p.arguments["step_seconds"]
                            .as_u64()
                            .unwrap_or(60)
                            .to_string(),
                    );
            }
            None => {
                url.query_pairs_mut().append_pair("query", q);
            }
        }
        get(ctx, url.as_str()).await
    }
}
