//! Newline-delimited messages from a child's stdout, with the size cap
//! checked on raw bytes before anything is parsed: a child that writes a
//! huge (or endless) line costs the bridge at most `max` bytes of memory.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Bytes of an oversize line kept from its start and from its end, to
/// find the request id in it.
const KEEP: usize = 256;

/// One line from the child.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line within the cap (without its newline).
    Full(Vec<u8>),
    /// A line over the cap, dropped: its first and last bytes and its size.
    Oversize {
        /// The first bytes.
        head: Vec<u8>,
        /// The last bytes (newline excluded).
        tail: Vec<u8>,
        /// Its whole length.
        len: usize,
    },
}

/// Reads the next line; `None` at end of stream (or on a read error).
pub async fn next_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> Option<Line> {
    let mut buf: Vec<u8> = Vec::new();
    let mut over: Option<(Vec<u8>, Vec<u8>, usize)> = None;
    loop {
        let chunk = match r.fill_buf().await {
            Ok(c) => c,
            Err(_) => return None,
        };
        if chunk.is_empty() {
            // EOF: a last line without newline still counts.
            return match over {
                Some((head, tail, len)) => Some(Line::Oversize { head, tail, len }),
                None if !buf.is_empty() => Some(Line::Full(buf)),
                None => None,
            };
        }
        let (part, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        match &mut over {
            None if buf.len() + part.len() <= max => buf.extend_from_slice(part),
            None => {
                let mut head = std::mem::take(&mut buf);
                let len = head.len() + part.len();
                head.extend_from_slice(&part[..part.len().min(KEEP.saturating_sub(head.len()))]);
                head.truncate(KEEP);
                let tail = part[part.len().saturating_sub(KEEP)..].to_vec();
                over = Some((head, tail, len));
            }
            Some((_, tail, len)) => {
                *len += part.len();
                tail.extend_from_slice(part);
                let cut = tail.len().saturating_sub(KEEP);
                tail.drain(..cut);
            }
        }
        let consumed = done.unwrap_or(chunk.len());
        r.consume(consumed);
        if done.is_some() {
            return Some(match over {
                Some((head, tail, len)) => Line::Oversize { head, tail, len },
                None => Line::Full(buf),
            });
        }
    }
}

/// The numeric top-level `id` of a JSON-RPC message seen only by its first
/// and last bytes: `{"jsonrpc":"2.0","id":7,...` (Python SDK order) or
/// `...,"jsonrpc":"2.0","id":7}` (TypeScript SDK order). The bridge's ids
/// towards a child are always numbers, so nothing else needs matching.
pub fn oversize_id(head: &[u8], tail: &[u8]) -> Option<u64> {
    let tail = String::from_utf8_lossy(tail);
    let t = tail.trim_end().strip_suffix('}')?.trim_end();
    let digits_end = t.len();
    let digits_start = t.rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    let before = t[..digits_start].trim_end();
    if digits_start < digits_end
        && before
            .strip_suffix(':')
            .map(str::trim_end)
            .is_some_and(|b| b.ends_with("\"id\""))
    {
        return t[digits_start..].parse().ok();
    }
    let head = String::from_utf8_lossy(head);
    let compact: String = head.chars().filter(|c| !c.is_whitespace()).collect();
    let rest = compact
        .strip_prefix("{\"jsonrpc\":\"2.0\",\"id\":")
        .or_else(|| compact.strip_prefix("{\"id\":"))?;
    let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
    n.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize) -> Vec<Line> {
        // A tiny buffer so lines straddle many reads.
        let mut r = tokio::io::BufReader::with_capacity(7, input);
        let mut out = Vec::new();
        while let Some(l) = next_line(&mut r, max).await {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn splits_caps_and_keeps_going() {
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":\"{}\"}}",
            "x".repeat(1000)
        );
        let input = format!("{{\"a\":1}}\n{big}\n{{\"b\":2}}\nlast");
        let lines = all(input.as_bytes(), 100).await;
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], Line::Full(b"{\"a\":1}".to_vec()));
        match &lines[1] {
            Line::Oversize { head, tail, len } => {
                assert_eq!(*len, big.len());
                assert!(head.len() <= KEEP && tail.len() <= KEEP);
                assert_eq!(oversize_id(head, tail), Some(9));
            }
            l => panic!("{l:?}"),
        }
        assert_eq!(lines[2], Line::Full(b"{\"b\":2}".to_vec()));
        assert_eq!(lines[3], Line::Full(b"last".to_vec()));
    }

    #[test]
    fn ids_from_either_end() {
        let table: [(&str, &str, Option<u64>); 5] = [
            (
                "{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{",
                "xx\"}}",
                Some(42),
            ),
            (
                "{\"result\":{\"content\":[",
                "]},\"jsonrpc\":\"2.0\",\"id\":17}\r",
                Some(17),
            ),
            ("{\"result\":{\"id\":3,", "\"}]}}", None),
            ("{\"jsonrpc\": \"2.0\", \"id\": 5, ", "}", Some(5)),
            ("garbage", "garbage", None),
        ];
        for (h, t, want) in table {
            assert_eq!(oversize_id(h.as_bytes(), t.as_bytes()), want, "{h} .. {t}");
        }
    }
}
