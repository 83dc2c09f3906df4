//! `--simulate`: an in-process Graph simulator (graph-sim) seeded with the input's users, so the
//! real client and engine run end to end without a tenant.

use std::path::{Path, PathBuf};
use std::time::Duration;

use graph_sim::{GraphSim, SeedUser, SimConfig, UserState};
use mfa_preload_core::config::GraphSettings;
use mfa_preload_core::graph::Credentials;
use mfa_preload_core::message::Desired;
use mfa_preload_core::validate::ValidRow;
use serde::{Deserialize, Serialize};

use crate::args::GraphArgs;
use crate::Failure;

const SIM_TENANT: &str = "0b9e5a1c-3f5d-4c8e-9a51-5d6f7e8a9b0c";
const SIM_CLIENT: &str = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d";
// TEST-ONLY certificate and key from tests/fixtures (made by infra/make-test-fixtures.sh). They
// protect nothing: they are registered only with the in-process simulator started here, and are
// used for --simulate only.
const SIM_CERT_PEM: &str = include_str!("../../tests/fixtures/test-app.crt.pem");
const SIM_KEY_PEM: &str = include_str!("../../tests/fixtures/test-app.key.pem");

/// The simulator's directory and every write made so far, across runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    users: Vec<UserState>,
    writes: Vec<serde_json::Value>,
}

/// A running simulator and where its state is kept.
pub struct SimSession {
    pub sim: GraphSim,
    state: Option<PathBuf>,
    earlier_writes: Vec<serde_json::Value>,
}

/// FNV-1a: a stable hash (the same seeding on every machine and run).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The same number with its last subscriber digit changed.
fn other_number(n: &str) -> String {
    let main = n.split('x').next().unwrap_or(n);
    let mut chars: Vec<char> = main.chars().collect();
    if let Some(last) = chars.iter_mut().rev().find(|c| c.is_ascii_digit()) {
        let d = last.to_digit(10).unwrap_or(0);
        *last = char::from_digit((d + 1) % 10, 10).unwrap_or('0');
    }
    chars.into_iter().collect()
}

fn wanted(d: &Desired) -> Option<String> {
    d.clone().flatten()
}

/// How a file's user exists in the simulated tenant, chosen from a hash of the user so outcomes
/// vary but stay the same on every run. `None`: the user does not exist.
pub fn seed_for(v: &ValidRow) -> Option<SeedUser> {
    let mut u = SeedUser::new(v.user.clone());
    let m = &v.methods;
    let (mobile, alternate, office, email) = (
        wanted(&m.mobile),
        wanted(&m.alternate_mobile),
        wanted(&m.office),
        wanted(&m.email),
    );
    match fnv1a(&v.user_key()) % 20 {
        // Not in the directory: user_not_found.
        0 => return None,
        // No methods yet: created.
        1..=7 => {}
        // Everything already registered: unchanged.
        8..=10 => {
            u.mobile = mobile.clone();
            u.alternate_mobile = mobile.and(alternate);
            u.office = office;
            u.email = email;
        }
        // A different mobile: skipped_exists, or updated with ForcedUpdate.
        11..=13 => {
            u.mobile = Some(other_number(mobile.as_deref().unwrap_or("+1 2025550100")));
        }
        // The office phone is the default method: removing it is default_method_conflict.
        14..=15 => {
            u.mobile = mobile;
            u.office = Some(other_number(office.as_deref().unwrap_or("+1 2025550122")));
            u.default_method = Some("voiceOffice".into());
        }
        // Another SSPR email.
        16..=17 => {
            u.mobile = mobile;
            u.email = Some("previous.address@example.org".into());
        }
        // An alternate mobile that the file may remove (ForcedRemoval) or replace.
        _ => {
            u.mobile = Some(mobile.unwrap_or_else(|| "+1 2025550111".into()));
            u.alternate_mobile = Some(other_number(
                alternate.as_deref().unwrap_or("+1 2025550133"),
            ));
        }
    }
    Some(u)
}

fn read_state(path: &Path) -> Result<Option<StateFile>, Failure> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Failure::Usage(format!("{}: not a simulator state: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::io(path, e)),
    }
}

/// Starts the simulator: users from the state file if there is one, else those `seed` makes.
pub async fn start(
    g: &GraphArgs,
    seed: impl FnOnce() -> Vec<SeedUser>,
) -> Result<(SimSession, GraphSettings, Credentials), Failure> {
    // A tenant whose authentication methods policy allows SMS sign-in for everyone, so the
    // file's `SmsSignIn` column can be tried out.
    let cfg = SimConfig {
        latency: Duration::from_millis(g.sim_latency_ms.unwrap_or(0)),
        sms_sign_in_policy: true,
        ..SimConfig::default()
    };
    let sim = GraphSim::start(cfg)
        .await
        .map_err(|e| Failure::Usage(format!("cannot start the Graph simulator: {e}")))?;
    sim.try_register_app(SIM_TENANT, SIM_CLIENT, SIM_CERT_PEM)
        .map_err(|e| Failure::Usage(format!("simulator certificate: {e}")))?;
    let state = match &g.simulate_state {
        Some(p) => read_state(p)?,
        None => None,
    };
    let mut earlier_writes = Vec::new();
    match state {
        Some(s) => {
            sim.add_users(s.users.into_iter().map(SeedUser::from));
            earlier_writes = s.writes;
        }
        None => sim.add_users(seed()),
    }
    let settings = GraphSettings::single_host(&sim.base_url())
        .map_err(|e| Failure::Usage(format!("simulator address: {e}")))?;
    let creds = Credentials::from_pem(SIM_TENANT, SIM_CLIENT, SIM_CERT_PEM, SIM_KEY_PEM)
        .map_err(|e| Failure::Usage(format!("simulator credentials: {e}")))?;
    eprintln!(
        "simulating Graph at {} with {} users (no real tenant is contacted)",
        sim.base_url(),
        sim.user_count()
    );
    Ok((
        SimSession {
            sim,
            state: g.simulate_state.clone(),
            earlier_writes,
        },
        settings,
        creds,
    ))
}

impl SimSession {
    /// Saves the state (if a state file was given) and stops the simulator.
    pub async fn finish(self) -> Result<(), Failure> {
        if let Some(path) = &self.state {
            let users = self.sim.users();
            let mut writes = self.earlier_writes.clone();
            for w in self.sim.write_log() {
                writes.push(
                    serde_json::to_value(&w)
                        .map_err(|e| Failure::Usage(format!("simulator state: {e}")))?,
                );
            }
            let body = serde_json::to_vec_pretty(&StateFile { users, writes })
                .map_err(|e| Failure::Usage(format!("simulator state: {e}")))?;
            std::fs::write(path, body).map_err(|e| Failure::io(path, e))?;
        }
        self.sim.shutdown().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_number_changes_only_the_last_digit() {
        assert_eq!(other_number("+31 612345678"), "+31 612345679");
        assert_eq!(other_number("+1 5555551239x12"), "+1 5555551230");
    }

    #[test]
    fn seeding_is_stable_and_varied() {
        let mk = |u: &str| ValidRow {
            row: 2,
            user: u.into(),
            methods: Default::default(),
            policy: Default::default(),
            sms_sign_in: None,
            default_method: None,
            temporary_access_pass: None,
        };
        let shape =
            |u: Option<SeedUser>| u.map(|u| (u.mobile, u.office, u.email, u.default_method));
        let a = shape(seed_for(&mk("a@contoso.com")));
        assert_eq!(a, shape(seed_for(&mk("A@Contoso.com"))));
        let kinds: std::collections::HashSet<u64> = (0..200)
            .map(|i| fnv1a(&format!("user{i}@contoso.com")) % 20)
            .collect();
        assert_eq!(kinds.len(), 20);
    }
}
