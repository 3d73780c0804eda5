//! `hwc-ai route explain`: the router's decision for a request, from its
//! `POST /v1/route/explain` (nothing is sent to a backend).

use crate::render::{self, state, table};
use serde_json::{json, Value};

/// A request body for `endpoint` with `model`, `prompt` and `tools` dummy
/// tools (what the `auto` rules look at).
pub fn request_body(endpoint: &str, model: &str, prompt: &str, tools: usize) -> Value {
    let tools: Vec<Value> = (0..tools)
        .map(|i| json!({"type": "function", "function": {"name": format!("tool_{i}"), "parameters": {"type": "object"}}}))
        .collect();
    match endpoint {
        "completions" => json!({"model": model, "prompt": prompt}),
        "embeddings" => json!({"model": model, "input": prompt}),
        "responses" => {
            let mut b = json!({"model": model, "input": prompt});
            if !tools.is_empty() {
                b["tools"] = json!(tools
                    .iter()
                    .map(|t| json!({"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]}))
                    .collect::<Vec<_>>());
            }
            b
        }
        _ => {
            let mut b = json!({"model": model, "messages": [{"role": "user", "content": prompt}]});
            if !tools.is_empty() {
                b["tools"] = json!(tools);
            }
            b
        }
    }
}

/// The decision, for a person.
pub fn render(v: &Value) -> String {
    let mut out = format!(
        "model {}  ({}: {}; privacy {})\n",
        v["model"].as_str().unwrap_or("?"),
        v["decision"].as_str().unwrap_or("?"),
        v["reason"].as_str().unwrap_or(""),
        v["privacy"].as_str().unwrap_or("?"),
    );
    let mut t = table(&["#", "BACKEND", "MODEL", "LOCALITY", "STATE", "REPLICAS"]);
    for (i, c) in v["candidates"].as_array().into_iter().flatten().enumerate() {
        let reps = c["replicas"].as_array().map_or(String::new(), |r| {
            let rotating = r.iter().filter(|x| x["state"] == "in_rotation").count();
            format!("{rotating}/{} in rotation", r.len())
        });
        t.add_row(vec![
            (i + 1).to_string(),
            c["backend"].as_str().unwrap_or("?").to_string(),
            c["upstream_model"].as_str().unwrap_or("?").to_string(),
            c["locality"].as_str().unwrap_or("?").to_string(),
            state(c["state"].as_str().unwrap_or("unknown")),
            reps,
        ]);
    }
    out.push_str(&render::lines(&t));
    out.push_str("\n(tried in this order; the first in rotation that answers serves it)\n");
    out
}
