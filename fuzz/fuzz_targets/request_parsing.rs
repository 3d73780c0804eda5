//! Fuzzes everything the router does with client and upstream bytes before
//! a backend is involved: request parsing and checks for every endpoint,
//! escalation signals, the Anthropic translation of a parsed request, and
//! SSE parsing. None of it may panic, whatever the input.
#![no_main]

use hwc_model_router::backends::anthropic;
use hwc_model_router::request::{ClientRequest, Endpoint};
use hwc_model_router::sse::SseParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for endpoint in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings, Endpoint::Responses] {
        if let Ok(req) = ClientRequest::parse(endpoint, data) {
            let _ = req.signals();
            let _ = anthropic::chat_request_to_messages(&req.body, "m", 16);
        }
    }
    let mut parser = SseParser::default();
    for piece in data.chunks(7) {
        if parser.push(piece).is_err() {
            break;
        }
    }
    let _ = parser.finish();
});
