//! Building the worker from its environment (README, "Configuration"): the credentials secret from Secrets
//! Manager, the Graph endpoints, the SQS dead-letter queue and the tuning variables. The Lambda
//! binary calls [`build_from_env`] once per execution environment; tests call
//! [`build_from_lookup`] with their own variables.
//!
//! | variable | |
//! |---|---|
//! | `CREDENTIALS_SECRET_ID` | Secrets Manager id or ARN of the app credentials (required) |
//! | `DLQ_URL` | the dead-letter queue for rejects (required) |
//! | `GRAPH_CLOUD`, `GRAPH_BASE_URL`, `LOGIN_BASE_URL` | Graph endpoints ([`GraphSettings`]) |
//! | `QUEUE_URL` | the work queue itself: retry spacing and fresh copies (optional) |
//! | `WORKER_CONCURRENCY`, `MAX_RECEIVE_COUNT`, `USER_NOT_FOUND_RETRY_SECONDS`, `CONFIGURATION_FAULT_RETRY_SECONDS` | [`WorkerConfig`] |
//! | `PASS_BUCKET`, `PASS_KMS_KEY_ARN`, `PASS_DELIVERY_QUEUE_ARNS` | Temporary Access Pass delivery ([`crate::aws::passes`]); unset: requests that ask for a pass are a configuration fault |

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_config::SdkConfig;

use crate::aws::clients::{secrets_client, sqs_client};
use crate::aws::dlq::SqsDlq;
use crate::aws::secrets::{get_secret_string, SecretError};
use crate::aws::work_queue::SqsWorkQueue;
use crate::config::{ConfigError, Env, GraphSettings};
use crate::graph::token::CredentialsReloader;
use crate::graph::{
    CertificateExpiry, ClientOptions, ConfigFault, Credentials, Feature, GraphClient,
};
use crate::worker::protected::ProtectedUsers;
use crate::worker::{ClientSource, Worker, WorkerConfig};

/// Why the worker cannot start: a variable the template sets is missing or malformed. Messages
/// name variables, never a secret's value. (A secret that cannot be read or used is not a start
/// error: the worker starts faulted and returns its batches until the secret is fixed.)
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Reads the credentials secret again when the token endpoint refuses the certificate (it may
/// have been rotated in the secret meanwhile).
struct SecretReloader {
    secrets: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

#[async_trait]
impl CredentialsReloader for SecretReloader {
    async fn reload(&self) -> Result<Credentials, String> {
        let secret = get_secret_string(&self.secrets, &self.secret_id)
            .await
            .map_err(|e| e.to_string())?;
        Credentials::from_secret_json(&secret)
            .map_err(|e| format!("secret {}: {e}", self.secret_id))
    }
}

/// Reads the credentials secret and builds the Graph client: at start, and again while the
/// secret is unusable ([`crate::worker::REBUILD_INTERVAL`]).
struct SecretClientSource {
    secrets: aws_sdk_secretsmanager::Client,
    secret_id: String,
    settings: GraphSettings,
    options: ClientOptions,
}

#[async_trait]
impl ClientSource for SecretClientSource {
    async fn build(&self) -> Result<GraphClient, ConfigFault> {
        let secret = get_secret_string(&self.secrets, &self.secret_id)
            .await
            .map_err(|e: SecretError| ConfigFault::Secret(e.to_string()))?;
        let credentials = Credentials::from_secret_json(&secret)
            .map_err(|e| ConfigFault::Secret(format!("secret {}: {e}", self.secret_id)))?;
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
        let client = GraphClient::new(self.settings.clone(), credentials, self.options.clone())
            .map_err(|e| ConfigFault::Secret(format!("cannot build the HTTP client: {e}")))?;
        client.tokens().set_reloader(Arc::new(SecretReloader {
            secrets: self.secrets.clone(),
            secret_id: self.secret_id.clone(),
        }));
        Ok(client)
    }
}

/// Logs, at start, which application permissions the token grants and which feature lacks one,
/// before any user is touched.
async fn log_permissions(client: &GraphClient) {
    match client.granted_roles().await {
        Ok(Some(roles)) => {
            let missing: Vec<String> = [
                Feature::PhoneMethods,
                Feature::EmailMethods,
                Feature::DefaultMethod,
                Feature::Tap,
            ]
            .into_iter()
            .filter(|f| !f.granted_by(&roles))
            .map(|f| format!("{} needs {}", f.describe(), f.least_privileged()))
            .collect();
            if missing.is_empty() {
                tracing::info!(roles = %roles.join(","), "app permissions allow every feature");
            } else {
                tracing::warn!(
                    roles = %roles.join(","),
                    missing = %missing.join("; "),
                    "app permissions: requests that use these features go back to the queue until the permission is granted"
                );
            }
        }
        Ok(None) => tracing::info!(
            "the access token's roles cannot be read; Graph will say what is missing"
        ),
        Err(e) => tracing::error!(error = %e, "no access token at start"),
    }
}

/// Builds the worker from variables read through `lookup`, with the given client options.
/// Every variable is checked before the secret is read; the certificate's expiry is logged (a
/// warning when expired or within 30 days). `QUEUE_URL` (the work queue) lets the worker space
/// its retries and send fresh copies; without it retries wait for the queue's visibility timeout.
pub async fn build_with_options<F>(
    sdk: &SdkConfig,
    lookup: F,
    options: ClientOptions,
) -> Result<Worker, SetupError>
where
    F: Fn(&str) -> Option<String>,
{
    let env = Env(&lookup);
    let secret_id = env.required("CREDENTIALS_SECRET_ID")?;
    let dlq_url = env.required("DLQ_URL")?;
    let queue_url = env.get("QUEUE_URL");
    let settings = GraphSettings::from_lookup(&lookup)?;
    let config = WorkerConfig::from_lookup(&lookup)?;
    let protected = ProtectedUsers::from_lookup(&lookup)?;
    tracing::info!(
        graph = %settings.graph_base_url,
        login = %settings.login_base_url,
        concurrency = config.concurrency,
        max_receive_count = config.max_receive_count,
        user_not_found_retry_s = config.user_not_found_retry.as_secs(),
        config_fault_retry_s = config.config_fault_retry.as_secs(),
        "worker configured"
    );
    let sqs = sqs_client(sdk);
    let dlq = Arc::new(SqsDlq::new(sqs.clone(), dlq_url));
    let source = Arc::new(SecretClientSource {
        secrets: secrets_client(sdk),
        secret_id,
        settings,
        options,
    });
    let worker = match source.build().await {
        Ok(client) => {
            log_permissions(&client).await;
            Worker::new(Arc::new(client), dlq, config)
        }
        Err(fault) => {
            tracing::error!(
                fault = fault.kind(),
                "CONFIGURATION FAULT at start: {fault}. Batches go back to the queue, and the secret is read again every minute."
            );
            Worker::faulted(fault, source, dlq, config)
        }
    };
    let worker = match protected {
        Some(p) => {
            tracing::info!(entries = p.len(), "protected users configured");
            worker.with_protected(p)
        }
        None => worker,
    };
    let worker = match crate::config::LedgerSettings::from_lookup(&lookup)? {
        Some(l) => {
            let ledger = Arc::new(crate::aws::ledger::DynamoLedger::with_retention_days(
                crate::aws::clients::dynamodb_client(sdk),
                &l.table,
                l.retention_days,
            ));
            let reports = l.control_queue_url.as_deref().map(|url| {
                Arc::new(crate::ingest::job_reports::SqsReportRequests::new(
                    crate::aws::sqs::SqsSender::new(sqs.clone(), url),
                    url,
                )) as Arc<dyn crate::ledger::ReportRequests>
            });
            if reports.is_none() {
                tracing::warn!("CONTROL_QUEUE_URL is not set: completed jobs are recorded, but their reports are not asked for");
            }
            tracing::info!(table = %l.table, retention_days = l.retention_days, "job ledger configured");
            worker.with_ledger(ledger, reports)
        }
        None => worker,
    };
    let worker = match crate::config::PassDeliverySettings::from_lookup(&lookup)? {
        Some(p) => {
            tracing::info!(bucket = %p.bucket, reply_queues = p.queues.len(), "Temporary Access Pass delivery configured");
            worker.with_passes(Arc::new(crate::aws::passes::AwsPassDelivery::new(
                crate::aws::clients::s3_client(sdk),
                sqs.clone(),
                p,
            )))
        }
        None => worker,
    };
    Ok(match queue_url {
        Some(url) => worker.with_queue(Arc::new(SqsWorkQueue::new(sqs, url))),
        None => {
            tracing::warn!("QUEUE_URL is not set: retries wait for the queue's visibility timeout");
            worker
        }
    })
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
