//! Building SDK clients from the environment.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the standard SDK configuration from the environment.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// An S3 client; path-style addressing when a custom endpoint (an emulator) is configured, since
/// virtual-hosted bucket names do not resolve on a loopback address.
pub fn s3_client(cfg: &SdkConfig) -> aws_sdk_s3::Client {
    let custom = cfg.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(custom)
            .build(),
    )
}

pub fn sqs_client(cfg: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(cfg)
}

pub fn secrets_client(cfg: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(cfg)
}

pub fn dynamodb_client(cfg: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(cfg)
}

pub fn sns_client(cfg: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(cfg)
}
