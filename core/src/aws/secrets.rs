//! Reading the app credentials secret.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("could not read secret {id}: {message}")]
    Read { id: String, message: String },
    #[error("secret {id} has no string value (binary secrets are not supported)")]
    NotString { id: String },
}

/// Fetches the secret string of `secret_id` (name or ARN). The value is never logged.
pub async fn get_secret_string(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<String, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            id: secret_id.to_string(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    out.secret_string.ok_or_else(|| SecretError::NotString {
        id: secret_id.to_string(),
    })
}
