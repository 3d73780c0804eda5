//! The `mcp` kind against the real MCP "everything" server from npm over
//! Streamable HTTP: a full session (initialize, tools/list), not a bare GET.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::routing::{get, post};
use common::Prober;
use std::time::Duration;

#[tokio::test]
async fn a_real_mcp_server_is_up_until_it_dies() {
    let mut server = hwc_testkit::mcp::everything();
    // An HTTP server that answers anything with 200 but speaks no MCP.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = format!("http://{}/mcp", l.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/mcp",
        get(|| async { "ok" }).merge(post(|| async { "ok" })),
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let p = Prober::start(&format!(
        "[defaults]\ninterval = \"300ms\"\ntimeout = \"300ms\"\nfailure_threshold = 2\n\
         [[targets]]\nname = \"everything\"\nkind = \"mcp\"\nurl = \"{}\"\nmin_tools = 5\n\
         [[targets]]\nname = \"not-mcp\"\nkind = \"mcp\"\nurl = \"{fake}\"\n",
        server.url()
    ))
    .await;
    let mut seen = Vec::new();
    p.wait_state("everything", "up", Duration::from_secs(10), &mut seen)
        .await;
    let t = p
        .wait_state("not-mcp", "down", Duration::from_secs(5), &mut Vec::new())
        .await;
    assert!(
        t["last_error"]
            .as_str()
            .unwrap()
            .contains("no JSON-RPC response"),
        "{t}"
    );

    server.stop();
    let t = p
        .wait_state("everything", "down", Duration::from_secs(5), &mut seen)
        .await;
    assert!(
        t["last_error"].as_str().unwrap().contains("MCP initialize"),
        "{t}"
    );
    p.stop().await;
}
