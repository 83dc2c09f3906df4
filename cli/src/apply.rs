//! `apply`: make the changes, with bounded concurrency, incremental results, Ctrl-C and resume.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use mfa_preload_core::apply::{apply, features};
use mfa_preload_core::graph::{ConfigFault, Feature};
use mfa_preload_core::tap::IssuedPass;
use mfa_preload_core::{Job, Reason};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::args::{GraphArgs, InputArgs, RunArgs};
use crate::connect::Session;
use crate::input::{self, Input, InputRow};
use crate::passes::PassesWriter;
use crate::progress::Progress;
use crate::report::{self, Tally};
use crate::results::{self, ResultRow, ResultsWriter};
use crate::Failure;

/// Exit code of an interrupted run (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// What `apply` was asked to do with a results file.
pub struct Options {
    pub results: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    pub overwrite: bool,
    /// The passes file (default FILE-stem.passes.csv).
    pub passes: Option<PathBuf>,
    /// Print the passes issued at the end.
    pub show_passes: bool,
}

/// The `Job` of requests made by the command-line tool.
pub fn cli_job(input: &Input) -> Job {
    Job::Producer {
        producer: "mfa-preload-cli".into(),
        id: input
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
    }
}

/// The features (Graph permissions) the file's valid rows use.
pub fn input_features(input: &Input, job: &Job) -> Vec<Feature> {
    let mut out: Vec<Feature> = input
        .valid()
        .flat_map(|v| features(&v.clone().into_request(job.clone())))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Rows of an earlier results file that are done for good; refuses a file of another input.
fn earlier_results(path: &std::path::Path, input: &Input) -> Result<Vec<ResultRow>, Failure> {
    let earlier = results::read(path)?;
    let by_row: HashMap<u64, &InputRow> = input.rows.iter().map(|r| (r.row, r)).collect();
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for r in earlier {
        match by_row.get(&r.row) {
            Some(i) if r.is_for_user(&i.user) => {}
            _ => {
                return Err(Failure::Usage(format!(
                    "{}: row {} (user '{}') is not a row of {}: is it the results file of another input?",
                    path.display(),
                    r.row,
                    r.user,
                    input.path.display()
                )))
            }
        }
        if r.is_final() && seen.insert(r.row) {
            kept.push(r);
        }
    }
    Ok(kept)
}

/// Sets the flag on the first Ctrl-C; a second one ends the process at once.
fn watch_ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handler: never interrupted (keep the sender alive).
            std::future::pending::<()>().await;
        }
        let _ = tx.send(true);
        eprintln!("interrupted: no new users are started; finishing the ones in flight (Ctrl-C again to stop at once)");
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopped at once; rows in flight are not in the results and are done again by --resume");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    rx
}

pub async fn run(
    graph: &GraphArgs,
    args: &InputArgs,
    opts: Options,
    tuning: &RunArgs,
) -> Result<u8, Failure> {
    let (settings, mapping) = input::options(args)?;
    let input = input::read(&args.file, &settings, &mapping).await?;
    let (path, kept) = match &opts.resume {
        Some(p) => (p.clone(), earlier_results(p, &input)?),
        None => (
            opts.results
                .clone()
                .unwrap_or_else(|| input::default_output(&args.file, "results")),
            Vec::new(),
        ),
    };
    let done: HashSet<u64> = kept.iter().map(|r| r.row).collect();
    let todo: Vec<&InputRow> = input
        .rows
        .iter()
        .filter(|r| !done.contains(&r.row))
        .collect();

    let seed: Vec<_> = input.valid().collect();
    let job = cli_job(&input);
    let session = Session::open(graph, &seed, &input_features(&input, &job)).await?;
    // The passes file, before any user is touched (and before the results file, so that a
    // refusal leaves nothing behind), when a row to do asks for a pass.
    let wants_passes = todo.iter().any(|r| {
        r.status
            .as_ref()
            .is_ok_and(|v| v.temporary_access_pass.is_some())
    });
    if opts.resume.is_none() {
        ResultsWriter::refuse_existing(&path, opts.overwrite || graph.simulate)?;
    }
    let mut passes = if wants_passes {
        let p = opts
            .passes
            .clone()
            .unwrap_or_else(|| input::default_output(&args.file, "passes"));
        Some(PassesWriter::open(
            &p,
            opts.resume.is_some(),
            opts.overwrite || graph.simulate,
            opts.show_passes,
        )?)
    } else {
        None
    };
    let mut writer = match &opts.resume {
        Some(p) => {
            results::rewrite(p, &kept)?;
            ResultsWriter::append(p)?
        }
        None => ResultsWriter::create(&path, opts.overwrite || graph.simulate)?,
    };
    if !kept.is_empty() {
        eprintln!(
            "resuming {}: {} rows already done, {} to do",
            path.display(),
            kept.len(),
            todo.len()
        );
    }

    let progress = Arc::new(Progress::new("apply", todo.len() as u64));
    let (tx, mut rx) = mpsc::unbounded_channel::<(ResultRow, Option<IssuedPass>)>();
    let writer_progress = progress.clone();
    let writer_task = tokio::spawn(async move {
        let mut rows = Vec::new();
        while let Some((r, pass)) = rx.recv().await {
            // The pass reaches its file before the row's result says it was issued.
            if let Some(p) = &pass {
                match passes.as_mut() {
                    Some(w) => w.write(&r.user, p)?,
                    None => {
                        return Err(Failure::Usage(format!(
                            "row {}: a Temporary Access Pass was issued but no passes file is open",
                            r.row
                        )))
                    }
                }
            }
            writer.write(&r)?;
            writer_progress.inc();
            rows.push(r);
        }
        Ok::<_, Failure>((rows, passes))
    });

    let mut cancel = watch_ctrl_c();
    // The first configuration fault stops the run: every later user would meet it too.
    let (fault_tx, mut fault_rx) = watch::channel::<Option<ConfigFault>>(None);
    let limit = Arc::new(Semaphore::new(usize::from(tuning.concurrency)));
    let mut tasks = JoinSet::new();
    let mut started = 0usize;
    let mut interrupted = false;
    for r in &todo {
        while tasks.try_join_next().is_some() {}
        if tx.is_closed() {
            // The results writer failed: start nothing that could not be recorded.
            break;
        }
        if *cancel.borrow() {
            interrupted = true;
            break;
        }
        if fault_rx.borrow().is_some() {
            break;
        }
        let valid = match &r.status {
            Err(e) => {
                let _ = tx.send((ResultRow::rejected(&r.user, e), None));
                started += 1;
                continue;
            }
            Ok(v) => v,
        };
        let permit = tokio::select! {
            biased;
            _ = cancel.wait_for(|c| *c) => {
                interrupted = true;
                break;
            }
            _ = fault_rx.wait_for(|f| f.is_some()) => break,
            p = limit.clone().acquire_owned() => p.map_err(|e| Failure::Usage(e.to_string()))?,
        };
        let client = session.client.clone();
        let tx = tx.clone();
        let fault_tx = fault_tx.clone();
        let req = valid.clone().into_request(job.clone());
        let (row, user) = (r.row, r.user.clone());
        let limit = limit.clone();
        let window = std::time::Duration::from_secs(tuning.user_not_found_retry);
        started += 1;
        tasks.spawn(async move {
            let mut permit = Some(permit);
            let first = std::time::Instant::now();
            let mut wait = std::time::Duration::from_secs(5);
            let res = loop {
                let res = apply(&client, &req).await;
                let not_found = matches!(&res.outcome, Err(r) if r.reason == Reason::UserNotFound);
                if !not_found || first.elapsed() + wait > window {
                    break res;
                }
                // A user created minutes ago may not be in Graph yet: try again later, without
                // holding a slot meanwhile.
                permit = None;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(60));
                match limit.clone().acquire_owned().await {
                    Ok(p) => permit = Some(p),
                    Err(_) => break res,
                }
            };
            if let Some(f) = &res.config_fault {
                fault_tx.send_if_modified(|cur| {
                    let first = cur.is_none();
                    if first {
                        *cur = Some(f.clone());
                    }
                    first
                });
            }
            let out = ResultRow::from_user_result(row, &user, &res);
            tracing::info!(row, outcome = %out.outcome, reason = %out.reason, "user done");
            let _ = tx.send((out, res.pass));
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    drop(tx);
    let (new_rows, passes) = writer_task
        .await
        .map_err(|e| Failure::Usage(format!("results writer: {e}")))??;
    progress.finish();
    session.close().await?;

    let mut all = kept;
    all.extend(new_rows);
    let mut tally = Tally::default();
    for r in &all {
        tally.add(r);
    }
    println!();
    tally.print(&format!("{} -> {}", args.file.display(), path.display()));
    report::print_rows(&all, tuning.show);
    if let Some(p) = &passes {
        println!();
        println!(
            "{} Temporary Access Passes issued, written to {} (readable by you only; the one place they are kept: hand them out, then delete the file)",
            p.written(),
            p.path().display()
        );
        if let Some(shown) = p.shown() {
            for [user, pass, start, lifetime, once] in shown {
                let start = if start.is_empty() { "now" } else { start };
                println!(
                    "  {user}  {pass}  from {start}, {lifetime} min{}",
                    if once == "true" { ", once" } else { "" }
                );
            }
        }
    }
    let fault = fault_rx.borrow().clone();
    if let Some(f) = fault {
        let left = todo.len() - started;
        println!();
        println!(
            "stopped: a configuration fault, not a fault of the users ({left} rows not started; rows that met it are 'failed' with reason configuration_fault). Fix it, then continue with the same options and: mfa-preload apply {} --resume {}",
            args.file.display(),
            path.display()
        );
        return Err(Failure::Configuration(f));
    }
    if interrupted {
        let left = todo.len() - started;
        println!();
        println!(
            "interrupted: {left} rows not started. Continue with the same options and: mfa-preload apply {} --resume {}",
            args.file.display(),
            path.display()
        );
        return Ok(EXIT_INTERRUPTED);
    }
    println!();
    println!("results written to {}", path.display());
    Ok(if tally.not_ok() > 0 { 1 } else { 0 })
}
