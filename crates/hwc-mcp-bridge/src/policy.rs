//! Who may use which server and tool: pure functions of the server's
//! `allowed_tools`/`denied_tools` and the caller's token scopes, applied
//! to `tools/list` results and to `tools/call` before it reaches the
//! child. Tool annotations (`readOnlyHint`, ...) are passed on to clients
//! and never consulted here: a server describes its tools, it does not
//! get to decide what callers may do with them.

use serde_json::Value;

/// A server's own tool rules (from its `[[servers]]` entry).
#[derive(Debug, Clone, Copy)]
pub struct ToolRules<'a> {
    /// The server's name (scopes are `server` or `server/tool`).
    pub server: &'a str,
    /// Tools allowed; all when `None`.
    pub allowed: Option<&'a [String]>,
    /// Tools denied; wins over `allowed`.
    pub denied: &'a [String],
}

/// Why a tool is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The caller's scopes name neither the server nor any of its tools.
    ServerOutOfScope,
    /// `denied_tools` lists it.
    Denied,
    /// `allowed_tools` is set and does not list it.
    NotAllowed,
    /// The caller's scopes name tools of this server, not this one.
    ToolOutOfScope,
}

impl Denial {
    /// A sentence for the caller.
    pub fn message(&self, server: &str, tool: &str) -> String {
        match self {
            Denial::ServerOutOfScope => {
                format!("this token may not use server `{server}` (its scopes do not name it)")
            }
            Denial::Denied => {
                format!("tool `{tool}` of server `{server}` is denied by the bridge's policy")
            }
            Denial::NotAllowed => {
                format!("tool `{tool}` of server `{server}` is not in the bridge's allowed_tools")
            }
            Denial::ToolOutOfScope => {
                format!("this token may not call tool `{tool}` of server `{server}`")
            }
        }
    }
}

/// May a caller with `scopes` use `server` at all (initialize, list)?
/// `None` scopes: every server.
pub fn server_in_scope(scopes: Option<&[String]>, server: &str) -> bool {
    match scopes {
        None => true,
        Some(s) => s.iter().any(|x| {
            x == server
                || x.strip_prefix(server)
                    .is_some_and(|rest| rest.starts_with('/'))
        }),
    }
}

/// May a caller with `scopes` see and call `tool`?
pub fn tool_permitted(
    rules: ToolRules<'_>,
    scopes: Option<&[String]>,
    tool: &str,
) -> Result<(), Denial> {
    if !server_in_scope(scopes, rules.server) {
        return Err(Denial::ServerOutOfScope);
    }
    if rules.denied.iter().any(|d| d == tool) {
        return Err(Denial::Denied);
    }
    if let Some(allowed) = rules.allowed {
        if !allowed.iter().any(|a| a == tool) {
            return Err(Denial::NotAllowed);
        }
    }
    if let Some(s) = scopes {
        let whole = s.iter().any(|x| x == rules.server);
        let this = s
            .iter()
            .any(|x| x.split_once('/') == Some((rules.server, tool)));
        if !whole && !this {
            return Err(Denial::ToolOutOfScope);
        }
    }
    Ok(())
}

/// A `tools/list` result with the tools the caller may not use removed;
/// returns how many were removed. Anything not shaped like a tool list is
/// left alone.
pub fn filter_tools_list(
    result: &mut Value,
    rules: ToolRules<'_>,
    scopes: Option<&[String]>,
) -> usize {
    let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
        return 0;
    };
    let before = tools.len();
    tools.retain(|t| {
        t.get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| tool_permitted(rules, scopes, name).is_ok())
    });
    before - tools.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tool_decisions() {
        let allowed = v(&["a", "b", "c"]);
        let denied = v(&["c"]);
        let rules = ToolRules {
            server: "git",
            allowed: Some(&allowed),
            denied: &denied,
        };
        let open = ToolRules {
            server: "git",
            allowed: None,
            denied: &[],
        };
        let server_scope = v(&["git"]);
        let tool_scope = v(&["git/a", "time"]);
        let other = v(&["time"]);
        let prefix_trap = v(&["gitx", "gi"]);
        let denied_scope = v(&["git/c"]);
        type Row<'a> = (
            ToolRules<'a>,
            Option<&'a [String]>,
            &'a str,
            Result<(), Denial>,
        );
        let table: Vec<Row> = vec![
            (rules, None, "a", Ok(())),
            (rules, None, "c", Err(Denial::Denied)),
            (rules, None, "z", Err(Denial::NotAllowed)),
            (open, None, "anything", Ok(())),
            (rules, Some(&server_scope), "b", Ok(())),
            (rules, Some(&tool_scope), "a", Ok(())),
            (rules, Some(&tool_scope), "b", Err(Denial::ToolOutOfScope)),
            (rules, Some(&other), "a", Err(Denial::ServerOutOfScope)),
            (
                rules,
                Some(&prefix_trap),
                "a",
                Err(Denial::ServerOutOfScope),
            ),
            // A token scoped to a denied tool still can't call it.
            (rules, Some(&denied_scope), "c", Err(Denial::Denied)),
            (rules, Some(&[]), "a", Err(Denial::ServerOutOfScope)),
        ];
        for (r, scopes, tool, want) in table {
            assert_eq!(
                tool_permitted(r, scopes, tool),
                want,
                "{tool} with {scopes:?}"
            );
        }
        assert!(server_in_scope(Some(&tool_scope), "git"));
        assert!(!server_in_scope(Some(&prefix_trap), "git"));
    }

    #[test]
    fn list_filtering_ignores_annotations() {
        let denied = v(&["rm"]);
        let rules = ToolRules {
            server: "fs",
            allowed: None,
            denied: &denied,
        };
        let mut result = json!({"tools": [
            {"name": "read", "annotations": {"readOnlyHint": true}},
            {"name": "rm", "annotations": {"readOnlyHint": true}},
            {"name": "write"},
            {"nameless": true}
        ], "nextCursor": "x"});
        assert_eq!(filter_tools_list(&mut result, rules, None), 2);
        let names: Vec<&str> = result["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["read", "write"]);
        assert_eq!(result["nextCursor"], "x");
        let scoped = v(&["fs/read"]);
        filter_tools_list(&mut result, rules, Some(&scoped));
        assert_eq!(result["tools"].as_array().unwrap().len(), 1);
        let mut not_a_list = json!({"tools": "?"});
        assert_eq!(filter_tools_list(&mut not_a_list, rules, None), 0);
    }
}
