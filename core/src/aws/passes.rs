//! Pass delivery on AWS: pass files and delivery markers under `passes/` in the bucket
//! (`PASS_BUCKET`), each encrypted with the pass key (`PASS_KMS_KEY_ARN`) whose key policy lets
//! only the helpdesk principal decrypt; reply queues (`PASS_DELIVERY_QUEUE_ARNS`) by SQS.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use crate::config::PassDeliverySettings;
use crate::message::Request;
use crate::tap::IssuedPass;
use crate::worker::passes::{
    pass_file, reply_body, DeliveryError, PassDeliveryPort, PassRoute, Target,
};

/// The pending record's metadata key: the method id of the pass being delivered (`-`: none yet).
/// Metadata, so that `HeadObject` reads it without decrypting anything.
const METHOD_ID_META: &str = "method-id";

/// An S3 or SQS error as a [`DeliveryError`]: what the deployment refuses (no such bucket,
/// access denied, a KMS key that may not be used) is a configuration fault; the rest may pass.
fn classify(what: String, code: Option<&str>, status: Option<u16>) -> DeliveryError {
    let refused = status == Some(403)
        || code.is_some_and(|c| {
            c == "NoSuchBucket"
                || c == "AccessDenied"
                || c == "AccessDeniedException"
                || c.starts_with("KMS.")
                || c == "InvalidArgument"
        });
    if refused {
        DeliveryError::Refused(what)
    } else {
        DeliveryError::Unavailable(what)
    }
}

pub struct AwsPassDelivery {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    settings: PassDeliverySettings,
    /// Queue URLs by ARN, looked up once.
    urls: Mutex<HashMap<String, String>>,
}

impl AwsPassDelivery {
    pub fn new(
        s3: aws_sdk_s3::Client,
        sqs: aws_sdk_sqs::Client,
        settings: PassDeliverySettings,
    ) -> AwsPassDelivery {
        AwsPassDelivery {
            s3,
            sqs,
            settings,
            urls: Mutex::new(HashMap::new()),
        }
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        method_id: Option<&str>,
    ) -> Result<(), DeliveryError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let mut put = self
            .s3
            .put_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.settings.kms_key)
            .body(ByteStream::from(body));
        if let Some(id) = method_id {
            put = put.metadata(METHOD_ID_META, id);
        }
        put.send().await.map(|_| ()).map_err(|e| {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let code = e.code().map(str::to_string);
            classify(
                format!(
                    "S3 PutObject s3://{}/{key}: {}",
                    self.settings.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ),
                code.as_deref(),
                status,
            )
        })
    }

    /// `HeadObject`: the object's metadata, `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<HashMap<String, String>>, DeliveryError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        match self
            .s3
            .head_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o.metadata.unwrap_or_default())),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let code = e.code().map(str::to_string);
                Err(classify(
                    format!(
                        "S3 HeadObject s3://{}/{key}: {}",
                        self.settings.bucket,
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ),
                    code.as_deref(),
                    status,
                ))
            }
        }
    }

    async fn queue_url(&self, arn: &str) -> Result<String, DeliveryError> {
        if let Some(u) = self.urls.lock().unwrap_or_else(|e| e.into_inner()).get(arn) {
            return Ok(u.clone());
        }
        let parts: Vec<&str> = arn.split(':').collect();
        let (account, name) = match parts.as_slice() {
            [_, _, _, _, account, name] => (*account, *name),
            _ => {
                return Err(DeliveryError::Refused(format!(
                    "'{arn}' is not a queue ARN"
                )))
            }
        };
        let url = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| {
                // A queue that does not exist (yet) may be being created: retried.
                DeliveryError::Unavailable(format!(
                    "SQS GetQueueUrl {arn}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                ))
            })?
            .queue_url
            .ok_or_else(|| DeliveryError::Unavailable(format!("SQS GetQueueUrl {arn}: no URL")))?;
        self.urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(arn.to_string(), url.clone());
        Ok(url)
    }
}

#[async_trait]
impl PassDeliveryPort for AwsPassDelivery {
    fn allowed_queues(&self) -> &[String] {
        &self.settings.queues
    }

    async fn delivered(&self, route: &PassRoute) -> Result<bool, DeliveryError> {
        Ok(self.head(route.delivered_record()).await?.is_some())
    }

    async fn pending(&self, route: &PassRoute) -> Result<Option<String>, DeliveryError> {
        Ok(self.head(&route.pending).await?.and_then(|m| {
            m.get(METHOD_ID_META)
                .filter(|id| !id.is_empty() && id.as_str() != "-")
                .cloned()
        }))
    }

    async fn record_pending(
        &self,
        route: &PassRoute,
        method_id: Option<&str>,
    ) -> Result<(), DeliveryError> {
        self.put(
            &route.pending,
            Vec::new(),
            "application/octet-stream",
            Some(method_id.unwrap_or("-")),
        )
        .await
    }

    async fn deliver(
        &self,
        route: &PassRoute,
        req: &Request,
        pass: &IssuedPass,
    ) -> Result<(), DeliveryError> {
        match &route.target {
            Target::File { key } => {
                self.put(key, pass_file(&req.user, pass), "text/csv", None)
                    .await
            }
            Target::Queue { arn, marker } => {
                let url = self.queue_url(arn).await?;
                let mut send = self
                    .sqs
                    .send_message()
                    .queue_url(&url)
                    .message_body(reply_body(req, pass));
                if arn.ends_with(".fifo") {
                    // One group per user; the pass's method id makes a redelivery of this very
                    // send a duplicate SQS drops.
                    send = send
                        .message_group_id(crate::user::user_key(&req.user))
                        .message_deduplication_id(format!(
                            "{:032x}",
                            xxhash_rust::xxh3::xxh3_128(
                                format!("{marker}{}", pass.method_id).as_bytes()
                            )
                        ));
                }
                send.send().await.map_err(|e| {
                    use aws_sdk_sqs::error::ProvideErrorMetadata;
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    let code = e.code().map(str::to_string);
                    classify(
                        format!(
                            "SQS SendMessage {arn}: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(&e)
                        ),
                        code.as_deref(),
                        status,
                    )
                })?;
                let record = serde_json::json!({
                    "user": req.user,
                    "queue": arn,
                    "methodId": pass.method_id,
                    "deliveredAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                })
                .to_string();
                self.put(marker, record.into_bytes(), "application/json", None)
                    .await
            }
        }
    }
}
