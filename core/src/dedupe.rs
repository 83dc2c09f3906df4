//! Duplicate detection across a whole file, in bounded memory, across ingest continuations.
//!
//! Two rules span the file (README, "CSV format"): a user's first row is the one processed, and every
//! later row naming the same user (case-insensitively) is `duplicate_user_in_file`, even when the
//! first row was itself rejected (fix that row, do not append another); and a mobile number asked
//! for SMS sign-in by one accepted row cannot be asked for again (`sms_signin_number_not_unique`).
//!
//! An exact set of every key costs memory in proportion to the file. Instead the main pass keeps a
//! Bloom filter of fixed size (sized from the object's byte size, capped at [`MAX_BLOOM_BITS`]):
//! - a row whose keys are all absent from the filter is certainly new: it is accepted at once;
//! - a row with a key present *may* repeat an earlier row (or be a false positive): it becomes a
//!   *suspect* and is decided later. Its keys go into the filter too, so a later row that repeats
//!   it is also a suspect.
//!
//! When the main pass ends with suspects, a *confirm pass* reads the file again from the first data
//! row and replays the exact rule, but only for the keys of suspects: it tracks which of those keys
//! accepted rows have used so far and decides each suspect in file order. Memory is the filter plus
//! a few words per suspect (real duplicates and the rare false positive), never per row. Every
//! structure here serialises into the ingest checkpoint, so both passes can span invocations.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use xxhash_rust::xxh3::xxh3_128;

/// Largest filter: 2^27 bits = 16 MiB (about 0.2% false positives at 10 million rows).
pub const MAX_BLOOM_BITS: u64 = 1 << 27;
/// Smallest filter: 2^16 bits = 8 KiB.
pub const MIN_BLOOM_BITS: u64 = 1 << 16;
/// Hash functions per key.
pub const BLOOM_HASHES: u32 = 8;
/// Bits per expected row when sizing from the object size.
const BITS_PER_ROW: u64 = 24;
/// The shortest plausible data row (`a@b.cd,+1 2025550100` and a line end).
const MIN_ROW_BYTES: u64 = 16;

/// A 128-bit fingerprint of a key; collisions are negligible (2^-128 per pair).
pub type KeyHash = u128;

/// The kinds of key a row can claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A user (UPN lower-cased, or object id).
    User,
    /// A mobile number asked for SMS sign-in.
    SmsNumber,
}

/// Fingerprint of a key of a kind (the kinds never collide with each other).
pub fn key_hash(kind: KeyKind, key: &str) -> KeyHash {
    let mut buf = Vec::with_capacity(key.len() + 2);
    buf.push(match kind {
        KeyKind::User => b'u',
        KeyKind::SmsNumber => b's',
    });
    buf.push(0);
    buf.extend_from_slice(key.as_bytes());
    xxh3_128(&buf)
}

/// The bits a key sets in a filter of `bits` bits (a power of two): double hashing.
fn positions(bits: u64, hashes: u32, h: KeyHash) -> impl Iterator<Item = u64> {
    let mask = bits - 1;
    let h1 = h as u64;
    let h2 = ((h >> 64) as u64) | 1;
    (0..u64::from(hashes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
}

/// A fixed-size Bloom filter (power-of-two bits, double hashing).
#[derive(Clone, PartialEq, Eq)]
pub struct Bloom {
    words: Vec<u64>,
    hashes: u32,
}

impl std::fmt::Debug for Bloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bloom")
            .field("bits", &self.bits())
            .field("hashes", &self.hashes)
            .finish()
    }
}

impl Bloom {
    /// A filter of `bits` bits (rounded up to a power of two, at least 64).
    pub fn with_bits(bits: u64, hashes: u32) -> Bloom {
        let bits = bits.max(64).next_power_of_two();
        Bloom {
            words: vec![0; (bits / 64) as usize],
            hashes: hashes.max(1),
        }
    }

    /// A filter sized for an object of `size` bytes: enough bits for the most rows it can hold,
    /// within [`MIN_BLOOM_BITS`]..=[`MAX_BLOOM_BITS`].
    pub fn for_object_size(size: u64) -> Bloom {
        let rows = size / MIN_ROW_BYTES + 1;
        Bloom::with_bits(
            rows.saturating_mul(BITS_PER_ROW)
                .clamp(MIN_BLOOM_BITS, MAX_BLOOM_BITS),
            BLOOM_HASHES,
        )
    }

    pub fn bits(&self) -> u64 {
        self.words.len() as u64 * 64
    }

    pub fn hashes(&self) -> u32 {
        self.hashes
    }

    fn positions(&self, h: KeyHash) -> impl Iterator<Item = u64> {
        positions(self.bits(), self.hashes, h)
    }

    pub fn contains(&self, h: KeyHash) -> bool {
        self.positions(h)
            .all(|p| self.words[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }

    pub fn insert(&mut self, h: KeyHash) {
        for p in positions(self.bits(), self.hashes, h) {
            self.words[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    /// The bit array as little-endian bytes (for checkpoints).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.words.len() * 8);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Rebuilds a filter from [`Bloom::to_bytes`]; `None` if the length is not a power-of-two
    /// number of 64-bit words.
    pub fn from_bytes(bytes: &[u8], hashes: u32) -> Option<Bloom> {
        if bytes.len() < 8 || !bytes.len().is_multiple_of(8) || !(bytes.len() / 8).is_power_of_two()
        {
            return None;
        }
        let words = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        Some(Bloom {
            words,
            hashes: hashes.max(1),
        })
    }
}

/// Why the confirm pass rejects a suspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// An earlier row has the same user.
    User,
    /// An earlier accepted row asked for SMS sign-in with the same number.
    SmsNumber,
}

/// The serialisable part of [`Dedupe`] (all but the filter bits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DedupeMeta {
    pub bloom_bits: u64,
    pub bloom_hashes: u32,
    /// Rows deferred to the confirm pass, in file order.
    pub suspects: Vec<u64>,
    /// Keys of the suspects (hex fingerprints).
    pub suspect_keys: Vec<String>,
    /// Confirm pass: keys (of suspects) that accepted rows have used so far, as `hex:row`.
    pub seen: Vec<String>,
    /// Confirm pass: how many suspects have been decided.
    pub decided: u64,
}

/// Whole-file duplicate detection: the main-pass filter and the confirm-pass state.
#[derive(Debug, Clone)]
pub struct Dedupe {
    bloom: Bloom,
    suspects: Vec<u64>,
    suspect_keys: HashSet<KeyHash>,
    /// Confirm pass: key -> row of the accepted row that used it first.
    seen: HashMap<KeyHash, u64>,
    decided: usize,
}

impl Dedupe {
    pub fn new(bloom: Bloom) -> Dedupe {
        Dedupe {
            bloom,
            suspects: Vec::new(),
            suspect_keys: HashSet::new(),
            seen: HashMap::new(),
            decided: 0,
        }
    }

    /// Main pass: may this key have been used before? Records it either way. `false` is certain.
    pub fn maybe_seen(&mut self, key: KeyHash) -> bool {
        let hit = self.bloom.contains(key);
        if !hit {
            self.bloom.insert(key);
        }
        hit
    }

    /// Main pass: defers a row to the confirm pass; its keys become tracked (and enter the filter,
    /// so later rows that repeat them are deferred too).
    pub fn defer(&mut self, row: u64, keys: &[KeyHash]) {
        self.suspects.push(row);
        for k in keys {
            self.bloom.insert(*k);
            self.suspect_keys.insert(*k);
        }
    }

    /// Rows waiting for the confirm pass.
    pub fn suspects(&self) -> &[u64] {
        &self.suspects
    }

    /// Suspects not decided yet.
    pub fn undecided(&self) -> usize {
        self.suspects.len().saturating_sub(self.decided)
    }

    /// Confirm pass: was `row` deferred by the main pass?
    pub fn is_suspect(&self, row: u64) -> bool {
        self.suspects.binary_search(&row).is_ok()
    }

    /// Confirm pass: does a suspect use this key? Keys no suspect uses need no further look.
    pub fn is_tracked(&self, key: KeyHash) -> bool {
        self.suspect_keys.contains(&key)
    }

    /// Confirm pass: whether any key is tracked at all (skip work on files without suspects).
    pub fn tracks_any(&self) -> bool {
        !self.suspect_keys.is_empty()
    }

    /// Confirm pass: the row that used a tracked key first, or `None` (and `row` becomes that row).
    /// Untracked keys are not recorded.
    pub fn first_use(&mut self, key: KeyHash, row: u64) -> Option<u64> {
        if !self.suspect_keys.contains(&key) {
            return None;
        }
        match self.seen.get(&key) {
            Some(first) => Some(*first),
            None => {
                self.seen.insert(key, row);
                None
            }
        }
    }

    /// Confirm pass: one more suspect decided.
    pub fn mark_decided(&mut self) {
        self.decided += 1;
    }

    /// Forget the confirm pass's progress (it is replayed from the file's first row).
    pub fn restart_confirm(&mut self) {
        self.seen.clear();
        self.decided = 0;
    }

    pub fn bloom(&self) -> &Bloom {
        &self.bloom
    }

    pub fn meta(&self) -> DedupeMeta {
        let hex = |k: &KeyHash| format!("{k:032x}");
        let mut suspect_keys: Vec<String> = self.suspect_keys.iter().map(hex).collect();
        suspect_keys.sort();
        let mut seen: Vec<String> = self
            .seen
            .iter()
            .map(|(k, row)| format!("{}:{row}", hex(k)))
            .collect();
        seen.sort();
        DedupeMeta {
            bloom_bits: self.bloom.bits(),
            bloom_hashes: self.bloom.hashes(),
            suspects: self.suspects.clone(),
            suspect_keys,
            seen,
            decided: self.decided as u64,
        }
    }

    /// Rebuilds the state from [`Dedupe::meta`] and the filter bytes.
    pub fn restore(meta: &DedupeMeta, bloom_bytes: &[u8]) -> Option<Dedupe> {
        let bloom = Bloom::from_bytes(bloom_bytes, meta.bloom_hashes)?;
        if bloom.bits() != meta.bloom_bits {
            return None;
        }
        let parse = |s: &String| u128::from_str_radix(s, 16).ok();
        let suspect_keys = meta
            .suspect_keys
            .iter()
            .map(parse)
            .collect::<Option<HashSet<_>>>()?;
        let seen = meta
            .seen
            .iter()
            .map(|s| {
                let (k, row) = s.split_once(':')?;
                Some((u128::from_str_radix(k, 16).ok()?, row.parse::<u64>().ok()?))
            })
            .collect::<Option<HashMap<_, _>>>()?;
        let mut suspects = meta.suspects.clone();
        suspects.sort_unstable();
        Some(Dedupe {
            bloom,
            suspects,
            suspect_keys,
            seen,
            decided: meta.decided as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact rule, for comparison: a user's later rows are duplicates; an SMS number is
    /// claimed by the first accepted row asking for it.
    fn exact(rows: &[(&str, Option<&str>)]) -> Vec<Result<(), Repeat>> {
        let mut users = HashSet::new();
        let mut sms = HashSet::new();
        rows.iter()
            .map(|(u, s)| {
                if !users.insert(*u) {
                    Err(Repeat::User)
                } else if s.is_some_and(|s| !sms.insert(s)) {
                    Err(Repeat::SmsNumber)
                } else {
                    Ok(())
                }
            })
            .collect()
    }

    /// Main pass then confirm pass, as the ingest runs them (every row valid here).
    fn two_pass(
        rows: &[(&str, Option<&str>)],
        bloom_bits: u64,
    ) -> (Vec<Result<(), Repeat>>, usize) {
        let mut d = Dedupe::new(Bloom::with_bits(bloom_bits, 4));
        let keys = |u: &str, s: Option<&str>| {
            (
                key_hash(KeyKind::User, u),
                s.map(|s| key_hash(KeyKind::SmsNumber, s)),
            )
        };
        let mut out: Vec<Option<Result<(), Repeat>>> = Vec::new();
        for (i, (u, s)) in rows.iter().enumerate() {
            let (uk, sk) = keys(u, *s);
            let row = i as u64 + 2;
            let all: Vec<KeyHash> = std::iter::once(uk).chain(sk).collect();
            if d.maybe_seen(uk) || sk.is_some_and(|k| d.maybe_seen(k)) {
                d.defer(row, &all);
                out.push(None);
            } else {
                out.push(Some(Ok(())));
            }
        }
        let suspects = d.suspects().len();
        // Round-trip through the checkpoint form between the passes.
        let mut d = Dedupe::restore(&d.meta(), &d.bloom().to_bytes()).expect("restore");
        for (i, (u, s)) in rows.iter().enumerate() {
            let (uk, sk) = keys(u, *s);
            let row = i as u64 + 2;
            if !d.is_suspect(row) {
                d.first_use(uk, row);
                if let Some(k) = sk {
                    d.first_use(k, row);
                }
                continue;
            }
            d.mark_decided();
            let decision = if let Some(first) = d.first_use(uk, row) {
                assert!(first < row);
                Err(Repeat::User)
            } else if let Some(first) = sk.and_then(|k| d.first_use(k, row)) {
                assert!(first < row);
                Err(Repeat::SmsNumber)
            } else {
                Ok(())
            };
            out[i] = Some(decision);
        }
        assert_eq!(d.undecided(), 0);
        (
            out.into_iter().map(|o| o.expect("decided")).collect(),
            suspects,
        )
    }

    #[test]
    fn first_occurrence_wins_case_insensitively_keyed() {
        let rows = [
            ("a@x.com", None),
            ("b@x.com", None),
            ("a@x.com", None),
            ("c@x.com", None),
            ("b@x.com", None),
        ];
        let (got, _) = two_pass(&rows, 1 << 16);
        assert_eq!(got, exact(&rows));
        assert_eq!(
            got,
            vec![Ok(()), Ok(()), Err(Repeat::User), Ok(()), Err(Repeat::User)]
        );
    }

    #[test]
    fn sms_number_claimed_once_and_a_rejected_row_does_not_claim_it() {
        let rows = [
            ("a@x.com", Some("+31 612345678")),
            ("b@x.com", Some("+31 612345678")),
            // b's row above was rejected for the number, but b was seen: this is a duplicate.
            ("b@x.com", None),
            // A duplicate user's number is not claimed by it.
            ("a@x.com", Some("+31 612345679")),
            ("c@x.com", Some("+31 612345679")),
        ];
        let (got, _) = two_pass(&rows, 1 << 16);
        assert_eq!(got, exact(&rows));
        assert_eq!(
            got,
            vec![
                Ok(()),
                Err(Repeat::SmsNumber),
                Err(Repeat::User),
                Err(Repeat::User),
                Ok(())
            ]
        );
    }

    #[test]
    fn a_tiny_filter_with_many_false_positives_still_decides_exactly() {
        // 64 bits for 3,000 rows: nearly every row is a suspect; the answer must still be exact.
        let users: Vec<String> = (0..3000)
            .map(|i| format!("user{}@x.com", (i * 7919) % 2100))
            .collect();
        let sms: Vec<Option<String>> = (0..3000)
            .map(|i| {
                if i % 5 == 0 {
                    Some(format!("+1 20255{:05}", i % 700))
                } else {
                    None
                }
            })
            .collect();
        let rows: Vec<(&str, Option<&str>)> = users
            .iter()
            .zip(&sms)
            .map(|(u, s)| (u.as_str(), s.as_deref()))
            .collect();
        let (got, suspects) = two_pass(&rows, 64);
        assert!(
            suspects > 2500,
            "expected the filter to saturate, got {suspects} suspects"
        );
        assert_eq!(got, exact(&rows));
        assert!(got.contains(&Err(Repeat::User)));
        assert!(got.contains(&Err(Repeat::SmsNumber)));
    }

    #[test]
    fn a_roomy_filter_defers_only_real_repeats() {
        let users: Vec<String> = (0..20_000).map(|i| format!("user{i}@x.com")).collect();
        let mut rows: Vec<(&str, Option<&str>)> =
            users.iter().map(|u| (u.as_str(), None)).collect();
        rows.push(("user10@x.com", None));
        let (got, suspects) = two_pass(&rows, Bloom::for_object_size(20_000 * 40).bits());
        assert_eq!(suspects, 1);
        assert_eq!(got.last(), Some(&Err(Repeat::User)));
    }

    #[test]
    fn filter_size_follows_the_object_and_is_capped() {
        assert_eq!(Bloom::for_object_size(0).bits(), MIN_BLOOM_BITS);
        assert_eq!(Bloom::for_object_size(u64::MAX / 2).bits(), MAX_BLOOM_BITS);
        let b = Bloom::for_object_size(8_000_000);
        assert!(b.bits() >= 8_000_000 / 16 * 24 && b.bits() <= MAX_BLOOM_BITS);
    }

    #[test]
    fn bad_checkpoint_bytes_are_refused() {
        assert!(Bloom::from_bytes(&[0u8; 24], 4).is_none());
        assert!(Bloom::from_bytes(&[], 4).is_none());
        let d = Dedupe::new(Bloom::with_bits(128, 4));
        let mut meta = d.meta();
        meta.bloom_bits = 256;
        assert!(Dedupe::restore(&meta, &d.bloom().to_bytes()).is_none());
        let mut meta = d.meta();
        meta.suspect_keys.push("not hex".into());
        assert!(Dedupe::restore(&meta, &d.bloom().to_bytes()).is_none());
    }
}
