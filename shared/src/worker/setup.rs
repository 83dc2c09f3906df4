//! Building the worker from its environment (SPEC section 4): the credentials secret from Secrets
//! Manager, the Graph endpoints, the SQS dead-letter queue and the tuning variables. The Lambda
//! binary calls [`build_from_env`] once per execution environment; tests call
//! [`build_from_lookup`] with their own variables.
//!
//! | variable | |
//! |---|---|
//! | `CREDENTIALS_SECRET_ID` | Secrets Manager id or ARN of the app credentials (required) |
//! | `DLQ_URL` | the dead-letter queue for rejects (required) |
//! | `GRAPH_CLOUD`, `GRAPH_BASE_URL`, `LOGIN_BASE_URL` | Graph endpoints ([`GraphSettings`]) |
//! | `WORKER_CONCURRENCY`, `MAX_RECEIVE_COUNT` | [`WorkerConfig`] |

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;

use crate::aws::clients::{secrets_client, sqs_client};
use crate::aws::dlq::SqsDlq;
use crate::aws::secrets::{get_secret_string, SecretError};
use crate::config::{ConfigError, GraphSettings};
use crate::graph::{CertificateExpiry, ClientOptions, Credentials, CredentialsError, GraphClient};
use crate::worker::{Worker, WorkerConfig};

/// Why the worker cannot start. Messages name variables, secret ids and secret fields, never a
/// secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("secret {id}: {source}")]
    Credentials {
        id: String,
        #[source]
        source: CredentialsError,
    },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

fn required<F>(lookup: &F, var: &'static str) -> Result<String, ConfigError>
where
    F: Fn(&str) -> Option<String>,
{
    lookup(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(var))
}

/// Builds the worker from variables read through `lookup`, with the given client options.
/// Every variable is checked before the secret is read; the certificate's expiry is logged (a
/// warning when expired or within 30 days).
pub async fn build_with_options<F>(
    sdk: &SdkConfig,
    lookup: F,
    options: ClientOptions,
) -> Result<Worker, SetupError>
where
    F: Fn(&str) -> Option<String>,
{
    let secret_id = required(&lookup, "CREDENTIALS_SECRET_ID")?;
    let dlq_url = required(&lookup, "DLQ_URL")?;
    let settings = GraphSettings::from_lookup(&lookup)?;
    let config = WorkerConfig::from_lookup(&lookup)?;
    let secret = get_secret_string(&secrets_client(sdk), &secret_id).await?;
    let credentials =
        Credentials::from_secret_json(&secret).map_err(|source| SetupError::Credentials {
            id: secret_id.clone(),
            source,
        })?;
    drop(secret);
    // `from_secret_json` already warned when the certificate is expired or expires soon.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if let CertificateExpiry::Valid { days_left } = credentials.expiry_at(now) {
        tracing::info!(
            client_id = %credentials.client_id(),
            x5t_s256 = %credentials.x5t_s256(),
            days_left,
            "app credentials loaded"
        );
    }
    tracing::info!(
        graph = %settings.graph_base_url,
        login = %settings.login_base_url,
        concurrency = config.concurrency,
        max_receive_count = config.max_receive_count,
        "worker configured"
    );
    let client = GraphClient::new(settings, credentials, options)
        .map_err(|e| SetupError::Http(e.to_string()))?;
    let dlq = SqsDlq::new(sqs_client(sdk), dlq_url);
    Ok(Worker::new(Arc::new(client), Arc::new(dlq), config))
}

/// [`build_with_options`] with the default client options.
pub async fn build_from_lookup<F>(sdk: &SdkConfig, lookup: F) -> Result<Worker, SetupError>
where
    F: Fn(&str) -> Option<String>,
{
    build_with_options(sdk, lookup, ClientOptions::default()).await
}

/// [`build_from_lookup`] over the process environment.
pub async fn build_from_env(sdk: &SdkConfig) -> Result<Worker, SetupError> {
    build_from_lookup(sdk, |k| std::env::var(k).ok()).await
}
