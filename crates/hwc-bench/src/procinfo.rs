//! Reading a process's CPU time and memory from `/proc`.

use std::process::Command;
use std::time::Duration;

/// A `kB` field of `/proc/PID/status`.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    kb_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// The proportional set size (`Pss` of `/proc/PID/smaps_rollup`), kB: its
/// resident pages with each shared page divided among the processes
/// sharing it, so that a sum over processes counts every page once.
pub fn pss_kb(pid: u32) -> Option<u64> {
    kb_field(
        &std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        "Pss:",
    )
}

/// The number after `field` on the line starting with it.
fn kb_field(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if it cannot be asked).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `utime + stime` of a process from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let after = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15 (1-based).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks();
    Some(Duration::from_micros((utime + stime) * 1_000_000 / ticks))
}

/// The parent pid in the text of `/proc/PID/stat`.
pub fn parse_ppid(stat: &str) -> Option<u32> {
    // After the parenthesised name: state, then ppid.
    let after = stat.get(stat.rfind(')')? + 1..)?;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// A process's arguments from `/proc/PID/cmdline` (empty for kernel
/// threads, zombies and processes that are gone).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process now: `(pid, ppid)`.
pub fn process_table() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some((pid, parse_ppid(&stat)?))
    })
    .collect()
}

/// The descendants of `root` in `table` (`(pid, ppid)` pairs), parents
/// before their children; `root` itself is not included.
pub fn descendants(root: u32, table: &[(u32, u32)]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in table {
            if ppid == parent && pid != root && !out.contains(&pid) {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_after_a_name_with_spaces() {
        assert_eq!(parse_ppid("42 (a b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("42 (x) R 1 1"), Some(1));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn kb_fields() {
        let text = "Rss:    900 kB\nPss:    512 kB\nPss_Anon:  100 kB\n";
        assert_eq!(kb_field(text, "Pss:"), Some(512));
        assert_eq!(kb_field(text, "Swap:"), None);
        assert!(pss_kb(std::process::id()).is_some_and(|kb| kb > 0));
    }

    #[test]
    fn tree() {
        let table = [(1, 0), (10, 1), (11, 10), (12, 11), (13, 10), (20, 1)];
        let mut d = descendants(10, &table);
        d.sort_unstable();
        assert_eq!(d, vec![11, 12, 13]);
        assert!(descendants(12, &table).is_empty());
    }
}
