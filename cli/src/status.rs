//! `mfa-preload status`: a job's progress and outcomes from the job ledger (DynamoDB): done of
//! expected, rate and ETA, counts by outcome and reason; `--results` downloads the results so
//! far, `--reconcile` first records the rows SQS moved to the DLQ by itself, `--watch` follows
//! the job until it is complete.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mfa_preload_core::aws::clients::{dynamodb_client, load_sdk_config, s3_client, sqs_client};
use mfa_preload_core::aws::dlq::SqsDlqPeek;
use mfa_preload_core::aws::ledger::DynamoLedger;
use mfa_preload_core::aws::s3::ObjectStore;
use mfa_preload_core::aws::sqs::SqsSender;
use mfa_preload_core::ingest::job_reports::SqsReportRequests;
use mfa_preload_core::ingest::{now_rfc3339, report_key, Report};
use mfa_preload_core::ledger::reconcile::reconcile;
use mfa_preload_core::ledger::{JobKey, JobSummary, LedgerPort, ReportRequests};
use mfa_preload_core::results::ResultRow;

use crate::Failure;

pub struct Options {
    /// `s3://BUCKET/KEY` of an uploaded file.
    pub file: Option<String>,
    /// `producer/id` of another producer's job.
    pub job: Option<String>,
    /// The upload's run (default: the one the file's ingest report names).
    pub run: Option<String>,
    pub table: String,
    pub results: Option<PathBuf>,
    pub reconcile: bool,
    pub dlq_url: Option<String>,
    pub control_queue_url: Option<String>,
    pub watch: bool,
    pub interval: Duration,
}

/// `s3://BUCKET/KEY` -> (bucket, key).
pub fn parse_s3_url(url: &str) -> Result<(String, String), Failure> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        Failure::Usage(format!(
            "'{url}' is not an s3:// URL (s3://BUCKET/incoming/FILE.csv)"
        ))
    })?;
    match rest.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_string(), k.to_string())),
        _ => Err(Failure::Usage(format!(
            "'{url}' names no object (s3://BUCKET/incoming/FILE.csv)"
        ))),
    }
}

pub async fn run(opts: Options) -> Result<u8, Failure> {
    let sdk = load_sdk_config().await;
    let ledger = DynamoLedger::with_retention_days(
        dynamodb_client(&sdk),
        &opts.table,
        mfa_preload_core::config::DEFAULT_RETENTION_DAYS,
    );
    let (key, label) = match (&opts.file, &opts.job) {
        (Some(url), None) => {
            let (bucket, object) = parse_s3_url(url)?;
            let run = match &opts.run {
                Some(r) => r.clone(),
                None => {
                    let store = ObjectStore::new(s3_client(&sdk));
                    let rk = report_key(&object);
                    let report: Option<Report> = store
                        .get_json(&bucket, &rk)
                        .await
                        .map_err(|e| Failure::Usage(format!("reading s3://{bucket}/{rk}: {e}")))?;
                    match report {
                        Some(r) => r.run,
                        None => {
                            return Err(Failure::Usage(format!(
                                "no ingest report at s3://{bucket}/{rk}: the file was not ingested (yet); check the key, or pass --run"
                            )))
                        }
                    }
                }
            };
            (
                JobKey::of_file(&bucket, &object, &run),
                format!("s3://{bucket}/{object}"),
            )
        }
        (None, Some(job)) => (JobKey::of_producer(job), job.clone()),
        _ => {
            return Err(Failure::Usage(
                "name the job: an uploaded file (s3://BUCKET/KEY) or --job PRODUCER/ID".into(),
            ))
        }
    };
    if opts.reconcile {
        let dlq_url = opts.dlq_url.as_deref().ok_or_else(|| {
            Failure::Usage("--reconcile needs the DLQ's URL (--dlq-url or DLQ_URL)".into())
        })?;
        let sqs = sqs_client(&sdk);
        let peek = SqsDlqPeek::new(sqs.clone(), dlq_url);
        let requests = opts.control_queue_url.as_deref().map(|url| {
            Arc::new(SqsReportRequests::new(
                SqsSender::new(sqs.clone(), url),
                url,
            )) as Arc<dyn ReportRequests>
        });
        let r = reconcile(&peek, &ledger, requests.as_deref(), &key, &now_rfc3339())
            .await
            .map_err(|e| Failure::Usage(format!("reconcile: {e}")))?;
        println!(
            "reconcile: {} DLQ messages read, {} of this job, {} rows recorded that the ledger lacked{}",
            r.read,
            r.of_job,
            r.recorded,
            if r.completed {
                "; the job is complete now and its reports are asked for"
            } else {
                ""
            }
        );
    }
    let mut out = std::io::stdout();
    loop {
        let summary = ledger
            .summary(&key)
            .await
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let summary = summary.unwrap_or_else(|| JobSummary {
            job: key.clone(),
            label: label.clone(),
            ..JobSummary::default()
        });
        let text = render(&summary, out.is_terminal());
        let _ = write!(out, "{text}");
        let _ = out.flush();
        if !opts.watch || summary.is_complete() {
            break;
        }
        tokio::time::sleep(opts.interval).await;
        if out.is_terminal() {
            // Redraw in place.
            let lines = text.lines().count();
            let _ = write!(out, "\x1b[{lines}A\x1b[J");
        } else {
            let _ = writeln!(out);
        }
    }
    if let Some(path) = &opts.results {
        let rows = ledger
            .rows(&key)
            .await
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let file = crate::results::create_private(path).map_err(|e| Failure::io(path, e))?;
        let n = rows.len();
        mfa_preload_core::results::write_csv(
            std::io::BufWriter::new(file),
            rows.iter().map(ResultRow::from),
        )
        .map_err(|e| Failure::Usage(format!("writing {}: {e}", path.display())))?;
        println!("results: {n} rows written to {}", path.display());
    }
    Ok(0)
}

/// The status text: progress, rate and ETA, counts by outcome and reason.
pub fn render(s: &JobSummary, terminal: bool) -> String {
    let mut t = String::new();
    let status = s.status().as_str();
    t.push_str(&format!("job {} ({})\n", s.label, s.job));
    match s.expected {
        Some(e) => {
            let pct = if e == 0 {
                100.0
            } else {
                100.0 * s.done as f64 / e as f64
            };
            let bar = if terminal {
                let filled = ((pct / 100.0) * 30.0).round().clamp(0.0, 30.0) as usize;
                format!(" [{}{}]", "=".repeat(filled), " ".repeat(30 - filled))
            } else {
                String::new()
            };
            t.push_str(&format!(
                "status: {status}, {} of {e} rows done ({pct:.1}%){bar}\n",
                s.done
            ));
        }
        None => t.push_str(&format!(
            "status: {status}, {} rows done (the ingest is still reading the file: the total is not known yet)\n",
            s.done
        )),
    }
    if let Some(r) = s.rows_read {
        t.push_str(&format!("rows read by the ingest: {r}\n"));
    }
    let rate = rate(s);
    if let Some(rate) = rate {
        t.push_str(&format!("rate: {rate:.1} rows/s"));
        if let (Some(e), false) = (s.expected, s.is_complete()) {
            let left = e.saturating_sub(s.done) as f64;
            if rate > 0.0 {
                t.push_str(&format!(", ETA {}", human(left / rate)));
            }
        }
        t.push('\n');
    }
    let list = |title: &str, m: &BTreeMap<String, u64>, t: &mut String| {
        if m.is_empty() {
            return;
        }
        t.push_str(title);
        t.push('\n');
        for (k, v) in m {
            t.push_str(&format!("  {k:<30} {v}\n"));
        }
    };
    list("outcomes:", &s.by_outcome, &mut t);
    list("reasons (rows that need action):", &s.by_reason, &mut t);
    if let Some(r) = s.report {
        t.push_str(&format!(
            "reports: {}\n",
            match r {
                mfa_preload_core::ledger::ReportState::Requested => "being written",
                mfa_preload_core::ledger::ReportState::Written =>
                    "written (reports/<key>.results.csv and reports/<key>.report.html)",
            }
        ));
    }
    t
}

/// Rows per second between the first and the last record.
fn rate(s: &JobSummary) -> Option<f64> {
    let parse = |v: &Option<String>| {
        v.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let (a, b) = (parse(&s.started_at)?, parse(&s.updated_at)?);
    let secs = (b - a).num_milliseconds() as f64 / 1000.0;
    (secs > 0.0).then(|| s.done as f64 / secs)
}

fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_counts_rate_and_eta() {
        let mut s = JobSummary {
            job: JobKey("s3://b/k@r".into()),
            label: "s3://b/k".into(),
            expected: Some(100),
            rows_read: Some(100),
            done: 40,
            started_at: Some("2026-12-03T10:00:00Z".into()),
            updated_at: Some("2026-12-03T10:00:20Z".into()),
            ..JobSummary::default()
        };
        s.by_outcome.insert("created".into(), 38);
        s.by_outcome.insert("rejected".into(), 2);
        s.by_reason.insert("invalid_email".into(), 2);
        let t = render(&s, false);
        assert!(
            t.contains("status: running, 40 of 100 rows done (40.0%)"),
            "{t}"
        );
        assert!(t.contains("rate: 2.0 rows/s, ETA 30s"), "{t}");
        assert!(t.contains("invalid_email"), "{t}");
        s.done = 100;
        assert!(render(&s, false).contains("status: complete"));
    }

    #[test]
    fn s3_urls_are_checked() {
        assert_eq!(
            parse_s3_url("s3://bkt/incoming/a b.csv").unwrap(),
            ("bkt".to_string(), "incoming/a b.csv".to_string())
        );
        assert!(parse_s3_url("bkt/incoming/a.csv").is_err());
        assert!(parse_s3_url("s3://bkt/").is_err());
    }
}
