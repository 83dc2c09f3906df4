//! `readiness`: every user's readiness for the end of SMS and voice, as a CSV, one HTML page,
//! a summary and, with `--tap-file`, the users at risk as an input file for Temporary Access
//! Pass issuance.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mfa_preload_core::readiness::html::{render, Page};
use mfa_preload_core::readiness::scan::{self, ReadinessError, ScanOptions, SourceChoice};
use mfa_preload_core::readiness::{
    days_left, write_csv, write_tap_file, Class, Method, Source, Tally, TapFileError,
};

use crate::args::{GraphArgs, ReadinessArgs};
use crate::connect::Session;
use crate::progress::Progress;
use crate::Failure;

/// Users in the tenant `--simulate` seeds (`graph_sim::seeds::mixed_tenant`).
pub const SIMULATED_USERS: usize = 40;

fn source_choice(s: &str) -> Result<SourceChoice, Failure> {
    match s {
        "auto" => Ok(SourceChoice::Auto),
        "report" => Ok(SourceChoice::Only(Source::Report)),
        "per-user" => Ok(SourceChoice::Only(Source::PerUser)),
        other => Err(Failure::Usage(format!(
            "--source {other}: expected auto, report or per-user"
        ))),
    }
}

/// A file the run will write: refused when it exists, unless `overwrite`.
fn target(path: Option<PathBuf>, default: &str, overwrite: bool) -> Result<PathBuf, Failure> {
    let p = path.unwrap_or_else(|| PathBuf::from(default));
    if p.exists() && !overwrite {
        return Err(Failure::Usage(format!(
            "{} exists: choose another path or pass --overwrite",
            p.display()
        )));
    }
    Ok(p)
}

fn write_file(
    path: &Path,
    f: impl FnOnce(std::io::BufWriter<std::fs::File>) -> Result<(), String>,
) -> Result<(), Failure> {
    // The files name every user: readable by the owner only.
    let file = crate::results::create_private(path).map_err(|e| Failure::io(path, e))?;
    f(std::io::BufWriter::new(file))
        .map_err(|e| Failure::Usage(format!("writing {}: {e}", path.display())))
}

/// Progress on stderr: a bar once the number of users is known (per-user path), a line per
/// page of the report otherwise.
struct Shown {
    bar: Mutex<Option<Progress>>,
}

impl Shown {
    fn update(&self, done: u64, total: Option<u64>) {
        let Ok(mut bar) = self.bar.lock() else { return };
        match total {
            Some(total) => {
                let b = bar.get_or_insert_with(|| Progress::new("readiness", total));
                if done > 0 {
                    b.inc();
                }
            }
            None => eprintln!("readiness: {done} users read from the registration report"),
        }
    }

    fn finish(&self) {
        if let Ok(bar) = self.bar.lock() {
            if let Some(b) = bar.as_ref() {
                b.finish();
            }
        }
    }
}

pub async fn run(graph: &GraphArgs, opts: ReadinessArgs) -> Result<u8, Failure> {
    let choice = source_choice(&opts.source)?;
    let overwrite = opts.overwrite || graph.simulate;
    let csv_path = target(opts.out, "readiness.csv", overwrite)?;
    let html_path = target(opts.html, "readiness.html", overwrite)?;
    let tap_path = match opts.tap_file {
        Some(p) => Some(target(Some(p), "", overwrite)?),
        None => None,
    };
    let session = Session::open_seeded(graph, || {
        graph_sim::seeds::mixed_tenant(SIMULATED_USERS, "contoso.com")
    })
    .await?;
    let shown = Shown {
        bar: Mutex::new(None),
    };
    let progress = |done: u64, total: Option<u64>| shown.update(done, total);
    let scan_opts = ScanOptions {
        source: choice,
        concurrency: usize::from(opts.concurrency),
        default_methods: opts.default_methods,
    };
    let result = scan::run(&session.client, &scan_opts, &progress).await;
    shown.finish();
    let stats = session.client.stats();
    let tenant = session
        .client
        .settings()
        .graph_base_url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_string();
    session.close().await?;
    let scan = match result {
        Ok(s) => s,
        Err(ReadinessError::Configuration(f)) => return Err(Failure::Configuration(f)),
        Err(e) => return Err(Failure::Usage(e.to_string())),
    };
    for n in &scan.notes {
        eprintln!("note: {n}");
    }

    let tally = Tally::of(&scan.users, scan.sms_sign_in_known);
    write_file(&csv_path, |w| {
        let mut w = write_csv(w, &scan.users, &scan.failed).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())
    })?;
    let today = chrono::Utc::now().date_naive();
    let generated = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let page = render(&Page {
        users: &scan.users,
        tally: &tally,
        source: scan.source,
        today,
        generated_at: &generated,
        tenant: &tenant,
    });
    write_file(&html_path, |mut w| {
        w.write_all(page.as_bytes())
            .and_then(|_| w.flush())
            .map_err(|e| e.to_string())
    })?;
    let mut tap_rows = None;
    if let Some(p) = &tap_path {
        write_file(p, |w| {
            let (mut w, n) =
                write_tap_file(w, &scan.users, opts.tap_lifetime_minutes).map_err(|e| match e {
                    TapFileError::Lifetime(l) => l.to_string(),
                    TapFileError::Csv(c) => c.to_string(),
                })?;
            tap_rows = Some(n);
            w.flush().map_err(|e| e.to_string())
        })?;
    }

    // The summary.
    let total = tally.total();
    println!();
    println!(
        "readiness of {total} users (read from {}, {} Graph requests, {} throttled)",
        match scan.source {
            Source::Report => "the registration report",
            Source::PerUser => "each user's methods",
        },
        stats.requests,
        stats.throttled
    );
    for class in Class::ALL {
        let n = tally.count(class);
        let share = tally.share(class);
        println!(
            "  {:<20} {n:>8}  {share:5.1}%  {}",
            class.as_str(),
            class.describe()
        );
    }
    let left = days_left(today);
    println!(
        "at risk: {} users; SMS and voice codes stop on 1 February 2027 ({left} days left)",
        tally.at_risk()
    );
    match tally.sms_sign_in {
        Some(n) => println!("SMS sign-in on: {n} users"),
        None => {
            println!("SMS sign-in: not in the registration report (--source per-user reads it)")
        }
    }
    if !scan.default_methods_known {
        println!("default methods: not read (--default-methods reads them on the per-user path)");
    }
    let risky: Vec<_> = scan
        .users
        .iter()
        .filter(|u| u.class.is_at_risk())
        .take(opts.show)
        .collect();
    if !risky.is_empty() {
        println!();
        println!("users at risk (first {}):", risky.len());
        for u in risky {
            let methods: Vec<&str> = u.methods.iter().map(Method::as_str).collect();
            println!(
                "  {:<40} {:<11} {}",
                u.user,
                u.class.as_str(),
                methods.join(", ")
            );
        }
    }
    if !scan.failed.is_empty() {
        println!();
        println!(
            "{} users could not be read (their rows in the CSV say why)",
            scan.failed.len()
        );
    }
    println!();
    println!("CSV:  {}", csv_path.display());
    println!("page: {}", html_path.display());
    if let (Some(p), Some(n)) = (&tap_path, tap_rows) {
        println!(
            "TAP file: {} ({n} users at risk, TapLifetimeMinutes {}): the input of Temporary Access Pass issuance",
            p.display(),
            opts.tap_lifetime_minutes
        );
    }
    Ok(if scan.failed.is_empty() { 0 } else { 1 })
}
