//! The ledger in memory, with the DynamoDB adapter's semantics (a row recorded once, a
//! completion claimed once): for tests and simulations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{JobKey, JobSummary, LedgerError, LedgerPort, ReportState, RowRecord};

#[derive(Debug, Default)]
struct Job {
    summary: JobSummary,
    rows: BTreeMap<String, RowRecord>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    jobs: Mutex<HashMap<JobKey, Job>>,
    /// Writes that fail from now on (a store outage), for tests.
    failing: Mutex<bool>,
}

impl MemoryLedger {
    pub fn new() -> MemoryLedger {
        MemoryLedger::default()
    }

    /// Makes every write fail (`true`) or succeed again.
    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = failing;
    }

    fn check(&self) -> Result<(), LedgerError> {
        if *self.failing.lock().unwrap_or_else(|e| e.into_inner()) {
            Err(LedgerError::Store("the store is unavailable (test)".into()))
        } else {
            Ok(())
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<JobKey, Job>) -> T) -> T {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut jobs)
    }
}

fn entry<'a>(jobs: &'a mut HashMap<JobKey, Job>, job: &JobKey, label: &str) -> &'a mut Job {
    let j = jobs.entry(job.clone()).or_default();
    j.summary.job = job.clone();
    if j.summary.label.is_empty() {
        j.summary.label = label.to_string();
    }
    j
}

#[async_trait]
impl LedgerPort for MemoryLedger {
    async fn record(
        &self,
        job: &JobKey,
        label: &str,
        rows: &[RowRecord],
    ) -> Result<u64, LedgerError> {
        self.check()?;
        Ok(self.with(|jobs| {
            let j = entry(jobs, job, label);
            let mut new = 0;
            for r in rows {
                let key = r.item_key();
                if j.rows.contains_key(&key) {
                    continue;
                }
                let r = r.clone().bounded();
                let s = &mut j.summary;
                s.done += 1;
                *s.by_outcome.entry(r.outcome.clone()).or_default() += 1;
                if !r.reason.is_empty() {
                    *s.by_reason.entry(r.reason.clone()).or_default() += 1;
                }
                if s.started_at.as_deref().is_none_or(|t| r.at.as_str() < t) {
                    s.started_at = Some(r.at.clone());
                }
                if s.updated_at.as_deref().is_none_or(|t| r.at.as_str() > t) {
                    s.updated_at = Some(r.at.clone());
                }
                j.rows.insert(key, r);
                new += 1;
            }
            new
        }))
    }

    async fn set_expected(
        &self,
        job: &JobKey,
        label: &str,
        expected: u64,
        rows_read: u64,
    ) -> Result<(), LedgerError> {
        self.check()?;
        self.with(|jobs| {
            let j = entry(jobs, job, label);
            j.summary.expected = Some(expected);
            j.summary.rows_read = Some(rows_read);
        });
        Ok(())
    }

    async fn summary(&self, job: &JobKey) -> Result<Option<JobSummary>, LedgerError> {
        Ok(self.with(|jobs| jobs.get(job).map(|j| j.summary.clone())))
    }

    async fn rows(&self, job: &JobKey) -> Result<Vec<RowRecord>, LedgerError> {
        Ok(self.with(|jobs| {
            jobs.get(job)
                .map(|j| j.rows.values().cloned().collect())
                .unwrap_or_default()
        }))
    }

    async fn claim_completion(&self, job: &JobKey, at: &str) -> Result<bool, LedgerError> {
        self.check()?;
        Ok(self.with(|jobs| match jobs.get_mut(job) {
            Some(j) if j.summary.completed_at.is_none() => {
                j.summary.completed_at = Some(at.to_string());
                j.summary.report = Some(ReportState::Requested);
                true
            }
            _ => false,
        }))
    }

    async fn release_completion(&self, job: &JobKey) -> Result<(), LedgerError> {
        self.check()?;
        self.with(|jobs| {
            if let Some(j) = jobs.get_mut(job) {
                if j.summary.report == Some(ReportState::Requested) {
                    j.summary.completed_at = None;
                    j.summary.report = None;
                }
            }
        });
        Ok(())
    }

    async fn mark_reported(&self, job: &JobKey, _at: &str) -> Result<(), LedgerError> {
        self.check()?;
        self.with(|jobs| {
            if let Some(j) = jobs.get_mut(job) {
                j.summary.report = Some(ReportState::Written);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{claim_if_complete, Stage, REJECTED};

    fn row(n: u64, outcome: &str, reason: &str) -> RowRecord {
        RowRecord {
            row: Some(n),
            user: format!("u{n}@contoso.com"),
            outcome: outcome.into(),
            reason: reason.into(),
            detail: String::new(),
            at: format!("2026-12-03T10:00:{:02}Z", n % 60),
            deliveries: 1,
            stage: Stage::Worker,
        }
    }

    #[tokio::test]
    async fn a_row_recorded_twice_counts_once_and_its_first_outcome_stands() {
        let l = MemoryLedger::new();
        let job = JobKey("s3://b/k@r".into());
        assert_eq!(
            l.record(&job, "s3://b/k", &[row(2, "created", "")])
                .await
                .unwrap(),
            1
        );
        let again = [row(2, "unchanged", ""), row(3, REJECTED, "invalid_email")];
        assert_eq!(l.record(&job, "s3://b/k", &again).await.unwrap(), 1);
        let s = l.summary(&job).await.unwrap().unwrap();
        assert_eq!(s.done, 2);
        assert_eq!(s.by_outcome.get("created"), Some(&1));
        assert_eq!(s.by_outcome.get("unchanged"), None);
        assert_eq!(s.by_reason.get("invalid_email"), Some(&1));
        let rows = l.rows(&job).await.unwrap();
        assert_eq!(rows[0].outcome, "created");
    }

    #[tokio::test]
    async fn completion_is_claimed_once_and_only_when_every_expected_row_is_in() {
        let l = MemoryLedger::new();
        let job = JobKey("s3://b/k@r".into());
        l.record(&job, "s3://b/k", &[row(2, "created", "")])
            .await
            .unwrap();
        // Not known how many rows to expect yet.
        assert!(claim_if_complete(&l, &job, "t1").await.unwrap().is_none());
        l.set_expected(&job, "s3://b/k", 2, 2).await.unwrap();
        assert!(claim_if_complete(&l, &job, "t1").await.unwrap().is_none());
        l.record(&job, "s3://b/k", &[row(3, "updated", "")])
            .await
            .unwrap();
        let first = claim_if_complete(&l, &job, "t2").await.unwrap();
        assert_eq!(first.map(|s| s.done), Some(2));
        assert!(claim_if_complete(&l, &job, "t3").await.unwrap().is_none());
        // A claim given back (the report request failed) is claimed again.
        l.release_completion(&job).await.unwrap();
        assert!(claim_if_complete(&l, &job, "t4").await.unwrap().is_some());
    }
}
