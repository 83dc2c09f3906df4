//! `plan`: per user, the writes `apply` would make (reads only).

use std::path::PathBuf;

use futures::stream::{self, StreamExt};
use mfa_preload_core::apply::read_current;
use mfa_preload_core::plan::{plan, Action};

use crate::apply::cli_job;
use crate::args::{GraphArgs, InputArgs, RunArgs};
use crate::connect::Session;
use crate::input::{self, InputRow};
use crate::report::{self, Tally};
use crate::results::{ResultRow, FAILED, REJECTED};
use crate::Failure;
use mfa_preload_core::results::SafeCsv;

/// Header of `plan --out`.
pub const PLAN_HEADER: [&str; 6] = ["row", "user", "outcome", "reason", "writes", "detail"];

/// One user's plan: the outcome it would have and the writes, in order (numbers masked).
struct PlanRow {
    result: ResultRow,
    writes: Vec<String>,
}

async fn plan_row(session: &Session, job: &mfa_preload_core::Job, r: &InputRow) -> PlanRow {
    let valid = match &r.status {
        Err(e) => {
            return PlanRow {
                result: ResultRow::rejected(&r.user, e),
                writes: Vec::new(),
            }
        }
        Ok(v) => v,
    };
    let req = valid.clone().into_request(job.clone());
    let mut result = ResultRow {
        row: r.row,
        user: r.user.clone(),
        outcome: String::new(),
        reason: String::new(),
        detail: String::new(),
    };
    match read_current(&session.client, &req).await {
        Err(e) => {
            result.outcome = if e.is_transient() { FAILED } else { REJECTED }.into();
            result.reason = e.reason().as_str().into();
            result.detail = e.to_string();
            PlanRow {
                result,
                writes: Vec::new(),
            }
        }
        Ok(mut current) => {
            let mut p = plan(&current, &req);
            // The default method is read only when a request sets one; a dry run also reads it
            // when a phone would be deleted, so a default_method_conflict shows in the plan.
            let deletes = p
                .actions
                .iter()
                .any(|a| matches!(a, Action::DeletePhone { .. }));
            if deletes && current.default_method.is_none() {
                match session.client.get_sign_in_preferences(&req.user).await {
                    Ok(prefs) => {
                        current.default_method = prefs
                            .user_preferred_method_for_secondary_authentication
                            .filter(|d| !d.trim().is_empty());
                        p = plan(&current, &req);
                    }
                    Err(e) => tracing::warn!(row = r.row, error = %e, "default method not read"),
                }
            }
            let writes: Vec<String> = p.actions.iter().map(|a| a.label()).collect();
            match p.outcome() {
                Ok(o) => result.outcome = o.as_str().into(),
                Err(rej) => {
                    result.outcome = REJECTED.into();
                    result.reason = rej.reason.as_str().into();
                    result.detail = rej.detail;
                }
            }
            let d = p.describe();
            if !d.is_empty() {
                if !result.detail.is_empty() {
                    result.detail.push_str("; ");
                }
                result.detail.push_str(&d);
            }
            PlanRow { result, writes }
        }
    }
}

pub async fn run(
    graph: &GraphArgs,
    args: &InputArgs,
    out: Option<PathBuf>,
    tuning: &RunArgs,
) -> Result<u8, Failure> {
    let (settings, mapping) = input::options(args)?;
    let input = input::read(&args.file, &settings, &mapping).await?;
    let seed: Vec<_> = input.valid().collect();
    let job = cli_job(&input);
    let needed = crate::apply::input_features(&input, &job);
    let reads: Vec<_> = needed.iter().map(|f| f.read_only()).collect();
    let session = Session::open(graph, &seed, &reads).await?;
    // A dry run only reads; say now what `apply` would lack.
    if let Err(e) = session.client.check_features(&needed).await {
        eprintln!("warning: apply would stop: {e}");
    }
    let rows: Vec<PlanRow> = stream::iter(input.rows.iter())
        .map(|r| plan_row(&session, &job, r))
        .buffered(usize::from(tuning.concurrency))
        .collect()
        .await;
    session.close().await?;

    if let Some(path) = &out {
        let file = std::fs::File::create(path).map_err(|e| Failure::io(path, e))?;
        let mut w = SafeCsv::new(std::io::BufWriter::new(file));
        let err = |e: csv::Error| Failure::Usage(format!("writing {}: {e}", path.display()));
        w.record(PLAN_HEADER).map_err(err)?;
        for p in &rows {
            let r = &p.result;
            w.record([
                r.row.to_string(),
                r.user.clone(),
                r.outcome.clone(),
                r.reason.clone(),
                p.writes.join(", "),
                r.detail.clone(),
            ])
            .map_err(err)?;
        }
        w.flush().map_err(|e| Failure::io(path, e))?;
    }

    let mut tally = Tally::default();
    let writes: usize = rows.iter().map(|p| p.writes.len()).sum();
    let table: Vec<ResultRow> = rows
        .into_iter()
        .map(|p| {
            tally.add(&p.result);
            let mut r = p.result;
            if !p.writes.is_empty() {
                let w = format!("writes: {}", p.writes.join(", "));
                r.detail = if r.detail.is_empty() {
                    w
                } else {
                    format!("{w}; {}", r.detail)
                };
            }
            r
        })
        .collect();
    tally.print(&format!(
        "plan for {} (nothing written)",
        args.file.display()
    ));
    println!("  {:<32} {:>8}", "Graph writes planned", writes);
    report::print_rows(&table, tuning.show);
    if let Some(p) = &out {
        println!();
        println!("plan written to {}", p.display());
    }
    Ok(if tally.not_ok() > 0 { 1 } else { 0 })
}
