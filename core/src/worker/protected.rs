//! Users whose methods this product never changes (`PROTECTED_USERS`): break-glass accounts,
//! administrators. Whoever can upload a file or send a message could otherwise put their own
//! number on such an account. A request for one of them is dead-lettered as `protected_user`
//! before Graph is called.
//!
//! Entries are UPNs, user object ids, or groups (`group:ID`, or an object id that is not a
//! user's) whose members, nested groups included, are protected. They are looked up in Graph, so
//! that a request naming the user by UPN matches an entry given as object id and the other way
//! round, at the first batch and again every [`REFRESH`]. When they cannot be looked up, no user
//! is touched (a configuration fault) until they can.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ConfigError;
use crate::graph::error::{ConfigFault, GraphError};
use crate::graph::GraphClient;

/// How long a lookup of the protected users is used before it is made again (group membership
/// changes).
pub const REFRESH: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A UPN or an object id (a user's, or else a group's).
    Name(String),
    Group(String),
}

/// The protected list and its last lookup.
#[derive(Debug)]
pub struct ProtectedUsers {
    entries: Vec<Entry>,
    resolved: Mutex<Option<(HashSet<String>, Instant)>>,
}

use crate::user::is_guid;

impl ProtectedUsers {
    /// Parses `PROTECTED_USERS`: entries separated by commas, semicolons or white space.
    pub fn parse(text: &str) -> Result<ProtectedUsers, ConfigError> {
        let mut entries = Vec::new();
        for raw in text.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
            let e = raw.trim();
            if e.is_empty() {
                continue;
            }
            let entry = match e.split_once(':') {
                Some((kind, id)) if kind.eq_ignore_ascii_case("group") => {
                    if !is_guid(id.trim()) {
                        return Err(ConfigError::Invalid {
                            var: "PROTECTED_USERS",
                            why: format!("'{e}': a group is given by its object id (group:GUID)"),
                        });
                    }
                    Entry::Group(id.trim().to_lowercase())
                }
                _ if e.contains('@') || is_guid(e) => Entry::Name(e.to_lowercase()),
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "PROTECTED_USERS",
                        why: format!(
                            "'{e}' is neither a user principal name, an object id nor group:ID"
                        ),
                    })
                }
            };
            entries.push(entry);
        }
        Ok(ProtectedUsers {
            entries,
            resolved: Mutex::new(None),
        })
    }

    /// `PROTECTED_USERS` through `lookup`; `None` when unset or empty.
    pub fn from_lookup<F>(lookup: F) -> Result<Option<ProtectedUsers>, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        crate::config::Env(lookup)
            .get("PROTECTED_USERS")
            .map(|v| ProtectedUsers::parse(&v))
            .transpose()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks the entries up again when the last lookup is older than [`REFRESH`] (or there was
    /// none). A failed lookup keeps an earlier one; without one, it is a configuration fault.
    pub async fn refresh(&self, client: &GraphClient) -> Result<(), ConfigFault> {
        let fresh = self
            .resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < REFRESH);
        if fresh {
            return Ok(());
        }
        match self.resolve(client).await {
            Ok(set) => {
                tracing::info!(
                    entries = self.entries.len(),
                    users = set.len() / 2,
                    "protected users looked up"
                );
                *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((set, Instant::now()));
                Ok(())
            }
            Err(e) => {
                let mut r = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
                match r.as_mut() {
                    Some((_, at)) => {
                        tracing::warn!(error = %e, "protected users: the lookup failed, the last one is kept");
                        // Try again in a minute, not at once for every batch.
                        *at = Instant::now() - REFRESH + Duration::from_secs(60);
                        Ok(())
                    }
                    None => Err(match e {
                        GraphError::Configuration(f) => f,
                        other => ConfigFault::ProtectedUsers(other.to_string()),
                    }),
                }
            }
        }
    }

    /// Whether `user` (a UPN or an object id, as the request names it) is protected; `None`
    /// before the first successful [`ProtectedUsers::refresh`].
    pub fn contains(&self, user: &str) -> Option<bool> {
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(set, _)| set.contains(&user.trim().to_lowercase()))
    }

    /// Every protected user's object id and UPN, lower-cased.
    async fn resolve(&self, client: &GraphClient) -> Result<HashSet<String>, GraphError> {
        let mut set = HashSet::new();
        let mut add = |id: &str, upn: Option<&str>| {
            set.insert(id.to_lowercase());
            if let Some(u) = upn {
                set.insert(u.to_lowercase());
            }
        };
        for e in &self.entries {
            match e {
                Entry::Group(g) => {
                    for u in client.group_users(g).await? {
                        add(&u.id, u.user_principal_name.as_deref());
                    }
                }
                Entry::Name(n) => match client.get_user(n).await {
                    Ok(u) => add(&u.id, u.user_principal_name.as_deref()),
                    Err(GraphError::UserNotFound { .. }) if is_guid(n) => {
                        // Not a user's id: a group's?
                        match client.group_users(n).await {
                            Ok(members) => {
                                for u in members {
                                    add(&u.id, u.user_principal_name.as_deref());
                                }
                            }
                            Err(GraphError::UserNotFound { .. }) => {
                                tracing::warn!(entry = %n, "protected users: no user or group has this id; it is protected as written");
                                add(n, None);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Err(GraphError::UserNotFound { .. }) => {
                        tracing::warn!(entry = %n, "protected users: no such user (yet); it is protected as written");
                        add(n, None);
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upns_ids_and_groups() {
        let p = ProtectedUsers::parse(
            "BreakGlass@contoso.com, 0f0e0d0c-0000-4000-8000-000000000001;\n group:1a2b3c4d-0000-4000-8000-00000000000a",
        )
        .expect("valid");
        assert_eq!(
            p.entries,
            vec![
                Entry::Name("breakglass@contoso.com".into()),
                Entry::Name("0f0e0d0c-0000-4000-8000-000000000001".into()),
                Entry::Group("1a2b3c4d-0000-4000-8000-00000000000a".into()),
            ]
        );
        assert_eq!(
            p.contains("breakglass@contoso.com"),
            None,
            "not looked up yet"
        );
        for bad in ["admin", "group:admins", "a/b"] {
            let e = ProtectedUsers::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("PROTECTED_USERS"), "{e}");
        }
        assert!(ProtectedUsers::from_lookup(|_| Some("  ".into()))
            .expect("ok")
            .is_none());
    }
}
