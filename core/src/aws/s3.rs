//! S3: streamed (optionally ranged) reads of the input object, and JSON/bytes objects for reports
//! and checkpoints.

use aws_sdk_s3::primitives::ByteStream;
use thiserror::Error;
use tokio::io::AsyncRead;

#[derive(Debug, Error)]
pub enum S3Error {
    /// The object's ETag is no longer the one being ingested: it was replaced.
    #[error("s3://{bucket}/{key} changed while it was being read (expected ETag {expected})")]
    Changed {
        bucket: String,
        key: String,
        expected: String,
    },
    #[error("s3://{bucket}/{key} does not exist")]
    NotFound { bucket: String, key: String },
    #[error("S3 {op} s3://{bucket}/{key} failed: {message}")]
    Other {
        op: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
}

/// An object opened for reading.
pub struct OpenedObject {
    pub body: Box<dyn AsyncRead + Send + Unpin>,
    pub etag: String,
    /// Total size of the object in bytes.
    pub size: u64,
}

/// Thin wrapper over an S3 client for what the engine needs.
#[derive(Clone)]
pub struct ObjectStore {
    client: aws_sdk_s3::Client,
}

impl ObjectStore {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Opens `bucket/key` from byte `offset` as a stream. With `if_match`, the read fails with
    /// [`S3Error::Changed`] when the object's ETag differs (it was overwritten meanwhile).
    pub async fn open(
        &self,
        bucket: &str,
        key: &str,
        offset: u64,
        if_match: Option<&str>,
    ) -> Result<OpenedObject, S3Error> {
        let mut req = self.client.get_object().bucket(bucket).key(key);
        if offset > 0 {
            req = req.range(format!("bytes={offset}-"));
        }
        if let Some(etag) = if_match {
            req = req.if_match(etag);
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                return Err(match status {
                    Some(412) => S3Error::Changed {
                        bucket: bucket.into(),
                        key: key.into(),
                        expected: if_match.unwrap_or_default().into(),
                    },
                    Some(404) => S3Error::NotFound {
                        bucket: bucket.into(),
                        key: key.into(),
                    },
                    // A range starting exactly at the end of the object: nothing left to read.
                    Some(416) => {
                        return Ok(OpenedObject {
                            body: Box::new(tokio::io::empty()),
                            etag: if_match.unwrap_or_default().to_string(),
                            size: offset,
                        })
                    }
                    _ => S3Error::Other {
                        op: "GetObject",
                        bucket: bucket.into(),
                        key: key.into(),
                        message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                    },
                });
            }
        };
        let etag = out.e_tag.clone().unwrap_or_default();
        if let Some(expected) = if_match {
            if !etag.is_empty() && etag.trim_matches('"') != expected.trim_matches('"') {
                return Err(S3Error::Changed {
                    bucket: bucket.into(),
                    key: key.into(),
                    expected: expected.into(),
                });
            }
        }
        let size = match out
            .content_range
            .as_deref()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|s| s.parse().ok())
        {
            Some(total) => total,
            None => out.content_length.unwrap_or(0).max(0) as u64 + offset,
        };
        Ok(OpenedObject {
            body: Box::new(out.body.into_async_read()),
            etag,
            size,
        })
    }

    /// The current ETag of an object, or `None` when it does not exist.
    pub async fn etag(&self, bucket: &str, key: &str) -> Result<Option<String>, S3Error> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(out.e_tag),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
            Err(e) => Err(S3Error::Other {
                op: "HeadObject",
                bucket: bucket.into(),
                key: key.into(),
                message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            }),
        }
    }

    pub async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), S3Error> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| S3Error::Other {
                op: "PutObject",
                bucket: bucket.into(),
                key: key.into(),
                message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            })
    }

    /// Reads a whole (small) object; `None` when it does not exist.
    pub async fn get_bytes(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {
                return Ok(None)
            }
            Err(e) => {
                return Err(S3Error::Other {
                    op: "GetObject",
                    bucket: bucket.into(),
                    key: key.into(),
                    message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                })
            }
        };
        let data = out.body.collect().await.map_err(|e| S3Error::Other {
            op: "GetObject",
            bucket: bucket.into(),
            key: key.into(),
            message: e.to_string(),
        })?;
        Ok(Some(data.into_bytes().to_vec()))
    }

    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<T>, S3Error> {
        match self.get_bytes(bucket, key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| S3Error::Other {
                    op: "GetObject",
                    bucket: bucket.into(),
                    key: key.into(),
                    message: format!("not the expected JSON: {e}"),
                }),
        }
    }

    /// Writes `bytes` only if the object does not exist (`if_match: None`) or still has the given
    /// ETag. `Ok(false)` when the condition failed (someone else wrote first).
    pub async fn put_conditional(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        if_match: Option<&str>,
    ) -> Result<bool, S3Error> {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(bytes));
        req = match if_match {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.raw_response().map(|r| r.status().as_u16()),
                    Some(412) | Some(409)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(S3Error::Other {
                op: "PutObject",
                bucket: bucket.into(),
                key: key.into(),
                message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            }),
        }
    }

    /// Reads a whole (small) object with its ETag; `None` when it does not exist.
    pub async fn get_with_etag(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, S3Error> {
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {
                return Ok(None)
            }
            Err(e) => {
                return Err(S3Error::Other {
                    op: "GetObject",
                    bucket: bucket.into(),
                    key: key.into(),
                    message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                })
            }
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let data = out.body.collect().await.map_err(|e| S3Error::Other {
            op: "GetObject",
            bucket: bucket.into(),
            key: key.into(),
            message: e.to_string(),
        })?;
        Ok(Some((data.into_bytes().to_vec(), etag)))
    }

    /// Whether an object exists.
    pub async fn exists(&self, bucket: &str, key: &str) -> Result<bool, S3Error> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(false),
            Err(e) => Err(S3Error::Other {
                op: "HeadObject",
                bucket: bucket.into(),
                key: key.into(),
                message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            }),
        }
    }

    /// Every key under `prefix` (all pages).
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| S3Error::Other {
                    op: "ListObjectsV2",
                    bucket: bucket.into(),
                    key: prefix.into(),
                    message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                })?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|c| c.key().map(str::to_string)),
            );
            token = out.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| S3Error::Other {
                op: "DeleteObject",
                bucket: bucket.into(),
                key: key.into(),
                message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            })
    }
}
