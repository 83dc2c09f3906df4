//! `doctor`: a preflight against the tenant before a run. Each check prints one line of a
//! checklist; the exit code is 1 when one fails. It reads, never writes.
//!
//! 1. credentials readable (the secret JSON or the certificate flags), and which app they are;
//! 2. the certificate's dates (expired, not yet valid, or expiring within 30 days);
//! 3. an access token obtained, with Entra's `AADSTS` refusals translated into what to fix, and
//!    the clock compared with the token endpoint's;
//! 4. the permissions the token's `roles` grant against what the file's columns need (all of the
//!    product's features without a file), each missing one with the permission to grant;
//! 5. optionally one read of a named user's methods.

use mfa_preload_core::graph::{ConfigFault, Feature, GraphError, EXPIRY_WARNING_DAYS};

use crate::apply::{cli_job, input_features};
use crate::args::{GraphArgs, InputArgs};
use crate::connect::Session;
use crate::input;
use crate::Failure;

/// Clock skew above which Entra refuses client assertions (their `nbf`/`exp` are checked with a
/// few minutes of tolerance).
const SKEW_FAIL_SECS: i64 = 300;
const SKEW_WARN_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

struct Checklist {
    lines: Vec<(Status, String, String)>,
}

impl Checklist {
    fn add(&mut self, status: Status, name: &str, detail: impl Into<String>) {
        let detail = detail.into();
        let mark = match status {
            Status::Ok => "[ ok ]",
            Status::Warn => "[warn]",
            Status::Fail => "[FAIL]",
        };
        println!("{mark} {name:<12} {detail}");
        self.lines.push((status, name.to_string(), detail));
    }

    fn failed(&self) -> usize {
        self.lines.iter().filter(|l| l.0 == Status::Fail).count()
    }

    fn warned(&self) -> usize {
        self.lines.iter().filter(|l| l.0 == Status::Warn).count()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn date(unix: i64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm), to avoid a date crate.
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// What a failed token request means, in one line.
fn token_failure(e: &GraphError) -> String {
    match e {
        GraphError::Configuration(ConfigFault::Credentials {
            code, hint, error, ..
        }) => format!("refused ({error}{code}): {hint}"),
        other => other.to_string(),
    }
}

/// The features named as `infra/register-entra-app.sh --features` names them.
fn named_features(names: &[String]) -> Result<Vec<Feature>, Failure> {
    let mut out = Vec::new();
    for n in names {
        match n.trim().to_ascii_lowercase().as_str() {
            "" => {}
            "phone" => out.push(Feature::PhoneMethods),
            "email" => out.push(Feature::EmailMethods),
            "default-method" => out.push(Feature::DefaultMethod),
            "export" => out.extend([
                Feature::ListUsers,
                Feature::PhoneMethodsRead,
                Feature::EmailMethodsRead,
            ]),
            "readiness" => out.push(Feature::RegistrationReport),
            "tap" => out.push(Feature::Tap),
            "readiness-per-user" => out.extend([Feature::ListUsers, Feature::AllMethodsRead]),
            other => {
                return Err(Failure::Usage(format!(
                    "--features: unknown feature '{other}' (phone, email, default-method, export, tap, readiness, readiness-per-user)"
                )))
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub async fn run(
    graph: &GraphArgs,
    input_args: Option<&InputArgs>,
    user: Option<&str>,
    features: &[String],
) -> Result<u8, Failure> {
    let mut list = Checklist { lines: Vec::new() };
    // What the run will need.
    let (input, needed) = match input_args {
        Some(a) => {
            let (settings, mapping) = input::options(a)?;
            let input = input::read(&a.file, &settings, &mapping).await?;
            let needed = input_features(&input, &cli_job(&input));
            (Some(input), needed)
        }
        None => (None, named_features(features)?),
    };
    let seed: Vec<_> = input.iter().flat_map(|i| i.valid()).collect();

    // 1. Credentials.
    let session = match Session::open_unchecked(graph, &seed).await {
        Ok(s) => s,
        Err(f) => {
            list.add(Status::Fail, "credentials", f.to_string());
            println!("\n1 check failed: fix the credentials first.");
            return Ok(1);
        }
    };
    let creds = session.client.tokens().credentials();
    list.add(
        Status::Ok,
        "credentials",
        format!(
            "tenant {}, app {}, certificate {} (x5t#S256 {})",
            creds.tenant_id(),
            creds.client_id(),
            creds.certificate_subject(),
            creds.x5t_s256()
        ),
    );

    // 2. Certificate dates.
    let now = unix_now();
    let (nb, na) = (
        creds.certificate_not_before(),
        creds.certificate_not_after(),
    );
    let days_left = (na - now) / 86_400;
    if na <= now {
        list.add(
            Status::Fail,
            "certificate",
            format!("EXPIRED on {}: create a new one (infra/create-certificate.sh), upload it to the app registration and store it in the secret", date(na)),
        );
    } else if nb > now {
        list.add(
            Status::Fail,
            "certificate",
            format!(
                "not valid before {}: check this machine's clock, or wait",
                date(nb)
            ),
        );
    } else if days_left < EXPIRY_WARNING_DAYS {
        list.add(
            Status::Warn,
            "certificate",
            format!("expires on {} ({days_left} days): renew it soon", date(na)),
        );
    } else {
        list.add(
            Status::Ok,
            "certificate",
            format!("valid {} to {} ({days_left} days left)", date(nb), date(na)),
        );
    }
    let settings = session.client.settings();
    list.add(
        Status::Ok,
        "endpoints",
        format!(
            "Graph {}, token {}",
            settings.graph_base_url,
            session.client.tokens().token_url()
        ),
    );

    // 3. Token, and the clock.
    let roles = match session.client.granted_roles().await {
        Ok(r) => {
            list.add(Status::Ok, "token", "an app-only access token was issued");
            Some(r)
        }
        Err(e) => {
            list.add(Status::Fail, "token", token_failure(&e));
            None
        }
    };
    if let Some(skew) = session.client.tokens().clock_skew() {
        let status = match skew.abs() {
            s if s > SKEW_FAIL_SECS => Status::Fail,
            s if s > SKEW_WARN_SECS => Status::Warn,
            _ => Status::Ok,
        };
        let detail = if status == Status::Ok {
            format!("within {} s of the token endpoint's", skew.abs().max(1))
        } else {
            format!("this machine's clock is {skew:+} s off the token endpoint's: Entra refuses assertions outside their time range (AADSTS700024); set the clock right (NTP)")
        };
        list.add(status, "clock", detail);
    }

    // 4. Permissions.
    match roles {
        Some(Some(roles)) => {
            let granted = if roles.is_empty() {
                "none".to_string()
            } else {
                roles.join(", ")
            };
            list.add(Status::Ok, "roles", format!("granted: {granted}"));
            for f in &needed {
                if f.granted_by(&roles) {
                    list.add(
                        Status::Ok,
                        "permission",
                        format!("{}: granted", f.describe()),
                    );
                } else {
                    list.add(
                        Status::Fail,
                        "permission",
                        format!(
                            "{}: missing; grant the application permission {} and admin consent (infra/register-entra-app.sh does both)",
                            f.describe(),
                            f.least_privileged()
                        ),
                    );
                }
            }
        }
        Some(None) => list.add(
            Status::Warn,
            "roles",
            "the token's roles cannot be read; the first Graph call will say what is missing",
        ),
        None => {}
    }

    // 5. One user.
    if let Some(u) = user {
        let phones = session.client.list_phone_methods(u).await;
        match phones {
            Ok(p) => list.add(
                Status::Ok,
                "user",
                format!("{u}: found, {} phone method(s)", p.len()),
            ),
            Err(GraphError::UserNotFound { .. }) => list.add(
                Status::Fail,
                "user",
                format!("{u}: not found in the tenant (a user created seconds ago may take a while to appear)"),
            ),
            Err(e) => list.add(Status::Fail, "user", format!("{u}: {e}")),
        }
    }
    session.close().await?;

    let (failed, warned) = (list.failed(), list.warned());
    println!();
    if failed == 0 {
        println!(
            "all checks passed{}",
            if warned > 0 {
                format!(" ({warned} warning(s))")
            } else {
                String::new()
            }
        );
        Ok(0)
    } else {
        println!("{failed} check(s) failed");
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_798_761_600), "2027-01-01");
        assert_eq!(date(1_801_440_000), "2027-02-01");
    }
}
