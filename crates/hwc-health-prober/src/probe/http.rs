//! HTTP-based probes: plain HTTP, OpenAI-compatible servers, Ollama,
//! llama.cpp, vLLM, Open WebUI and other hwc-ai daemons.

use super::Verdict;
use crate::config::{HttpCheck, OllamaCheck, OpenaiCheck};
use serde_json::{json, Value};
use std::time::Instant;

type Found = Result<Verdict, String>;

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

fn transport(url: &str, e: &reqwest::Error) -> String {
    let mut msg = if e.is_connect() {
        format!("cannot connect to {url}")
    } else if e.is_timeout() {
        format!("{url} timed out")
    } else {
        format!("request to {url} failed")
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Sends `req` (to `url`, with an optional bearer token); the status and body.
async fn send(
    req: reqwest::RequestBuilder,
    url: &str,
    token: Option<&str>,
) -> Result<(u16, bytes::Bytes), String> {
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let resp = req.send().await.map_err(|e| transport(url, &e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| transport(url, &e))?;
    Ok((status, body))
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<(u16, bytes::Bytes), String> {
    send(client.get(url), url, token).await
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    token: Option<&str>,
) -> Result<(u16, bytes::Bytes), String> {
    send(client.post(url).json(body), url, token).await
}

fn json_of(url: &str, body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(&body[..body.len().min(120)]).replace('\n', " ");
        format!("{url} answered with something that is not JSON ({e}): {text}")
    })
}

fn expect_200(url: &str, status: u16, body: &[u8]) -> Result<(), String> {
    if status == 200 {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]).replace('\n', " ");
    Err(format!("{url} answered {status}: {text}"))
}

/// `kind = "http"`.
pub async fn http(client: &reqwest::Client, c: &HttpCheck) -> Found {
    let start = Instant::now();
    let (status, body) = get(client, &c.url, None).await?;
    if !c.expect_status.contains(&status) {
        return Err(format!(
            "{} answered {status}, expected {:?}",
            c.url, c.expect_status
        ));
    }
    if let Some(pointer) = &c.json_pointer {
        let v = json_of(&c.url, &body)?;
        let found = v.pointer(pointer);
        match (&c.json_equals, found) {
            (_, None) => return Err(format!("{} has no value at {pointer}", c.url)),
            (Some(want), Some(got)) if got != want => {
                return Err(format!("{} has {got} at {pointer}, expected {want}", c.url))
            }
            _ => {}
        }
    }
    if let Some(max) = c.max_latency {
        let took = start.elapsed();
        if took > max {
            return Err(format!(
                "{} answered in {:.3}s, over max_latency {:.3}s",
                c.url,
                took.as_secs_f64(),
                max.as_secs_f64()
            ));
        }
    }
    Ok(Verdict::Ok)
}

/// GET `base + path` must answer 200.
pub async fn status_only(client: &reqwest::Client, base: &str, path: &str) -> Found {
    let url = join(base, path);
    let (status, body) = get(client, &url, None).await?;
    expect_200(&url, status, &body)?;
    Ok(Verdict::Ok)
}

/// llama.cpp `/health`: 200 ok, 503 "Loading model" is starting.
pub async fn llama_cpp(client: &reqwest::Client, base: &str) -> Found {
    let url = join(base, "/health");
    let (status, body) = get(client, &url, None).await?;
    if status == 503 && String::from_utf8_lossy(&body).contains("Loading model") {
        return Ok(Verdict::Starting(
            "llama-server is loading its model".into(),
        ));
    }
    expect_200(&url, status, &body)?;
    Ok(Verdict::Ok)
}

/// Open WebUI `/health`: `{"status": true}`.
pub async fn open_webui(client: &reqwest::Client, base: &str) -> Found {
    let url = join(base, "/health");
    let (status, body) = get(client, &url, None).await?;
    expect_200(&url, status, &body)?;
    match json_of(&url, &body)?.get("status") {
        Some(Value::Bool(true)) => Ok(Verdict::Ok),
        other => Err(format!(
            "{url} reports status {}",
            other.cloned().unwrap_or(Value::Null)
        )),
    }
}

fn read_token(path: &Option<std::path::PathBuf>) -> Result<Option<String>, String> {
    path.as_deref()
        .map(|p| {
            hwc_ai_core::secret::read_secret(p)
                .map(|s| s.expose().to_string())
                .map_err(|e| e.to_string())
        })
        .transpose()
}

/// `kind = "openai"`: `/models` lists the model; `deep` also asks for a token.
pub async fn openai(client: &reqwest::Client, c: &OpenaiCheck) -> Found {
    let token = read_token(&c.api_key_file)?;
    let url = join(&c.url, "/models");
    let (status, body) = get(client, &url, token.as_deref()).await?;
    expect_200(&url, status, &body)?;
    let v = json_of(&url, &body)?;
    let ids: Vec<&str> = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{url} has no `data` list"))?
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str))
        .collect();
    if let Some(model) = &c.model {
        if !ids.contains(&model.as_str()) {
            return Err(format!(
                "{url} does not list model `{model}` (it lists: {})",
                ids.join(", ")
            ));
        }
        if c.deep {
            let url = join(&c.url, "/chat/completions");
            let body = json!({"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]});
            let (status, answer) = post_json(client, &url, &body, token.as_deref()).await?;
            expect_200(&url, status, &answer)?;
            if json_of(&url, &answer)?.pointer("/choices/0").is_none() {
                return Err(format!("{url} answered without choices"));
            }
        }
    }
    Ok(Verdict::Ok)
}

fn same_model(listed: &str, want: &str) -> bool {
    listed == want || (!want.contains(':') && listed == format!("{want}:latest"))
}

/// `kind = "ollama"`: version, models present, optionally loaded and generating.
pub async fn ollama(client: &reqwest::Client, c: &OllamaCheck) -> Found {
    let url = join(&c.url, "/api/version");
    let (status, body) = get(client, &url, None).await?;
    expect_200(&url, status, &body)?;
    for (path, what, needed) in [
        ("/api/tags", "pulled", true),
        ("/api/ps", "loaded", c.loaded),
    ] {
        if !needed || c.models.is_empty() {
            continue;
        }
        let url = join(&c.url, path);
        let (status, body) = get(client, &url, None).await?;
        expect_200(&url, status, &body)?;
        let v = json_of(&url, &body)?;
        let names: Vec<&str> = v
            .get("models")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|x| x.get("name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        for want in &c.models {
            if !names.iter().any(|n| same_model(n, want)) {
                return Err(format!(
                    "model `{want}` is not {what} in Ollama ({path} lists: {})",
                    names.join(", ")
                ));
            }
        }
    }
    if c.generate {
        let Some(model) = c.models.first() else {
            return Err("generate = true needs at least one entry in models".into());
        };
        let url = join(&c.url, "/api/generate");
        let body = json!({"model": model, "prompt": "ping", "stream": false, "options": {"num_predict": 1}});
        let (status, answer) = post_json(client, &url, &body, None).await?;
        expect_200(&url, status, &answer)?;
        if let Some(err) = json_of(&url, &answer)?.get("error") {
            return Err(format!("{url}: {err}"));
        }
    }
    Ok(Verdict::Ok)
}
