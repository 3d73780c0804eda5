//! Incremental Server-Sent Events parsing: a peer's bytes arrive in
//! arbitrary pieces (a UTF-8 character or a `data:` line split between
//! two of them), each event is handed on as soon as its blank line
//! arrives, with its original bytes for a proxy that forwards it
//! unchanged, and a peer that never ends an event is cut off at
//! [`MAX_EVENT_BYTES`]. The router's streams, the agent runner's model
//! turns and the CLI's job logs all read SSE through it.

use bytes::{Bytes, BytesMut};

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`; empty for comment-only events.
    pub data: String,
    /// The event's bytes as received, blank line included.
    pub raw: Bytes,
}

/// Largest event accepted; a peer that never ends an event is cut here.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
}

/// A peer sent an event larger than [`MAX_EVENT_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("the peer sent an SSE event larger than {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl SseParser {
    /// Feeds bytes; returns every event they completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, EventTooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = find_event_end(&self.buf) {
            let raw = self.buf.split_to(end).freeze();
            out.push(parse_event(raw));
        }
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(out)
    }

    /// Whatever is left when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(parse_event(std::mem::take(&mut self.buf).freeze()))
    }
}

/// Index just past the first blank line (`\n\n`, `\r\n\r\n` or `\r\r`).
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn parse_event(raw: Bytes) -> SseEvent {
    let text = String::from_utf8_lossy(&raw);
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => data.push(value),
            "event" => event = Some(value.to_string()),
            _ => {}
        }
    }
    SseEvent {
        event,
        data: data.join("\n"),
        raw,
    }
}

/// `data: <json>\n\n`.
pub fn data_event(json: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(json.len() + 8);
    b.extend_from_slice(b"data: ");
    b.extend_from_slice(json.as_bytes());
    b.extend_from_slice(b"\n\n");
    b.freeze()
}

/// `event: <name>\ndata: <json>\n\n`.
pub fn named_event(name: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// The end of an OpenAI chat stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// A comment that keeps idle connections open while a first token is slow.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: {\"a\"").unwrap().is_empty());
        let ev = p
            .push(b":1}\n\nevent: x\r\ndata: y\r\n\r\n: comment\n\ndata: [DO")
            .unwrap();
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].data, "{\"a\":1}");
        assert_eq!(&ev[0].raw[..], b"data: {\"a\":1}\n\n");
        assert_eq!(ev[1].event.as_deref(), Some("x"));
        assert_eq!(ev[1].data, "y");
        assert_eq!(ev[2].data, "");
        assert!(p.push(b"NE]").unwrap().is_empty());
        assert_eq!(p.finish().unwrap().data, "[DONE]");
    }

    #[test]
    fn multi_line_data_joins() {
        let mut p = SseParser::default();
        let ev = p.push(b"data: a\ndata: b\n\n").unwrap();
        assert_eq!(ev[0].data, "a\nb");
    }
}
