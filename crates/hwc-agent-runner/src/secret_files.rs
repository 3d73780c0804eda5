//! Secrets kept in a job's workspace: the values of dotenv files, `.netrc`
//! and `.pgpass`, found when the workspace is prepared and given to the
//! [`crate::redact::Redactor`] as exact values.
//!
//! The redactor's patterns see a secret only with its context (a token's
//! format, `PASSWORD=` before a random value); an R0 line such as
//! `cut -d= -f2 .env` prints the bare value, which no pattern can tell from
//! any other word. Knowing the values closes that path for every read that
//! prints them as they are. A value transformed on the way (`base64`,
//! `rev`) is not recognised; the threat model in docs/agent-runner.md says
//! so.
//!
//! The walk is bounded (depth, entries, file size) and skips `.git` and
//! dependency trees: a repository is not a place to spend the job's time.

use std::path::Path;

/// How deep under the workspace files are looked for.
const MAX_DEPTH: usize = 4;
/// How many directory entries are looked at, at most.
const MAX_ENTRIES: usize = 5000;
/// Larger files are not secret files.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Shorter values are too likely to occur by chance.
const MIN_VALUE_LEN: usize = 8;
/// Directories never walked.
const SKIP_DIRS: [&str; 6] = [
    ".git",
    "node_modules",
    "target",
    ".venv",
    "vendor",
    ".hwc-rollback",
];

/// A value worth remembering: long enough, with a letter or digit mix that
/// is not a plain word or number.
fn is_secret_value(v: &str) -> bool {
    v.len() >= MIN_VALUE_LEN
        && !v.contains("://")
        && v.chars().any(|c| c.is_ascii_alphabetic())
        && crate::redact::shannon_entropy(v) >= 2.5
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    // An unquoted value ends at a comment.
    v.split(" #").next().unwrap_or(v).trim()
}

/// `(KEY, value)` of the secret-named assignments in a dotenv text
/// (`KEY=value`, `export KEY="value"`, `KEY: value`).
pub fn dotenv_secrets(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            continue;
        };
        let key = key.trim();
        let value = unquote(value);
        if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && crate::redact::names_a_secret(key)
            && is_secret_value(value)
        {
            out.push((key.to_string(), value.to_string()));
        }
    }
    out
}

/// The passwords of a `.netrc` (`password X` anywhere in it).
fn netrc_secrets(text: &str) -> Vec<(String, String)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "password" && w[1].len() >= MIN_VALUE_LEN)
        .map(|w| ("netrc-password".to_string(), w[1].to_string()))
        .collect()
}

/// The passwords of a `.pgpass` (`host:port:db:user:password` lines).
fn pgpass_secrets(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.splitn(5, ':').nth(4))
        .filter(|p| p.len() >= MIN_VALUE_LEN)
        .map(|p| ("pgpass-password".to_string(), p.to_string()))
        .collect()
}

/// `(name, value)` of the secrets in a file's text.
type Reader = fn(&str) -> Vec<(String, String)>;

/// How a file is read for secrets, by its name; `None`: not a secret file.
fn reader_for(name: &str) -> Option<Reader> {
    match name {
        ".netrc" | "_netrc" => Some(netrc_secrets),
        ".pgpass" => Some(pgpass_secrets),
        n if n == ".env" || n.starts_with(".env.") || n.ends_with(".env") => Some(dotenv_secrets),
        _ => None,
    }
}

/// `(name, value)` of every secret found in the workspace `root`, named
/// `KEY (path)` for the redactor's `[REDACTED:...]`.
pub fn scan(root: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut seen = 0usize;
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return found;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            // symlink_metadata: a link is not followed out of the workspace.
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                if depth + 1 < MAX_DEPTH && !SKIP_DIRS.contains(&name.as_str()) {
                    stack.push((e.path(), depth + 1));
                }
                continue;
            }
            let Some(read) = reader_for(&name) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let rel = e.path();
            let rel = rel.strip_prefix(root).unwrap_or(&rel).display().to_string();
            found.extend(
                read(&text)
                    .into_iter()
                    .map(|(k, v)| (format!("{k} ({rel})"), v)),
            );
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_values_of_secret_keys_are_found() {
        let text = "\
# comment: PASSWORD=notthis123
APP_ENV=dev
DATABASE_HOST=db.internal
DATABASE_PASSWORD=vT7q-Zr3x9LmK2pW8sYb4NcE
export GITHUB_TOKEN=\"abcDEF123ghiJKL456\"
API-KEY: 'k3y-w1th-qu0tes'
SECRET_URL=https://vault.example/v1
SHORT_TOKEN=abc
AUTH_ENABLED=true
NUMERIC_PASSWORD=12345678901
";
        let found = dotenv_secrets(text);
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["DATABASE_PASSWORD", "GITHUB_TOKEN", "API-KEY"]);
        assert_eq!(found[1].1, "abcDEF123ghiJKL456");
        assert_eq!(found[2].1, "k3y-w1th-qu0tes");
    }

    #[test]
    fn netrc_and_pgpass_passwords_are_found() {
        assert_eq!(
            netrc_secrets("machine git.example login me password hunter2hunter2"),
            [("netrc-password".into(), "hunter2hunter2".into())]
        );
        assert_eq!(
            pgpass_secrets("db:5432:*:billing:pg-S3cret-pass\n# x:y:z:w:commentedout"),
            [("pgpass-password".into(), "pg-S3cret-pass".into())]
        );
    }

    #[test]
    fn the_walk_finds_secret_files_and_skips_git_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("deploy/prod")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".env"), "DB_PASSWORD=Top-Secret-42x\n").unwrap();
        std::fs::write(
            root.join("deploy/prod/app.env"),
            "API_TOKEN=tok-9f8e7d6c5b\n",
        )
        .unwrap();
        std::fs::write(root.join(".git/.env"), "GIT_TOKEN=not-in-git-dir1\n").unwrap();
        std::fs::write(root.join("README.md"), "PASSWORD=in-a-readme-99\n").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.env"), "OUT_TOKEN=outside-the-ws-7\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("linked")).unwrap();
        let mut found = scan(root);
        found.sort();
        assert_eq!(
            found,
            [
                (
                    "API_TOKEN (deploy/prod/app.env)".to_string(),
                    "tok-9f8e7d6c5b".to_string()
                ),
                (
                    "DB_PASSWORD (.env)".to_string(),
                    "Top-Secret-42x".to_string()
                ),
            ]
        );
    }
}
