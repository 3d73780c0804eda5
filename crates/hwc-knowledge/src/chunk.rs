//! Splitting documents into chunks that respect headings.
//!
//! Markdown is cut at ATX headings (`#` to `######`, never inside a fenced
//! code block); each chunk carries its heading path ("Runbook > Incidents >
//! Clients get errors") and its source path. A section longer than
//! [`ChunkOptions::max_chars`] is cut at paragraph, then line, then char
//! boundaries, each piece overlapping the previous by up to
//! [`ChunkOptions::overlap`] characters. Plain text is split by paragraphs
//! (blank lines) under the same bound. A chunk is also bounded in tokens
//! ([`ChunkOptions::max_tokens`], heading path included, counted by
//! [`estimate_tokens`]), because the embedding model's context is tokens,
//! not characters: 1200 characters of prose are about 300 WordPiece
//! tokens, of hex digests or CJK text about 1000.

use serde::Serialize;

/// Bounds on chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// The most characters of body text in one chunk (the heading path is
    /// extra). 1200 keeps a chunk under all-MiniLM-L6-v2's 512 tokens.
    pub max_chars: usize,
    /// Characters of the previous piece repeated at the start of the next
    /// when a long section is cut.
    pub overlap: usize,
    /// The most tokens, by [`estimate_tokens`], of the embedded text (the
    /// heading path and the body). 500 keeps a chunk under
    /// all-MiniLM-L6-v2's 512 positions ([CLS] and [SEP] are counted by
    /// the estimate); llama-server refuses longer inputs rather than
    /// truncating them.
    pub max_tokens: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        Self {
            max_chars: 1200,
            overlap: 150,
            max_tokens: 500,
        }
    }
}

/// A conservative estimate of the WordPiece tokens (BERT uncased, as
/// all-MiniLM-L6-v2 uses) of `text`, [CLS] and [SEP] included: each
/// punctuation or symbol character is one token; a word of ASCII letters
/// is one token per 3 letters, rounded up (real vocabulary words are
/// mostly one token, so prose is overestimated by about 1.4x, measured
/// against llama-server's /tokenize on the corpus); any other word (with
/// digits, accents, or non-Latin script) one token per character, the
/// worst case (hex digests and CJK are close to it). It can still
/// underestimate consonant salad ("qzxjkv"); an input the endpoint then
/// refuses is split by [`crate::embed::embed_fitting`].
pub fn estimate_tokens(text: &str) -> usize {
    let mut n = 2;
    let mut word = 0usize;
    let mut plain = true;
    let end_word = |word: &mut usize, plain: &mut bool, n: &mut usize| {
        if *word > 0 {
            *n += if *plain { word.div_ceil(3) } else { *word };
        }
        *word = 0;
        *plain = true;
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word += 1;
            plain &= c.is_ascii_alphabetic();
        } else {
            end_word(&mut word, &mut plain, &mut n);
            if !c.is_whitespace() {
                n += 1;
            }
        }
    }
    end_word(&mut word, &mut plain, &mut n);
    n
}

/// One piece of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    /// The document's path (as the index names it).
    pub source: String,
    /// The headings above the text, outermost first (empty before the first).
    pub heading: Vec<String>,
    /// The body text.
    pub text: String,
}

impl Chunk {
    /// The heading path joined with " > ".
    pub fn heading_path(&self) -> String {
        self.heading.join(" > ")
    }
}

/// Whether `path` is chunked as Markdown (by its extension).
pub fn is_markdown(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

/// Chunks a document by its kind: Markdown by headings, anything else by
/// paragraphs.
pub fn chunk_document(source: &str, text: &str, opts: ChunkOptions) -> Vec<Chunk> {
    if is_markdown(source) {
        chunk_markdown(source, text, opts)
    } else {
        chunk_text(source, text, opts)
    }
}

/// The level and title of an ATX heading line, if it is one.
fn heading(line: &str) -> Option<(usize, String)> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = trimmed.bytes().take_while(|b| *b == b'#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &trimmed[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim().to_string();
    Some((level, title))
}

/// Chunks Markdown by its headings.
pub fn chunk_markdown(source: &str, text: &str, opts: ChunkOptions) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut body = String::new();
    let mut fence: Option<&str> = None;
    let flush = |stack: &[(usize, String)], body: &mut String, out: &mut Vec<Chunk>| {
        let path: Vec<String> = stack.iter().map(|(_, t)| t.clone()).collect();
        let budget = body_budget(opts, &path.join(" > "));
        for piece in split_tokens(body, opts, budget) {
            out.push(Chunk {
                source: source.to_string(),
                heading: path.clone(),
                text: piece,
            });
        }
        body.clear();
    };
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(f) = fence {
            if t.starts_with(f) {
                fence = None;
            }
        } else if t.starts_with("```") || t.starts_with("~~~") {
            fence = Some(if t.starts_with("```") { "```" } else { "~~~" });
        } else if let Some((level, title)) = heading(line) {
            flush(&stack, &mut body, &mut out);
            while stack.last().is_some_and(|(l, _)| *l >= level) {
                stack.pop();
            }
            stack.push((level, title));
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    flush(&stack, &mut body, &mut out);
    out
}

/// Chunks plain text by paragraphs under the size bound.
pub fn chunk_text(source: &str, text: &str, opts: ChunkOptions) -> Vec<Chunk> {
    split_tokens(text, opts, body_budget(opts, ""))
        .into_iter()
        .map(|text| Chunk {
            source: source.to_string(),
            heading: Vec::new(),
            text,
        })
        .collect()
}

/// The tokens left for the body under `heading` (the embedded text is the
/// heading path, a blank line, then the body); never under 32, so a
/// huge heading still leaves a usable body.
fn body_budget(opts: ChunkOptions, heading: &str) -> usize {
    let heading = if heading.is_empty() {
        0
    } else {
        estimate_tokens(heading) - 2
    };
    opts.max_tokens.saturating_sub(heading).max(32)
}

/// [`split_bounded`], then every piece over `budget` estimated tokens cut
/// again with a proportionally smaller character bound, until each fits
/// (or pieces are down to 16 characters, the floor of [`split_bounded`]).
pub fn split_tokens(text: &str, opts: ChunkOptions, budget: usize) -> Vec<String> {
    let mut out = Vec::new();
    for piece in split_bounded(text, opts) {
        let tokens = estimate_tokens(&piece);
        let chars = piece.chars().count();
        if tokens <= budget || chars <= 16 {
            out.push(piece);
            continue;
        }
        // 10% under the proportional size, so the next round usually fits.
        let max_chars = (chars * budget / tokens * 9 / 10).clamp(16, chars - 1);
        let smaller = ChunkOptions {
            max_chars,
            overlap: opts.overlap.min(max_chars / 4),
            ..opts
        };
        out.extend(split_tokens(&piece, smaller, budget));
    }
    out
}

/// Splits `text` into pieces of at most `max_chars` characters, packing
/// whole paragraphs, then lines, then characters, with overlap between
/// consecutive pieces. Blank input gives no piece.
pub fn split_bounded(text: &str, opts: ChunkOptions) -> Vec<String> {
    let max = opts.max_chars.max(16);
    let overlap = opts.overlap.min(max / 2);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    if trimmed.chars().count() <= max {
        return vec![trimmed.to_string()];
    }
    // Units: paragraphs, with over-long ones cut into lines, then chars.
    let mut units: Vec<String> = Vec::new();
    for para in trimmed
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if para.chars().count() <= max - overlap {
            units.push(para.to_string());
            continue;
        }
        for line in para.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            let chars: Vec<char> = line.chars().collect();
            for part in chars.chunks(max - overlap) {
                units.push(part.iter().collect());
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for unit in units {
        let len = cur.chars().count();
        if len > 0 && len + 2 + unit.chars().count() > max {
            let tail = tail_chars(&cur, overlap);
            out.push(std::mem::take(&mut cur));
            cur = tail;
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(&unit);
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// The last `n` characters of `s`, starting at a word boundary when one is near.
fn tail_chars(s: &str, n: usize) -> String {
    if n == 0 {
        return String::new();
    }
    let count = s.chars().count();
    let start = count.saturating_sub(n);
    let tail: String = s.chars().skip(start).collect();
    match tail.find(char::is_whitespace) {
        Some(i) if i < tail.len() / 2 => tail[i..].trim_start().to_string(),
        _ => tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(max: usize, overlap: usize) -> ChunkOptions {
        ChunkOptions {
            max_chars: max,
            overlap,
            max_tokens: 100_000,
        }
    }

    #[test]
    fn estimate_tokens_table() {
        for (text, want) in [
            ("", 2),
            ("hello world", 2 + 2 + 2),
            ("disk full!", 2 + 2 + 2 + 1),
            ("a3f9c2e1", 2 + 8),
            ("日本語", 2 + 3),
            ("status=503", 2 + 2 + 1 + 3),
            ("  \n\t ", 2),
        ] {
            assert_eq!(estimate_tokens(text), want, "{text:?}");
        }
    }

    #[test]
    fn dense_text_is_cut_by_tokens_not_just_chars() {
        // 1200 characters of hex digests are ~1000 tokens: the char bound
        // alone would let them through as one chunk.
        let hex = "a3f9c2e1b7d64058 ".repeat(70);
        let md = format!("# Audit\n\n## Digests\n\n{hex}\n");
        let c = chunk_markdown("a.md", &md, ChunkOptions::default());
        assert!(c.len() >= 2, "{}", c.len());
        for ch in &c {
            let embedded = format!("{}\n\n{}", ch.heading_path(), ch.text);
            assert!(
                estimate_tokens(&embedded) <= 500,
                "{}",
                estimate_tokens(&embedded)
            );
        }
        // Prose of the same length stays one chunk.
        let prose = "the router sheds load when its queue is full. ".repeat(25);
        let c = chunk_markdown("b.md", &format!("# A\n\n{prose}"), ChunkOptions::default());
        assert_eq!(c.len(), 1);
        // CJK text, one token a character.
        let cjk = "日本語のテキスト。".repeat(200);
        for ch in chunk_text("c.txt", &cjk, ChunkOptions::default()) {
            assert!(estimate_tokens(&ch.text) <= 500);
        }
    }

    #[test]
    fn headings_make_paths_and_fences_are_not_headings() {
        let md = "intro\n# Runbook\ntop\n## Deploy\nsteps\n```sh\n# not a heading\n```\n### Verify\ncurl\n## Roll back\nback\n#nospace\n";
        let c = chunk_markdown("docs/runbook.md", md, ChunkOptions::default());
        let got: Vec<(String, &str)> = c
            .iter()
            .map(|c| (c.heading_path(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (String::new(), "intro"),
                ("Runbook".into(), "top"),
                (
                    "Runbook > Deploy".into(),
                    "steps\n```sh\n# not a heading\n```"
                ),
                ("Runbook > Deploy > Verify".into(), "curl"),
                ("Runbook > Roll back".into(), "back\n#nospace"),
            ]
        );
        assert!(c.iter().all(|c| c.source == "docs/runbook.md"));
    }

    #[test]
    fn heading_line_table() {
        for (line, want) in [
            ("# A", Some((1, "A"))),
            ("###### F ##", Some((6, "F"))),
            ("####### seven", None),
            ("#tag", None),
            ("    # indented code", None),
            ("   ## three spaces", Some((2, "three spaces"))),
            ("#", Some((1, ""))),
        ] {
            assert_eq!(
                heading(line),
                want.map(|(l, t)| (l, t.to_string())),
                "{line:?}"
            );
        }
    }

    #[test]
    fn long_sections_are_bounded_with_overlap() {
        let para = |i: usize| format!("paragraph {i} {}", "word ".repeat(30));
        let text: Vec<String> = (0..20).map(para).collect();
        let text = text.join("\n\n");
        let pieces = split_bounded(&text, opts(400, 60));
        assert!(pieces.len() > 5);
        for p in &pieces {
            assert!(p.chars().count() <= 400 + 60, "{}", p.len());
        }
        for w in pieces.windows(2) {
            let tail: String = w[0]
                .chars()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            assert!(w[1].contains(tail.trim()), "no overlap between pieces");
        }
        // Every paragraph survives somewhere.
        for i in 0..20 {
            assert!(pieces
                .iter()
                .any(|p| p.contains(&format!("paragraph {i} "))));
        }
    }

    #[test]
    fn one_giant_line_is_cut_on_char_boundaries() {
        let text = "é".repeat(5000);
        let pieces = split_bounded(&text, opts(1000, 100));
        assert!(pieces.len() >= 5);
        assert!(pieces.iter().all(|p| p.chars().count() <= 1100));
    }

    #[test]
    fn plain_text_by_paragraphs_and_blank_gives_nothing() {
        assert!(chunk_text("a.txt", "  \n\n ", ChunkOptions::default()).is_empty());
        let c = chunk_document(
            "notes.txt",
            "# not markdown here\n\nsecond",
            ChunkOptions::default(),
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].heading.is_empty());
        let c = chunk_document("a.txt", &"x ".repeat(2000), opts(500, 50));
        assert!(c.len() > 1);
    }
}
