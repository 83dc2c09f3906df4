//! The checkpoint store: the port through which the ingest keeps its state between invocations
//! (claims, snapshots, progress records, reports), S3 in Lambda ([`ObjectStore`]) and memory in
//! the tests ([`memory::MemoryStore`]). [`super::claim`] and [`super::resume`] run over it, so
//! the claim, resume and superseded logic is tested without the AWS emulator.

use crate::aws::s3::{ObjectStore, S3Error};

/// The object operations the ingest's checkpoints need.
pub trait CheckpointStore: Send + Sync {
    /// The object's bytes; `None` when it does not exist.
    fn get_bytes(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, S3Error>> + Send;

    /// Writes (or replaces) an object.
    fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl std::future::Future<Output = Result<(), S3Error>> + Send;

    fn exists(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl std::future::Future<Output = Result<bool, S3Error>> + Send;

    /// Every key under `prefix`.
    fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl std::future::Future<Output = Result<Vec<String>, S3Error>> + Send;

    /// Deletes an object (no error when it is not there).
    fn delete(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl std::future::Future<Output = Result<(), S3Error>> + Send;

    /// Writes `body` only if the object does not exist (`if_match: None`) or still has the given
    /// ETag; `Ok(false)` when the condition failed.
    fn put_conditional(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        if_match: Option<&str>,
    ) -> impl std::future::Future<Output = Result<bool, S3Error>> + Send;

    /// The object and its ETag; `None` when it does not exist.
    fn get_with_etag(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl std::future::Future<Output = Result<Option<(Vec<u8>, String)>, S3Error>> + Send;
}

impl CheckpointStore for ObjectStore {
    async fn get_bytes(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        ObjectStore::get_bytes(self, bucket, key).await
    }

    async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), S3Error> {
        ObjectStore::put_bytes(self, bucket, key, body, content_type).await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, S3Error> {
        ObjectStore::exists(self, bucket, key).await
    }

    async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, S3Error> {
        ObjectStore::list_keys(self, bucket, prefix).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        ObjectStore::delete(self, bucket, key).await
    }

    async fn put_conditional(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        if_match: Option<&str>,
    ) -> Result<bool, S3Error> {
        ObjectStore::put_conditional(self, bucket, key, body, if_match).await
    }

    async fn get_with_etag(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, S3Error> {
        ObjectStore::get_with_etag(self, bucket, key).await
    }
}

#[cfg(test)]
pub(crate) mod memory {
    //! Objects in memory with S3's conditional-write semantics (the ETag changes on every write).

    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    #[derive(Default)]
    pub(crate) struct MemoryStore {
        objects: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
        writes: Mutex<u64>,
        /// Another writer puts this body between the next conditional read and write.
        race: Mutex<Option<Vec<u8>>>,
    }

    impl MemoryStore {
        /// Writes an object as another party would (a new ETag, no condition).
        pub(crate) fn put_raw(&self, key: &str, body: &[u8]) {
            let mut w = self.writes.lock().unwrap();
            *w += 1;
            self.objects
                .lock()
                .unwrap()
                .insert(key.to_string(), (body.to_vec(), format!("\"e{w}\"")));
        }

        pub(crate) fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
            self.objects
                .lock()
                .unwrap()
                .get(key)
                .map(|(b, _)| b.clone())
        }

        pub(crate) fn keys(&self) -> Vec<String> {
            self.objects.lock().unwrap().keys().cloned().collect()
        }

        /// The next conditional write loses a race to a writer that puts `body` first.
        pub(crate) fn race_next_write(&self, body: &[u8]) {
            *self.race.lock().unwrap() = Some(body.to_vec());
        }
    }

    impl CheckpointStore for MemoryStore {
        async fn get_bytes(&self, _bucket: &str, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
            Ok(self.get_raw(key))
        }

        async fn put_bytes(
            &self,
            _bucket: &str,
            key: &str,
            body: Vec<u8>,
            _content_type: &str,
        ) -> Result<(), S3Error> {
            self.put_raw(key, &body);
            Ok(())
        }

        async fn exists(&self, _bucket: &str, key: &str) -> Result<bool, S3Error> {
            Ok(self.objects.lock().unwrap().contains_key(key))
        }

        async fn list_keys(&self, _bucket: &str, prefix: &str) -> Result<Vec<String>, S3Error> {
            Ok(self
                .keys()
                .into_iter()
                .filter(|k| k.starts_with(prefix))
                .collect())
        }

        async fn delete(&self, _bucket: &str, key: &str) -> Result<(), S3Error> {
            self.objects.lock().unwrap().remove(key);
            Ok(())
        }

        async fn put_conditional(
            &self,
            _bucket: &str,
            key: &str,
            body: Vec<u8>,
            if_match: Option<&str>,
        ) -> Result<bool, S3Error> {
            if let Some(other) = self.race.lock().unwrap().take() {
                self.put_raw(key, &other);
            }
            let current = self
                .objects
                .lock()
                .unwrap()
                .get(key)
                .map(|(_, e)| e.clone());
            let ok = match (if_match, current) {
                (None, None) => true,
                (Some(want), Some(have)) => want == have,
                _ => false,
            };
            if ok {
                self.put_raw(key, &body);
            }
            Ok(ok)
        }

        async fn get_with_etag(
            &self,
            _bucket: &str,
            key: &str,
        ) -> Result<Option<(Vec<u8>, String)>, S3Error> {
            Ok(self.objects.lock().unwrap().get(key).cloned())
        }
    }
}
