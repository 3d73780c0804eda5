//! Shell command lines split into the simple commands the policy judges.
//!
//! The agent proposes shell commands as strings. Before one runs, every
//! command it would execute is found here: pipelines, `&&`, `||`, `;`,
//! `&`, newlines and `( … )` subshells are split; leading `NAME=value`
//! assignments, `env`, `command`, `exec`, `nohup`, `nice` and `timeout`
//! are stripped to reach the real program; `sh -c '…'` (and bash, dash,
//! zsh) is parsed again, recursively. Output redirections are kept so the
//! policy can see a write.
//!
//! The language accepted is a deliberate subset (ADR 0009): anything whose
//! effect depends on an expansion the policy cannot see before the shell
//! runs (`$VAR`, `$(…)`, backticks, `<(…)`, brace expansion, here
//! documents, globs in a command name, `eval`, `source`, shell keywords
//! such as `if` or `for`) is [`ParseError`], and the policy treats that as
//! the strictest class. A full bash parser would accept all of those and
//! still leave the classifier blind to what they expand to.

use std::fmt;

/// One program the command line would run, with what is around it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimpleCommand {
    /// `NAME=value` assignments before the program (and from `env`).
    pub assignments: Vec<(String, String)>,
    /// The program and its arguments, quotes removed.
    pub words: Vec<String>,
    /// Redirections, in order.
    pub redirects: Vec<Redirect>,
}

impl SimpleCommand {
    /// Output redirections to something other than `/dev/null` or another
    /// descriptor: the command writes a file.
    pub fn writes_files(&self) -> Vec<&str> {
        self.redirects
            .iter()
            .filter(|r| r.op.writes() && r.target != "/dev/null")
            .map(|r| r.target.as_str())
            .collect()
    }

    /// The words joined back with quoting where needed, for messages.
    pub fn display(&self) -> String {
        self.words
            .iter()
            .map(|w| quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A redirection such as `2>/dev/null` or `>> log`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Redirect {
    /// The descriptor before the operator, if written.
    pub fd: Option<u32>,
    /// The operator.
    pub op: RedirectOp,
    /// The file (or descriptor, for `>&`) it names.
    pub target: String,
}

/// Redirection operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectOp {
    /// `<`
    Read,
    /// `>` or `>|`
    Write,
    /// `>>`
    Append,
    /// `&>` (stdout and stderr to a file)
    WriteBoth,
    /// `>&N` or `<&N`: duplicate a descriptor.
    Duplicate,
}

impl RedirectOp {
    /// Whether the redirection may create or change a file.
    pub fn writes(self) -> bool {
        matches!(self, Self::Write | Self::Append | Self::WriteBoth)
    }
}

/// Why a command line is outside the subset the policy can judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (at byte {at}); rewrite the command without it, or use a typed tool")]
pub struct ParseError {
    /// What was found.
    pub reason: String,
    /// Byte offset in the innermost string parsed.
    pub at: usize,
}

/// How deep `sh -c` may nest before the line is refused.
const MAX_DEPTH: usize = 4;

/// Every simple command `line` would run, in order.
pub fn parse(line: &str) -> Result<Vec<SimpleCommand>, ParseError> {
    parse_at_depth(line, 0)
}

fn parse_at_depth(line: &str, depth: usize) -> Result<Vec<SimpleCommand>, ParseError> {
    if depth > MAX_DEPTH {
        return Err(ParseError {
            reason: format!("more than {MAX_DEPTH} nested `sh -c`"),
            at: 0,
        });
    }
    let tokens = lex(line)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        out: Vec::new(),
        depth,
    };
    parser.list(false)?;
    if parser.out.is_empty() {
        return Err(ParseError {
            reason: "no command".into(),
            at: 0,
        });
    }
    Ok(parser.out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A word; `plain` says that nothing before its first `=` was quoted
    /// or escaped (so `A=b` may be an assignment and `2>` a descriptor),
    /// `glob` that an unquoted `*`, `?` or `[` appeared.
    Word {
        text: String,
        glob: bool,
        plain: bool,
        at: usize,
    },
    Op(&'static str, usize),
    Redirect(Option<u32>, RedirectOp, usize),
}

fn err(reason: impl Into<String>, at: usize) -> ParseError {
    ParseError {
        reason: reason.into(),
        at,
    }
}

/// Splits a line into words and operators, removing quotes.
fn lex(line: &str) -> Result<Vec<Token>, ParseError> {
    let bytes: Vec<(usize, char)> = line.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut word = String::new();
    let mut in_word = false;
    let mut glob = false;
    let mut plain = true;
    let mut seen_eq = false;
    let mut start = 0;
    macro_rules! flush {
        () => {
            if in_word {
                out.push(Token::Word {
                    text: std::mem::take(&mut word),
                    glob,
                    plain,
                    at: start,
                });
                in_word = false;
                glob = false;
                plain = true;
                seen_eq = false;
            }
        };
    }
    while i < bytes.len() {
        let (at, c) = bytes[i];
        let next = bytes.get(i + 1).map(|&(_, c)| c);
        if !in_word {
            start = at;
        }
        match c {
            ' ' | '\t' => {
                flush!();
                i += 1;
            }
            '\n' => {
                flush!();
                out.push(Token::Op(";", at));
                i += 1;
            }
            '#' if !in_word => {
                while i < bytes.len() && bytes[i].1 != '\n' {
                    i += 1;
                }
            }
            '\'' => {
                in_word = true;
                plain &= seen_eq;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(err("unterminated single quote", at)),
                        Some(&(_, '\'')) => break,
                        Some(&(_, ch)) => word.push(ch),
                    }
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                in_word = true;
                plain &= seen_eq;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(err("unterminated double quote", at)),
                        Some(&(_, '"')) => break,
                        Some(&(p, '$')) => {
                            return Err(err("`$` expansion inside double quotes", p))
                        }
                        Some(&(p, '`')) => return Err(err("backtick command substitution", p)),
                        Some(&(_, '\\')) => {
                            i += 1;
                            match bytes.get(i) {
                                None => return Err(err("unterminated double quote", at)),
                                Some(&(_, ch @ ('$' | '`' | '"' | '\\'))) => word.push(ch),
                                Some(&(_, '\n')) => {}
                                Some(&(_, ch)) => {
                                    word.push('\\');
                                    word.push(ch);
                                }
                            }
                        }
                        Some(&(_, ch)) => word.push(ch),
                    }
                    i += 1;
                }
                i += 1;
            }
            '\\' => {
                match next {
                    None => return Err(err("trailing backslash", at)),
                    Some('\n') => {}
                    Some(ch) => {
                        in_word = true;
                        plain &= seen_eq;
                        word.push(ch);
                    }
                }
                i += 2;
            }
            '$' => return Err(err("`$` expansion (variable, `$(…)` or arithmetic)", at)),
            '`' => return Err(err("backtick command substitution", at)),
            '{' | '}' => {
                return Err(err(
                    "unquoted `{` or `}` (brace expansion or group); quote it",
                    at,
                ))
            }
            '|' | '&' | ';' | '(' | ')' => {
                flush!();
                let two = next.map(|n| (c, n));
                let (op, len): (&'static str, usize) = match two {
                    Some(('|', '|')) => ("||", 2),
                    Some(('&', '&')) => ("&&", 2),
                    Some(('&', '>')) => {
                        let len = if bytes.get(i + 2).map(|b| b.1) == Some('>') {
                            3
                        } else {
                            2
                        };
                        out.push(Token::Redirect(None, RedirectOp::WriteBoth, at));
                        i += len;
                        continue;
                    }
                    Some((';', ';')) => return Err(err("`;;` outside a case statement", at)),
                    _ => match c {
                        '|' => ("|", 1),
                        '&' => ("&", 1),
                        ';' => (";", 1),
                        '(' => ("(", 1),
                        _ => (")", 1),
                    },
                };
                out.push(Token::Op(op, at));
                i += len;
            }
            '<' | '>' => {
                // `2>` : a word of digits right before the operator is the fd.
                let fd = if in_word
                    && plain
                    && !word.is_empty()
                    && word.bytes().all(|b| b.is_ascii_digit())
                {
                    let fd = word.parse::<u32>().ok();
                    word.clear();
                    in_word = false;
                    fd
                } else {
                    flush!();
                    None
                };
                let rest: String = bytes[i..].iter().take(3).map(|&(_, c)| c).collect();
                let (op, len) = if rest.starts_with("<<") {
                    return Err(err("here document or here string", at));
                } else if rest.starts_with("<>") {
                    return Err(err("`<>` read-write redirection", at));
                } else if rest.starts_with("<(") || rest.starts_with(">(") {
                    return Err(err("process substitution", at));
                } else if rest.starts_with(">>") {
                    (RedirectOp::Append, 2)
                } else if rest.starts_with(">|") {
                    (RedirectOp::Write, 2)
                } else if rest.starts_with(">&") || rest.starts_with("<&") {
                    (RedirectOp::Duplicate, 2)
                } else if c == '<' {
                    (RedirectOp::Read, 1)
                } else {
                    (RedirectOp::Write, 1)
                };
                out.push(Token::Redirect(fd, op, at));
                i += len;
            }
            '*' | '?' | '[' => {
                in_word = true;
                glob = true;
                word.push(c);
                i += 1;
            }
            _ => {
                in_word = true;
                seen_eq |= c == '=';
                word.push(c);
                i += 1;
            }
        }
    }
    if in_word {
        out.push(Token::Word {
            text: word,
            glob,
            plain,
            at: start,
        });
    }
    Ok(out)
}

/// Words that make a simple command something the policy can't judge.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "select", "function", "[[", "]]", "coproc", "time", "!",
];

/// Programs that run a string or a file as shell code the policy never sees.
const EVALUATORS: &[&str] = &["eval", "source", ".", "trap", "alias"];

/// Shells whose `-c STRING` is parsed again.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash"];

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    out: Vec<SimpleCommand>,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn at(&self) -> usize {
        match self.peek() {
            Some(Token::Word { at, .. } | Token::Op(_, at) | Token::Redirect(_, _, at)) => *at,
            None => self.tokens.len(),
        }
    }

    /// list := pipeline ((`;` | `&` | `&&` | `||` | newline) pipeline)*
    fn list(&mut self, in_subshell: bool) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                None => return Ok(()),
                Some(Token::Op(")", at)) => {
                    if in_subshell {
                        return Ok(());
                    }
                    return Err(err("unbalanced `)`", *at));
                }
                Some(Token::Op(";", _)) => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            self.pipeline()?;
            match self.peek() {
                None => return Ok(()),
                Some(Token::Op(op @ ("&&" | "||"), at)) => {
                    let (op, at) = (*op, *at);
                    self.pos += 1;
                    if matches!(self.peek(), None | Some(Token::Op(";" | ")" | "&", _))) {
                        return Err(err(format!("`{op}` without a command after it"), at));
                    }
                }
                Some(Token::Op(";" | "&", _)) => self.pos += 1,
                Some(Token::Op(")", _)) if in_subshell => return Ok(()),
                Some(Token::Op(")", at)) => return Err(err("unbalanced `)`", *at)),
                Some(Token::Op("(", at)) => {
                    return Err(err("`(` after a command (a function definition?)", *at))
                }
                Some(_) => return Err(err("unexpected token", self.at())),
            }
        }
    }

    /// pipeline := command (`|` command)*
    fn pipeline(&mut self) -> Result<(), ParseError> {
        self.command()?;
        while let Some(Token::Op("|", _)) = self.peek() {
            self.pos += 1;
            self.command()?;
        }
        Ok(())
    }

    /// command := `(` list `)` redirects* | simple
    fn command(&mut self) -> Result<(), ParseError> {
        if let Some(Token::Op("(", at)) = self.peek() {
            let at = *at;
            self.pos += 1;
            let before = self.out.len();
            self.list(true)?;
            match self.peek() {
                Some(Token::Op(")", _)) => self.pos += 1,
                _ => return Err(err("unbalanced `(`", at)),
            }
            if self.out.len() == before {
                return Err(err("empty subshell", at));
            }
            // Redirections after a subshell apply to every command in it.
            let redirects = self.redirects_only()?;
            for c in &mut self.out[before..] {
                c.redirects.extend(redirects.iter().cloned());
            }
            return Ok(());
        }
        self.simple()
    }

    fn redirects_only(&mut self) -> Result<Vec<Redirect>, ParseError> {
        let mut out = Vec::new();
        while let Some(Token::Redirect(..)) = self.peek() {
            out.push(self.redirect()?);
        }
        Ok(out)
    }

    fn redirect(&mut self) -> Result<Redirect, ParseError> {
        let Some(Token::Redirect(fd, op, at)) = self.peek().cloned() else {
            return Err(err("expected a redirection", self.at()));
        };
        self.pos += 1;
        match self.peek().cloned() {
            Some(Token::Word { text, glob, .. }) => {
                if glob {
                    return Err(err("glob in a redirection target", at));
                }
                self.pos += 1;
                Ok(Redirect {
                    fd,
                    op,
                    target: text,
                })
            }
            _ => Err(err("redirection without a target", at)),
        }
    }

    fn simple(&mut self) -> Result<(), ParseError> {
        let start = self.at();
        let mut cmd = SimpleCommand {
            assignments: Vec::new(),
            words: Vec::new(),
            redirects: Vec::new(),
        };
        let mut first_glob = false;
        loop {
            match self.peek().cloned() {
                Some(Token::Word {
                    text, glob, plain, ..
                }) => {
                    self.pos += 1;
                    if cmd.words.is_empty() {
                        if let Some((name, value)) = assignment(&text, plain) {
                            cmd.assignments.push((name, value));
                            continue;
                        }
                        first_glob = glob;
                    }
                    cmd.words.push(text);
                }
                Some(Token::Redirect(..)) => {
                    let r = self.redirect()?;
                    cmd.redirects.push(r);
                }
                Some(Token::Op("(", at)) => {
                    return Err(err("`(` inside a command (a function definition?)", at))
                }
                _ => break,
            }
        }
        if cmd.words.is_empty() {
            if cmd.assignments.is_empty() && cmd.redirects.is_empty() {
                return Err(err("empty command", start));
            }
            // A bare assignment or redirection still changes state.
            if !cmd.assignments.is_empty() {
                return Err(err(
                    "assignment without a command (it changes the shell's environment)",
                    start,
                ));
            }
        }
        if first_glob {
            return Err(err("glob in a command name", start));
        }
        self.unwrap_and_push(cmd, start)
    }

    /// Strips wrappers (`env`, `nohup`, …) and re-parses `sh -c`.
    fn unwrap_and_push(&mut self, mut cmd: SimpleCommand, at: usize) -> Result<(), ParseError> {
        while let Some(program) = cmd.words.first().cloned() {
            let name = program.rsplit('/').next().unwrap_or(&program).to_string();
            if KEYWORDS.contains(&program.as_str()) {
                return Err(err(
                    format!("shell keyword `{program}`; the policy judges simple commands only"),
                    at,
                ));
            }
            if EVALUATORS.contains(&name.as_str()) {
                return Err(err(
                    format!("`{program}` runs shell code the policy can't see"),
                    at,
                ));
            }
            match name.as_str() {
                "env" => {
                    let mut i = 1;
                    while let Some(w) = cmd.words.get(i) {
                        if w == "-i" || w == "--ignore-environment" || w == "-" {
                            i += 1;
                        } else if w == "-u" || w == "--unset" {
                            i += 2;
                        } else if w == "--" {
                            i += 1;
                            break;
                        } else if w.starts_with('-') {
                            return Err(err(format!("`env {w}` is not understood"), at));
                        } else if let Some((n, v)) = assignment(w, true) {
                            cmd.assignments.push((n, v));
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    cmd.words.drain(..i.min(cmd.words.len()));
                }
                "nohup" | "command" | "exec" => {
                    if cmd.words.get(1).is_some_and(|w| w.starts_with('-')) {
                        return Err(err(format!("`{program}` with options"), at));
                    }
                    cmd.words.remove(0);
                }
                "nice" => {
                    let skip = match cmd.words.get(1).map(String::as_str) {
                        Some("-n") => 3,
                        Some(w) if w.starts_with("-n") || w.starts_with('-') => 2,
                        _ => 1,
                    };
                    cmd.words.drain(..skip.min(cmd.words.len()));
                }
                "timeout" => {
                    let mut i = 1;
                    while cmd.words.get(i).is_some_and(|w| w.starts_with('-')) {
                        let w = &cmd.words[i];
                        i += if w == "-s" || w == "-k" || w == "--signal" || w == "--kill-after" {
                            2
                        } else {
                            1
                        };
                    }
                    // The duration.
                    i += 1;
                    cmd.words.drain(..i.min(cmd.words.len()));
                }
                shell if SHELLS.contains(&shell) => {
                    let Some(flag) = cmd.words.get(1) else { break };
                    let is_c = flag.starts_with('-')
                        && !flag.starts_with("--")
                        && flag[1..].chars().all(|c| c.is_ascii_alphabetic())
                        && flag.contains('c');
                    if !is_c {
                        break;
                    }
                    let Some(script) = cmd.words.get(2) else {
                        return Err(err(format!("`{program} {flag}` without a command"), at));
                    };
                    let inner = parse_at_depth(script, self.depth + 1)?;
                    for mut c in inner {
                        let mut a = cmd.assignments.clone();
                        a.append(&mut c.assignments);
                        c.assignments = a;
                        c.redirects.extend(cmd.redirects.iter().cloned());
                        self.out.push(c);
                    }
                    return Ok(());
                }
                _ => break,
            }
            if cmd.words.is_empty() {
                return Err(err(format!("`{program}` without a command"), at));
            }
        }
        self.out.push(cmd);
        Ok(())
    }
}

/// `NAME=value` when `text` is one (the name unquoted, as the shell needs).
fn assignment(text: &str, plain_name: bool) -> Option<(String, String)> {
    let (name, value) = text.split_once('=')?;
    let valid = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    // `"A"=b` is a command named `A=b`, not an assignment.
    (valid && plain_name).then(|| (name.to_string(), value.to_string()))
}

/// `w` quoted for a shell when it needs it.
pub fn quote(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

impl fmt::Display for SimpleCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<String>> {
        parse(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .into_iter()
            .map(|c| c.words)
            .collect()
    }

    fn refused(line: &str) -> String {
        match parse(line) {
            Ok(c) => panic!("{line} parsed as {c:?}"),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn splits_every_way_commands_combine() {
        let table: &[(&str, &[&[&str]])] = &[
            (
                "systemctl status ollama",
                &[&["systemctl", "status", "ollama"]],
            ),
            ("a | b -x | c", &[&["a"], &["b", "-x"], &["c"]]),
            (
                "a && b || c; d & e",
                &[&["a"], &["b"], &["c"], &["d"], &["e"]],
            ),
            ("a\nb", &[&["a"], &["b"]]),
            ("(a; (b | c)) && d", &[&["a"], &["b"], &["c"], &["d"]]),
            (
                "echo 'it''s' \"a b\" c\\ d",
                &[&["echo", "its", "a b", "c d"]],
            ),
            ("FOO=1 BAR='x y' make test", &[&["make", "test"]]),
            ("env -i A=1 -- rm -rf /", &[&["rm", "-rf", "/"]]),
            (
                "sh -c 'ls; rm -rf /tmp/x'",
                &[&["ls"], &["rm", "-rf", "/tmp/x"]],
            ),
            ("bash -lc \"sh -c 'id'\"", &[&["id"]]),
            (
                "nohup nice -n 5 timeout -s KILL 5s systemctl restart x",
                &[&["systemctl", "restart", "x"]],
            ),
            ("exec /usr/bin/id", &[&["/usr/bin/id"]]),
            ("ls # rm -rf /", &[&["ls"]]),
            (
                "journalctl -u ollama -n 50 2>&1 | tail",
                &[&["journalctl", "-u", "ollama", "-n", "50"], &["tail"]],
            ),
            ("ls *.log", &[&["ls", "*.log"]]),
            ("bash script.sh", &[&["bash", "script.sh"]]),
            ("\"A\"=b ls", &[&["A=b", "ls"]]),
            ("A=\"x y\" ls", &[&["ls"]]),
        ];
        for (line, want) in table {
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|c| c.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(words(line), want, "{line}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_see_through() {
        let table: &[(&str, &str)] = &[
            ("echo $HOME", "`$` expansion"),
            ("rm -rf \"$DIR\"", "`$` expansion inside double quotes"),
            ("echo $(id)", "`$` expansion"),
            ("echo `id`", "backtick"),
            ("cat <(id)", "process substitution"),
            ("cat <<EOF", "here document"),
            ("echo {a,b}", "brace"),
            ("if true; then rm x; fi", "shell keyword `if`"),
            ("for f in a; do rm $f; done", "`$`"),
            ("eval 'rm -rf /'", "runs shell code"),
            (". ./env.sh", "runs shell code"),
            ("/usr/bin/sy* restart x", "glob in a command name"),
            ("FOO=1", "assignment without a command"),
            ("a &&", "`&&` without a command after it"),
            ("a | ", "empty command"),
            ("(a", "unbalanced `(`"),
            ("a)", "unbalanced `)`"),
            ("echo 'open", "unterminated single quote"),
            ("sh -c", "without a command"),
            ("f() { rm x; }", "unquoted `{`"),
            ("f() ls", "a function definition"),
            (
                "sh -c \"sh -c 'sh -c \\\"sh -c \\\\\\\"sh -c id\\\\\\\"\\\"'\"",
                "nested",
            ),
        ];
        for (line, want) in table {
            let got = refused(line);
            assert!(got.contains(want), "{line}: {got}");
        }
    }

    #[test]
    fn keeps_redirections_and_finds_writes() {
        let c = &parse("ls >out.txt 2>/dev/null")
            .unwrap_or_default()
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no command"));
        assert_eq!(c.words, ["ls"]);
        assert_eq!(c.writes_files(), ["out.txt"]);
        let c = parse("(echo a; echo b) >> /etc/motd").unwrap_or_default();
        assert!(c.iter().all(|c| c.writes_files() == ["/etc/motd"]));
        let c = parse("sh -c 'echo x' &> /tmp/f").unwrap_or_default();
        assert_eq!(c[0].writes_files(), ["/tmp/f"]);
        let c = parse("cmd 2>&1").unwrap_or_default();
        assert!(c[0].writes_files().is_empty());
    }

    #[test]
    fn assignments_survive_for_the_policy() {
        let c = parse("LD_PRELOAD=/tmp/x.so env PATH=/tmp ls").unwrap_or_default();
        let names: Vec<&str> = c[0].assignments.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["LD_PRELOAD", "PATH"]);
    }

    #[test]
    fn quote_round_trips_through_parse() {
        for w in ["plain", "a b", "it's", "", "$HOME"] {
            let line = format!("echo {}", quote(w));
            assert_eq!(words(&line), vec![vec!["echo".to_string(), w.to_string()]]);
        }
    }
}
