//! Output for people: plain aligned tables (what kubectl and systemctl
//! print), colour only where the output is a terminal (anstream strips it
//! otherwise, and honours `NO_COLOR`), durations and ages short.

use anstyle::{AnsiColor, Style};
use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

/// Green: up, ok.
pub const GOOD: Style = AnsiColor::Green.on_default();
/// Yellow: degraded, waiting, cooling.
pub const WARN: Style = AnsiColor::Yellow.on_default();
/// Red: down, failed.
pub const BAD: Style = AnsiColor::Red.on_default().bold();
/// Bold: headings.
pub const HEAD: Style = Style::new().bold();

/// `text` in `style` (the escape codes, which anstream keeps only on a terminal).
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// The style of a state word.
pub fn state_style(state: &str) -> Style {
    match state {
        "up" | "ok" | "running" | "present" | "in_rotation" | "completed" | "per_session" => GOOD,
        "down" | "failed" | "unreachable" | "missing" => BAD,
        _ => WARN,
    }
}

/// A state word, coloured by [`state_style`].
pub fn state(s: &str) -> String {
    paint(state_style(s), s)
}

/// A table without borders, columns aligned, headers bold.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| paint(HEAD, h)));
    t
}

/// A table's text with each line's trailing spaces cut.
pub fn lines(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `3d4h`, `2h5m`, `4m10s`, `9s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// How long ago unix time `then` (seconds) was, from `now`.
pub fn ago(now: f64, then: f64) -> String {
    if then <= 0.0 || then > now + 1.0 {
        return "-".into();
    }
    format!("{} ago", duration((now - then) as u64))
}

/// `1.5 GiB`, `12.0 MiB`, `900 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The wire name of a serde enum value (`in_rotation`), as `--json` shows it.
pub fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Unix seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms() {
        assert_eq!(duration(9), "9s");
        assert_eq!(duration(250), "4m10s");
        assert_eq!(duration(7500), "2h5m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600), "3d4h");
        assert_eq!(bytes(900), "900 B");
        assert_eq!(bytes(1536 * 1024 * 1024), "1.5 GiB");
        assert_eq!(ago(100.0, 40.0), "1m0s ago");
        assert_eq!(ago(100.0, 0.0), "-");
    }
}
