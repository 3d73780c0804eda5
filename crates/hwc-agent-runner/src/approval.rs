//! Approvals: bound to the digest of the exact action, counted only from
//! distinct approvers who are not the requester, valid until they expire.
//!
//! The agent cannot swap the command after approval: the digest covers the
//! tool, its arguments, the environment and the target, and the action that
//! runs is the stored one, re-digested just before it runs and compared
//! ([`may_run`]). Every refusal here is a typed [`Refusal`] the API turns
//! into a 403/409 and the audit records.

use crate::policy::Risk;
use hwc_ai_core::auth::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hex SHA-256 of an action's canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionDigest(pub String);

impl std::fmt::Display for ActionDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What exactly would run: the thing an approval is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionKey {
    /// The tool (`shell`, `systemctl_restart`, `mcp:git/git_commit`).
    pub tool: String,
    /// Its arguments as the tool will receive them.
    pub arguments: Value,
    /// The environment the job runs in.
    pub environment: String,
    /// The host (or cluster, or repository) it acts on.
    pub target: String,
}

impl ActionKey {
    /// The digest an approval binds to.
    pub fn digest(&self) -> ActionDigest {
        let canonical = canonical_json(&serde_json::json!({
            "tool": self.tool,
            "arguments": self.arguments,
            "environment": self.environment,
            "target": self.target,
        }));
        ActionDigest(hex::encode(Sha256::digest(canonical.as_bytes())))
    }
}

/// JSON with object keys sorted at every level and no whitespace: one
/// byte string per value whatever order its maps were built in (serde_json
/// keeps insertion order when a dependency turns on `preserve_order`).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// An action waiting for approvals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The digest approvals must name.
    pub digest: ActionDigest,
    /// Who asked for the job (may not approve it).
    pub requester: String,
    /// The class, which fixes how many approvals.
    pub risk: Risk,
    /// Unix seconds the approval was requested.
    pub requested_at: i64,
    /// Unix seconds after which approvals no longer count.
    pub expires_at: i64,
}

impl Pending {
    /// Distinct approvals needed.
    pub fn needed(&self) -> u8 {
        self.risk.approvals()
    }
}

/// One approver's yes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The approver's token name.
    pub approver: String,
    /// The digest they approved (from the approval request they saw).
    pub digest: ActionDigest,
    /// Unix seconds.
    pub at: i64,
    /// What they said.
    #[serde(default)]
    pub comment: String,
}

/// Why an approval (or running an approved action) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case", tag = "refusal")]
pub enum Refusal {
    /// The caller's role is below approver.
    #[error("`{who}` has role {role}; approving needs role approver or admin")]
    Role {
        /// The caller.
        who: String,
        /// Their role.
        role: Role,
    },
    /// The requester tried to approve their own job.
    #[error("`{who}` asked for this job and may not approve its actions; another approver must")]
    Requester {
        /// The caller.
        who: String,
    },
    /// The same approver tried to count twice.
    #[error("`{who}` has already approved this action; it needs a different approver")]
    Twice {
        /// The caller.
        who: String,
    },
    /// The approval names a different action than the one waiting.
    #[error("the approval is for action {given}, but the action waiting is {waiting}; re-read the job and approve what is shown")]
    WrongAction {
        /// The digest in the approval.
        given: ActionDigest,
        /// The digest waiting.
        waiting: ActionDigest,
    },
    /// The approval window has passed.
    #[error("the approval request expired at {expires_at} (unix); the job must propose the action again")]
    Expired {
        /// When it expired.
        expires_at: i64,
    },
    /// Nothing is waiting for approval.
    #[error("no action of this job is waiting for approval")]
    NothingWaiting,
    /// The action about to run is not the one approved.
    #[error(
        "the action about to run ({now}) is not the one approved ({approved}); it was not run"
    )]
    Changed {
        /// Its digest now.
        now: ActionDigest,
        /// The digest approved.
        approved: ActionDigest,
    },
    /// Not enough valid approvals to run.
    #[error("{have} of {needed} approvals; waiting for more")]
    NotEnough {
        /// Valid approvals.
        have: u8,
        /// Needed.
        needed: u8,
    },
}

/// Where an action stands after an approval was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Standing {
    /// More approvals needed.
    Waiting {
        /// How many more.
        more: u8,
    },
    /// Enough: the action may run.
    Granted,
}

/// Whether `who` (with `role`) may add an approval of `digest` to `pending`
/// that already has `granted`, at `now`; the standing after it if so.
pub fn approve(
    pending: &Pending,
    granted: &[Grant],
    who: &str,
    role: Role,
    digest: &ActionDigest,
    now: i64,
) -> Result<Standing, Refusal> {
    if role < Role::Approver {
        return Err(Refusal::Role {
            who: who.into(),
            role,
        });
    }
    if now > pending.expires_at {
        return Err(Refusal::Expired {
            expires_at: pending.expires_at,
        });
    }
    if *digest != pending.digest {
        return Err(Refusal::WrongAction {
            given: digest.clone(),
            waiting: pending.digest.clone(),
        });
    }
    if who == pending.requester {
        return Err(Refusal::Requester { who: who.into() });
    }
    let valid = valid_approvers(pending, granted);
    if valid.contains(&who) {
        return Err(Refusal::Twice { who: who.into() });
    }
    let have = valid.len() as u8 + 1;
    Ok(if have >= pending.needed() {
        Standing::Granted
    } else {
        Standing::Waiting {
            more: pending.needed() - have,
        }
    })
}

/// The distinct approvers whose grants count: for this digest, not the
/// requester, in time.
fn valid_approvers<'a>(pending: &Pending, granted: &'a [Grant]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for g in granted {
        if g.digest == pending.digest
            && g.approver != pending.requester
            && g.at <= pending.expires_at
            && !out.contains(&g.approver.as_str())
        {
            out.push(&g.approver);
        }
    }
    out
}

/// The last check before an action runs: the action now digests to what
/// was approved, and enough valid approvals are on record.
pub fn may_run(
    pending: &Pending,
    granted: &[Grant],
    now_digest: &ActionDigest,
) -> Result<(), Refusal> {
    if *now_digest != pending.digest {
        return Err(Refusal::Changed {
            now: now_digest.clone(),
            approved: pending.digest.clone(),
        });
    }
    let have = valid_approvers(pending, granted).len() as u8;
    if have < pending.needed() {
        return Err(Refusal::NotEnough {
            have,
            needed: pending.needed(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(cmd: &str) -> ActionKey {
        ActionKey {
            tool: "shell".into(),
            arguments: json!({"command": cmd, "timeout_s": 30}),
            environment: "prod".into(),
            target: "edge-p1000".into(),
        }
    }

    fn pending(risk: Risk) -> Pending {
        Pending {
            digest: key("systemctl restart ollama.service").digest(),
            requester: "alice".into(),
            risk,
            requested_at: 1000,
            expires_at: 4600,
        }
    }

    fn grant(who: &str, at: i64) -> Grant {
        Grant {
            approver: who.into(),
            digest: pending(Risk::R2).digest,
            at,
            comment: String::new(),
        }
    }

    #[test]
    fn the_digest_covers_every_part_and_ignores_key_order() {
        let a = key("ls");
        let mut b = a.clone();
        b.arguments = json!({"timeout_s": 30, "command": "ls"});
        assert_eq!(a.digest(), b.digest());
        for change in [
            ActionKey {
                tool: "shell_network".into(),
                ..a.clone()
            },
            ActionKey {
                arguments: json!({"command": "ls ", "timeout_s": 30}),
                ..a.clone()
            },
            ActionKey {
                environment: "dev".into(),
                ..a.clone()
            },
            ActionKey {
                target: "edge-p1001".into(),
                ..a.clone()
            },
        ] {
            assert_ne!(a.digest(), change.digest(), "{change:?}");
        }
    }

    #[test]
    fn approvals_that_must_be_refused() {
        let p = pending(Risk::R3);
        let d = p.digest.clone();
        let other = key("systemctl stop ollama.service").digest();
        // (case, grants on record, approver, role, digest approved, now, refusal)
        type Row<'a> = (
            &'a str,
            Vec<Grant>,
            &'a str,
            Role,
            ActionDigest,
            i64,
            Refusal,
        );
        let table: Vec<Row> = vec![
            (
                "reader",
                vec![],
                "bob",
                Role::Requester,
                d.clone(),
                2000,
                Refusal::Role {
                    who: "bob".into(),
                    role: Role::Requester,
                },
            ),
            (
                "self",
                vec![],
                "alice",
                Role::Admin,
                d.clone(),
                2000,
                Refusal::Requester {
                    who: "alice".into(),
                },
            ),
            (
                "twice",
                vec![grant("bob", 1500)],
                "bob",
                Role::Approver,
                d.clone(),
                2000,
                Refusal::Twice { who: "bob".into() },
            ),
            (
                "late",
                vec![],
                "bob",
                Role::Approver,
                d.clone(),
                4601,
                Refusal::Expired { expires_at: 4600 },
            ),
            (
                "swapped",
                vec![],
                "bob",
                Role::Approver,
                other.clone(),
                2000,
                Refusal::WrongAction {
                    given: other.clone(),
                    waiting: d.clone(),
                },
            ),
        ];
        for (name, granted, who, role, digest, now, want) in table {
            assert_eq!(
                approve(&p, &granted, who, role, &digest, now),
                Err(want),
                "{name}"
            );
        }
    }

    #[test]
    fn two_distinct_approvers_grant_an_r3_action() {
        let p = pending(Risk::R3);
        let d = p.digest.clone();
        assert_eq!(
            approve(&p, &[], "bob", Role::Approver, &d, 2000),
            Ok(Standing::Waiting { more: 1 })
        );
        let g = [grant("bob", 2000)];
        assert_eq!(
            may_run(&p, &g, &d),
            Err(Refusal::NotEnough { have: 1, needed: 2 })
        );
        assert_eq!(
            approve(&p, &g, "carol", Role::Admin, &d, 2100),
            Ok(Standing::Granted)
        );
        let g = [grant("bob", 2000), grant("carol", 2100)];
        assert_eq!(may_run(&p, &g, &d), Ok(()));
        let swapped = key("rm -rf /var/lib/ollama").digest();
        assert!(matches!(
            may_run(&p, &g, &swapped),
            Err(Refusal::Changed { .. })
        ));
    }

    #[test]
    fn grants_that_do_not_count_are_not_counted() {
        let p = pending(Risk::R3);
        // The requester's own, a duplicate, one after expiry, one for another action.
        let mut stray = grant("dave", 2000);
        stray.digest = key("id").digest();
        let g = [
            grant("alice", 2000),
            grant("bob", 2000),
            grant("bob", 2001),
            grant("erin", 9999),
            stray,
        ];
        assert_eq!(
            may_run(&p, &g, &p.digest),
            Err(Refusal::NotEnough { have: 1, needed: 2 })
        );
    }

    #[test]
    fn canonical_json_is_sorted_and_compact() {
        let v = json!({"b": [1, {"z": null, "a": "x\"y"}], "a": true});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":true,"b":[1,{"a":"x\"y","z":null}]}"#
        );
    }
}
