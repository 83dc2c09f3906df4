//! Reading every user's readiness from Graph, by the registration report or user by user, and
//! choosing between the two.
//!
//! The rule for the default source (`--source auto`, README "Passkey era"):
//! 1. the token's roles decide what is possible: the report needs `AuditLog.Read.All`; the
//!    per-user path `User.Read.All` and `UserAuthenticationMethod.Read.All` (and with
//!    `default_methods` reading signInPreferences, which the same permission allows);
//! 2. when both are possible, the tenant's users are counted (`GET /users/$count`, one request,
//!    which also measures a round trip) and the faster source by [`super::estimate`] is taken:
//!    the report's five requests per 10 s against the resource units per 10 s of the per-user
//!    path, at the measured round trip and the run's concurrency;
//! 3. a report refused with 403 (permission or licence) falls back to the per-user path, said
//!    once in [`Scan::notes`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use super::{estimate, Estimate, Source, UserReadiness};
use crate::graph::error::{ConfigFault, GraphError};
use crate::graph::permissions::Feature;
use crate::graph::GraphClient;

/// Which source to read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    Auto,
    Only(Source),
}

/// How to read.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub source: SourceChoice,
    /// Users read at the same time on the per-user path.
    pub concurrency: usize,
    /// On the per-user path, also read each user's signInPreferences (default and
    /// system-preferred methods; a second request per user).
    pub default_methods: bool,
}

/// A failed readiness run.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    /// A fault of the deployment: a permission or licence missing for every source that could
    /// be used.
    #[error("configuration fault: {0}")]
    Configuration(ConfigFault),
    /// Graph kept failing where no user could be read at all.
    #[error("{what}: {source}")]
    Graph {
        what: &'static str,
        #[source]
        source: GraphError,
    },
}

impl ReadinessError {
    fn of(what: &'static str, e: GraphError) -> ReadinessError {
        match e {
            GraphError::Configuration(f) => ReadinessError::Configuration(f),
            other => ReadinessError::Graph {
                what,
                source: other,
            },
        }
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Scan {
    pub users: Vec<UserReadiness>,
    /// Users listed whose methods could not be read (UPN or id, why).
    pub failed: Vec<(String, String)>,
    pub source: Source,
    /// The source tells each mobile's SMS sign-in state (the per-user path does).
    pub sms_sign_in_known: bool,
    /// The default and system-preferred methods were read.
    pub default_methods_known: bool,
    /// The users counted and the estimates, when the source was chosen by them.
    pub estimate: Option<(u64, Estimate)>,
    /// What the run had to say once (a fallback, the source chosen and why).
    pub notes: Vec<String>,
}

/// Called with the users done so far and, when known, how many there are.
pub type Progress<'a> = &'a (dyn Fn(u64, Option<u64>) + Sync);

/// What the token's roles allow: `None` when they cannot be read (Graph will say).
fn allowed(roles: &Option<Vec<String>>, features: &[Feature]) -> Option<bool> {
    roles
        .as_ref()
        .map(|r| features.iter().all(|f| f.granted_by(r)))
}

fn per_user_features(default_methods: bool) -> Vec<Feature> {
    let mut f = vec![Feature::ListUsers, Feature::AllMethodsRead];
    if default_methods {
        f.push(Feature::DefaultMethodRead);
    }
    f
}

fn missing(feature: Feature, roles: &Option<Vec<String>>) -> ConfigFault {
    ConfigFault::missing_feature(
        feature,
        &match roles {
            Some(r) if !r.is_empty() => format!("the token's roles claim grants {}", r.join(", ")),
            _ => "the token's roles claim grants none".to_string(),
        },
    )
}

/// Reads every user's readiness (see the module docs for how the source is chosen).
pub async fn run(
    client: &GraphClient,
    opts: &ScanOptions,
    progress: Progress<'_>,
) -> Result<Scan, ReadinessError> {
    let roles = client
        .granted_roles()
        .await
        .map_err(|e| ReadinessError::of("getting an access token", e))?;
    let report_ok = allowed(&roles, &[Feature::RegistrationReport]);
    let per_user = per_user_features(opts.default_methods);
    let per_user_ok = allowed(&roles, &per_user);
    let mut notes = Vec::new();
    let mut chosen_by = None;
    let source = match opts.source {
        SourceChoice::Only(Source::Report) => {
            if report_ok == Some(false) {
                return Err(ReadinessError::Configuration(missing(
                    Feature::RegistrationReport,
                    &roles,
                )));
            }
            Source::Report
        }
        SourceChoice::Only(Source::PerUser) => {
            client
                .check_features(&per_user)
                .await
                .map_err(|e| ReadinessError::of("checking the permissions", e))?;
            Source::PerUser
        }
        SourceChoice::Auto => match (report_ok, per_user_ok) {
            (Some(false), Some(false)) => {
                return Err(ReadinessError::Configuration(ConfigFault::MissingPermission {
                    what: "to read the registration report, nor every user's methods".into(),
                    grant: "AuditLog.Read.All",
                    graph: format!(
                        "or grant User.Read.All and UserAuthenticationMethod.Read.All for the per-user path; {}",
                        match &roles {
                            Some(r) if !r.is_empty() =>
                                format!("the token's roles claim grants {}", r.join(", ")),
                            _ => "the token's roles claim grants none".to_string(),
                        }
                    ),
                }));
            }
            (Some(false), _) => {
                notes.push(
                    "the app lacks AuditLog.Read.All (the registration report): reading each user's methods instead"
                        .to_string(),
                );
                Source::PerUser
            }
            (_, Some(false)) => Source::Report,
            _ => match count(client).await {
                Ok((users, rtt)) => {
                    let per = if opts.default_methods { 2 } else { 1 };
                    let e = estimate(users, rtt, opts.concurrency, per);
                    chosen_by = Some((users, e));
                    let s = e.faster();
                    notes.push(format!(
                        "{users} users: the {} is faster (estimated {:.0} s by the report, {:.0} s user by user)",
                        match s {
                            Source::Report => "registration report",
                            Source::PerUser => "per-user path",
                        },
                        e.report.as_secs_f64(),
                        e.per_user.as_secs_f64()
                    ));
                    s
                }
                // Users cannot be counted (User.Read.All refused by Graph): the report needs
                // no user list.
                Err(GraphError::Configuration(_)) => Source::Report,
                Err(e) => return Err(ReadinessError::of("counting the users", e)),
            },
        },
    };
    let outcome = match source {
        Source::Report => match scan_report(client, progress).await {
            Ok(users) => Ok((users, Vec::new(), Source::Report)),
            Err(GraphError::Configuration(f))
                if opts.source == SourceChoice::Auto && per_user_ok != Some(false) =>
            {
                notes.push(format!(
                    "the registration report was refused ({f}): reading each user's methods instead"
                ));
                scan_per_user(client, opts, progress)
                    .await
                    .map(|(u, f)| (u, f, Source::PerUser))
            }
            Err(e) => Err(e),
        },
        Source::PerUser => scan_per_user(client, opts, progress)
            .await
            .map(|(u, f)| (u, f, Source::PerUser)),
    };
    let (users, failed, source) =
        outcome.map_err(|e| ReadinessError::of("reading the users' methods", e))?;
    Ok(Scan {
        sms_sign_in_known: source == Source::PerUser,
        default_methods_known: source == Source::Report || opts.default_methods,
        users,
        failed,
        source,
        estimate: chosen_by,
        notes,
    })
}

/// The number of users and the round trip it took.
async fn count(client: &GraphClient) -> Result<(u64, Duration), GraphError> {
    let t0 = Instant::now();
    let n = client.count_users().await?;
    Ok((n, t0.elapsed()))
}

/// Every row of the registration report, page after page.
pub async fn scan_report(
    client: &GraphClient,
    progress: Progress<'_>,
) -> Result<Vec<UserReadiness>, GraphError> {
    let mut users = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client.registration_details_page(next.as_deref()).await?;
        users.extend(page.rows.iter().map(UserReadiness::from_report));
        progress(users.len() as u64, None);
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    sort_users(&mut users);
    Ok(users)
}

/// By user, case-insensitively: both sources give the same file.
fn sort_users(users: &mut [UserReadiness]) {
    users.sort_by_key(|u| u.user.to_lowercase());
}

/// Every user, then each one's methods (and signInPreferences with `default_methods`),
/// `concurrency` at a time, through the client's limiter. A user Graph no longer knows, or
/// whose methods kept failing, is in the second list; a configuration fault ends the run.
pub async fn scan_per_user(
    client: &GraphClient,
    opts: &ScanOptions,
    progress: Progress<'_>,
) -> Result<(Vec<UserReadiness>, Vec<(String, String)>), GraphError> {
    let mut listed = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_users_page(next.as_deref(), crate::graph::users::MAX_USERS_PAGE_SIZE)
            .await?;
        listed.extend(page.users);
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    let total = listed.len() as u64;
    progress(0, Some(total));
    let done = Arc::new(AtomicU64::new(0));
    let results: Vec<(String, Result<UserReadiness, GraphError>)> = stream::iter(listed)
        .map(|u| {
            let done = done.clone();
            async move {
                let key = u
                    .user_principal_name
                    .clone()
                    .unwrap_or_else(|| u.id.clone());
                // The object id addresses the user (a UPN may hold characters paths dislike).
                let addr = if u.id.is_empty() {
                    key.clone()
                } else {
                    u.id.clone()
                };
                let r = read_user(client, &key, &u.id, &addr, opts.default_methods).await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(n, Some(total));
                (key, r)
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut users = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for (key, r) in results {
        match r {
            Ok(u) => users.push(u),
            Err(GraphError::Configuration(f)) => return Err(GraphError::Configuration(f)),
            Err(e) => failed.push((key, format!("{}: {e}", e.reason()))),
        }
    }
    sort_users(&mut users);
    failed.sort();
    Ok((users, failed))
}

async fn read_user(
    client: &GraphClient,
    key: &str,
    id: &str,
    addr: &str,
    default_methods: bool,
) -> Result<UserReadiness, GraphError> {
    let listing = client.list_authentication_methods(addr).await?;
    let prefs = if default_methods {
        Some(client.get_sign_in_preferences(addr).await?)
    } else {
        None
    };
    Ok(UserReadiness::from_listing(
        key,
        id,
        &listing,
        prefs.as_ref(),
    ))
}
