//! The claim on a file: which invocation reads it from the start. An S3 event can arrive twice
//! (S3 delivers at least once) and Lambda retries a failed invocation, so the first invocation of
//! an upload takes a claim object (`checkpoints/KEY/RUN/claim`) with a conditional write; a
//! second one finds it held and does nothing. A claim expires a few seconds after its holder's
//! deadline, so one left by a crashed invocation is taken over; a failed invocation releases its
//! own claim at once so Lambda's retry finds the file free.
//!
//! The logic runs over the [`CheckpointStore`] port (its two conditional operations): S3 in
//! Lambda, memory in the tests below.

use super::checkpoints::{Claim, FileRef};
use super::store::CheckpointStore;
use crate::aws::s3::S3Error;

/// What [`take`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Nobody held the file: the claim is the caller's.
    Fresh,
    /// The last holder's claim had expired (or was unreadable, or released): the caller took it over.
    TakenOver,
    /// Another invocation holds it (or took it over at the same moment).
    Held,
}

/// What [`release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The claim now expires at once.
    Released,
    /// There is no claim.
    Absent,
    /// The claim is another invocation's by now: left alone.
    NotMine,
    /// The claim changed between reading and writing it: left alone.
    Changed,
}

/// Takes the claim on `file` for `owner` until `expires_ms` (Unix milliseconds); `now_ms` decides
/// whether a claim found there has expired.
pub async fn take(
    store: &impl CheckpointStore,
    file: &FileRef,
    owner: &str,
    expires_ms: u64,
    now_ms: u64,
) -> Result<Taken, S3Error> {
    let claim = Claim {
        owner: owner.to_string(),
        expires_ms,
    };
    let body = encode(&claim);
    let key = file.claim_key();
    if store
        .put_conditional(&file.bucket, &key, body.clone(), None)
        .await?
    {
        return Ok(Taken::Fresh);
    }
    let Some((old, etag)) = store.get_with_etag(&file.bucket, &key).await? else {
        // Gone between the two calls (released and cleaned up): someone else is finishing it.
        return Ok(Taken::Held);
    };
    let old: Option<Claim> = serde_json::from_slice(&old).ok();
    let expired = old.is_none_or(|c| c.expires_ms < now_ms);
    if expired
        && store
            .put_conditional(&file.bucket, &key, body, Some(&etag))
            .await?
    {
        Ok(Taken::TakenOver)
    } else {
        Ok(Taken::Held)
    }
}

/// Gives up `owner`'s claim on `file` (it expires at once), unless another invocation holds it by
/// now: only the owner releases its claim.
pub async fn release(
    store: &impl CheckpointStore,
    file: &FileRef,
    owner: &str,
) -> Result<Released, S3Error> {
    let key = file.claim_key();
    let Some((bytes, etag)) = store.get_with_etag(&file.bucket, &key).await? else {
        return Ok(Released::Absent);
    };
    let mine = serde_json::from_slice::<Claim>(&bytes).is_ok_and(|c| c.owner == owner);
    if !mine {
        return Ok(Released::NotMine);
    }
    let released = Claim {
        owner: owner.to_string(),
        expires_ms: 0,
    };
    if store
        .put_conditional(&file.bucket, &key, encode(&released), Some(&etag))
        .await?
    {
        Ok(Released::Released)
    } else {
        Ok(Released::Changed)
    }
}

fn encode(claim: &Claim) -> Vec<u8> {
    // A struct of a string and a number always serialises.
    serde_json::to_vec(claim).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::store::memory::MemoryStore;

    const RACER: &[u8] = br#"{"owner":"racer","expiresMs":99999999999999}"#;

    fn claim(store: &MemoryStore, key: &str) -> Option<Claim> {
        store
            .get_raw(key)
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    fn file() -> FileRef {
        FileRef::new("b", "incoming/users.csv", "\"etag\"", Some("seq1"))
    }

    #[tokio::test]
    async fn the_first_invocation_takes_the_claim_and_a_second_finds_it_held() {
        let store = MemoryStore::default();
        let f = file();
        assert_eq!(
            take(&store, &f, "a", 2_000, 1_000).await.unwrap(),
            Taken::Fresh
        );
        assert_eq!(
            take(&store, &f, "b", 2_500, 1_500).await.unwrap(),
            Taken::Held
        );
        let c = claim(&store, &f.claim_key()).unwrap();
        assert_eq!((c.owner.as_str(), c.expires_ms), ("a", 2_000));
    }

    #[tokio::test]
    async fn an_expired_or_unreadable_claim_is_taken_over() {
        let store = MemoryStore::default();
        let f = file();
        take(&store, &f, "a", 2_000, 1_000).await.unwrap();
        // At its expiry it still holds; a millisecond later it is taken over.
        assert_eq!(
            take(&store, &f, "b", 9_000, 2_000).await.unwrap(),
            Taken::Held
        );
        assert_eq!(
            take(&store, &f, "b", 9_000, 2_001).await.unwrap(),
            Taken::TakenOver
        );
        assert_eq!(claim(&store, &f.claim_key()).unwrap().owner, "b");
        store.put_raw(&f.claim_key(), b"not json");
        assert_eq!(
            take(&store, &f, "c", 9_000, 3_000).await.unwrap(),
            Taken::TakenOver
        );
        assert_eq!(claim(&store, &f.claim_key()).unwrap().owner, "c");
    }

    #[tokio::test]
    async fn two_invocations_taking_over_at_once_leave_one_holder() {
        let store = MemoryStore::default();
        let f = file();
        take(&store, &f, "a", 2_000, 1_000).await.unwrap();
        // Between our read of the expired claim and our write, another invocation takes it.
        store.race_next_write(RACER);
        assert_eq!(
            take(&store, &f, "b", 9_000, 5_000).await.unwrap(),
            Taken::Held
        );
        assert_eq!(claim(&store, &f.claim_key()).unwrap().owner, "racer");
    }

    #[tokio::test]
    async fn only_the_owner_releases_and_a_released_claim_is_free_at_once() {
        let store = MemoryStore::default();
        let f = file();
        assert_eq!(release(&store, &f, "a").await.unwrap(), Released::Absent);
        take(&store, &f, "a", 2_000, 1_000).await.unwrap();
        assert_eq!(release(&store, &f, "b").await.unwrap(), Released::NotMine);
        assert_eq!(claim(&store, &f.claim_key()).unwrap().expires_ms, 2_000);
        assert_eq!(release(&store, &f, "a").await.unwrap(), Released::Released);
        assert_eq!(claim(&store, &f.claim_key()).unwrap().expires_ms, 0);
        // The retry, long before the old deadline, finds the file free.
        assert_eq!(
            take(&store, &f, "r", 9_000, 1_001).await.unwrap(),
            Taken::TakenOver
        );
    }

    #[tokio::test]
    async fn a_release_that_loses_a_race_leaves_the_new_claim_alone() {
        let store = MemoryStore::default();
        let f = file();
        take(&store, &f, "a", 2_000, 1_000).await.unwrap();
        store.race_next_write(RACER);
        assert_eq!(release(&store, &f, "a").await.unwrap(), Released::Changed);
        assert_eq!(claim(&store, &f.claim_key()).unwrap().owner, "racer");
    }
}
