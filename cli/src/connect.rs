//! Reaching Graph: credentials (the worker's secret JSON or flags), the cloud's endpoints, or the
//! simulator; one shared [`GraphClient`].

use std::sync::Arc;

use graph_sim::SeedUser;
use mfa_preload_core::config::GraphSettings;
use mfa_preload_core::graph::{ClientOptions, Credentials, Feature, GraphClient, GraphError};
use mfa_preload_core::validate::ValidRow;

use crate::args::GraphArgs;
use crate::simulate::{self, SimSession};
use crate::Failure;

/// A Graph client, and the simulator behind it in `--simulate` mode.
pub struct Session {
    pub client: Arc<GraphClient>,
    pub sim: Option<SimSession>,
}

fn read_text(path: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::io(path, e))
}

/// The app credentials from `--credentials` or the four flags.
pub fn credentials(g: &GraphArgs) -> Result<Credentials, Failure> {
    let flags = [
        g.tenant_id.is_some(),
        g.client_id.is_some(),
        g.certificate.is_some(),
        g.private_key.is_some(),
    ];
    if let Some(path) = &g.credentials {
        if flags.iter().any(|f| *f) {
            return Err(Failure::Usage(
                "--credentials and --tenant-id/--client-id/--certificate/--private-key exclude each other".into(),
            ));
        }
        let text = read_text(path)?;
        return Credentials::from_secret_json(&text)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())));
    }
    match (&g.tenant_id, &g.client_id, &g.certificate, &g.private_key) {
        (Some(t), Some(c), Some(cert), Some(key)) => {
            Credentials::from_pem(t, c, &read_text(cert)?, &read_text(key)?)
                .map_err(|e| Failure::Usage(format!("credentials: {e}")))
        }
        _ if flags.iter().any(|f| *f) => Err(Failure::Usage(
            "--tenant-id, --client-id, --certificate and --private-key go together: all four are needed".into(),
        )),
        _ => Err(Failure::Usage(
            "no credentials: pass --credentials FILE (the worker's secret JSON), or --tenant-id, --client-id, --certificate and --private-key, or --simulate".into(),
        )),
    }
}

/// `--cloud` (or GRAPH_CLOUD), GRAPH_BASE_URL and LOGIN_BASE_URL.
pub fn settings(g: &GraphArgs) -> Result<GraphSettings, Failure> {
    GraphSettings::from_lookup(|k| {
        if k == "GRAPH_CLOUD" {
            g.cloud.clone()
        } else {
            std::env::var(k).ok()
        }
    })
    .map_err(|e| Failure::Usage(e.to_string()))
}

/// A Graph failure as the command's failure: a configuration fault as such, anything else as a
/// usage error with `what` in front.
pub fn graph_failure(what: &str, e: GraphError) -> Failure {
    match e {
        GraphError::Configuration(f) => Failure::Configuration(f),
        other => Failure::Usage(format!("{what}: {other}")),
    }
}

impl Session {
    /// Opens Graph (or starts the simulator, seeded with `seed`) and checks, before any user is
    /// touched, that the app's token grants the permissions of `features`.
    pub async fn open(
        g: &GraphArgs,
        seed: &[&ValidRow],
        features: &[Feature],
    ) -> Result<Session, Failure> {
        let session = Session::open_unchecked(g, seed).await?;
        if !features.is_empty() {
            session
                .client
                .check_features(features)
                .await
                .map_err(|e| graph_failure("cannot get an access token", e))?;
        }
        Ok(session)
    }

    /// Opens Graph without checking permissions (`doctor` reports them itself).
    pub async fn open_unchecked(g: &GraphArgs, seed: &[&ValidRow]) -> Result<Session, Failure> {
        Session::open_seeded(g, || {
            seed.iter().filter_map(|v| simulate::seed_for(v)).collect()
        })
        .await
    }

    /// Opens Graph without checking permissions; in `--simulate` mode the simulator holds the
    /// users `users` makes (unless a state file is loaded).
    pub async fn open_seeded(
        g: &GraphArgs,
        users: impl FnOnce() -> Vec<SeedUser>,
    ) -> Result<Session, Failure> {
        let (settings, creds, sim) = if g.simulate {
            if g.credentials.is_some() || g.tenant_id.is_some() || g.client_id.is_some() {
                return Err(Failure::Usage(
                    "--simulate runs against a local simulator: leave out the credentials".into(),
                ));
            }
            let (sim, settings, creds) = simulate::start(g, users).await?;
            (settings, creds, Some(sim))
        } else {
            let creds = credentials(g)?;
            creds.warn_if_expiring();
            (settings(g)?, creds, None)
        };
        let client = GraphClient::new(settings, creds, ClientOptions::default())
            .map_err(|e| Failure::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Session {
            client: Arc::new(client),
            sim,
        })
    }

    /// Ends the session (saves and stops the simulator).
    pub async fn close(self) -> Result<(), Failure> {
        if let Some(sim) = self.sim {
            sim.finish().await?;
        }
        Ok(())
    }
}
