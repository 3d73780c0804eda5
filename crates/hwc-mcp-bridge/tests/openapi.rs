//! The OpenAPI view (`/openapi/{server}`) of real servers: PyPI
//! `mcp-server-time` (one tool allowed) and npm `server-everything` (one
//! tool denied); the document is checked by PyPI `openapi-spec-validator`
//! (the venv of tests/requirements.txt), the calls by plain HTTP, as an
//! OpenAPI tool client (Open WebUI's other path) makes them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::Bridge;
use serde_json::{json, Value};

fn servers() -> String {
    format!(
        "[[servers]]\nname = \"time\"\ncommand = \"{}\"\nallowed_tools = [\"get_current_time\"]\n\
         [[servers]]\nname = \"everything\"\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\ndenied_tools = [\"get-env\"]\ncall_timeout = \"20s\"\n",
        hwc_testkit::mcp::time_server().display(),
        hwc_testkit::mcp::entry_point().display()
    )
}

async fn post(b: &Bridge, path: &str, body: &str) -> common::Reply {
    let r = b
        .http
        .post(format!("{}{path}", b.d.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    common::reply(r).await
}

/// Validates an OpenAPI document with PyPI `openapi-spec-validator`.
fn validate(doc: &Value) {
    let python = hwc_testkit::llama::cache().join("venv/bin/python");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let out = std::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/setup.sh", python.display()));
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}\n{doc:#}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn real_servers_as_openapi_tool_servers() {
    let b = Bridge::start(&servers()).await;

    let doc = b.get("/openapi/time/openapi.json").await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    let paths: Vec<&String> = doc.body["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/get_current_time"], "convert_time is not allowed");
    assert_eq!(doc.body["servers"][0]["url"], "/openapi/time");
    assert_eq!(
        doc.body["paths"]["/get_current_time"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["required"],
        json!(["timezone"]),
        "the tool's own input schema"
    );
    validate(&doc.body);
    let doc = b.get("/openapi/everything/openapi.json").await;
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(
        paths.contains_key("/echo") && !paths.contains_key("/get-env"),
        "{paths:?}"
    );
    validate(&doc.body);

    let r = post(
        &b,
        "/openapi/time/get_current_time",
        r#"{"timezone": "Etc/UTC"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["timezone"], "Etc/UTC",
        "the tool's JSON, parsed: {}",
        r.text
    );
    let r = post(
        &b,
        "/openapi/everything/echo",
        r#"{"message": "via openapi"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body.as_str().unwrap().contains("via openapi"),
        "{}",
        r.text
    );

    // Refusals, each with the status a plain HTTP client acts on.
    for (path, body, status, code) in [
        ("/openapi/time/convert_time", "{}", 404, "unknown_tool"),
        ("/openapi/everything/get-env", "{}", 404, "unknown_tool"),
        ("/openapi/nope/x", "{}", 404, "unknown_server"),
        (
            "/openapi/time/get_current_time",
            "{not json",
            400,
            "invalid_json",
        ),
        (
            "/openapi/time/get_current_time",
            "[1]",
            400,
            "invalid_arguments",
        ),
    ] {
        let r = post(&b, path, body).await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
        assert_eq!(r.body["error"]["code"], code, "{path}: {}", r.text);
    }
    // The tool's own error (mcp-server-time refuses an unknown zone).
    let r = post(
        &b,
        "/openapi/time/get_current_time",
        r#"{"timezone": "Mars/Base"}"#,
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "tool_error", "{}", r.text);
    assert!(r.text.contains("Mars/Base"), "{}", r.text);

    // The same call log and metrics as MCP calls.
    let m = b.metrics().await;
    for want in [
        "hwc_bridge_calls_total{server=\"time\",tool=\"get_current_time\",outcome=\"ok\"} 1",
        "hwc_bridge_calls_total{server=\"time\",tool=\"get_current_time\",outcome=\"tool_error\"} 1",
        "outcome=\"denied\"",
    ] {
        assert!(m.contains(want), "{want}\n{m}");
    }
    let servers = b.get("/servers").await;
    assert_eq!(
        servers.body["servers"][0]["openapi_url"], "/openapi/everything/openapi.json",
        "{}",
        servers.text
    );
    b.stop().await;
}
