//! TEMPORARY interface stub; replaced by the real translation module.
#![allow(missing_docs, unused_variables, clippy::all)]
use serde_json::{Map, Value};
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("{0}")]
    InvalidResponse(String),
}
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}
pub fn chat_request_to_messages(
    req: &Map<String, Value>,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, TranslateError> {
    Err(TranslateError::InvalidResponse("stub".into()))
}
pub fn messages_response_to_chat(
    resp: &Value,
    model: &str,
) -> Result<(Value, Usage), TranslateError> {
    Err(TranslateError::InvalidResponse("stub".into()))
}
pub fn error_to_openai(body: &[u8]) -> (&'static str, String) {
    ("server_error", String::new())
}
pub struct StreamTranslator;
impl StreamTranslator {
    pub fn new(model: &str, id: String, created: u64, include_usage: bool) -> Self {
        Self
    }
    pub fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<String>, TranslateError> {
        Ok(vec![])
    }
    pub fn finished(&self) -> bool {
        false
    }
    pub fn usage(&self) -> Usage {
        Usage::default()
    }
}
