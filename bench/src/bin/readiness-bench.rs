//! readiness-bench: `mfa-preload readiness` over a simulated tenant, the registration report and
//! the per-user path side by side in one run, each against a fresh simulator under its own
//! documented limits:
//! - the report: five requests in any 10 s per app and tenant (the identity and access reports'
//!   limit), pages of 999 users;
//! - per user: the user list, then one `GET .../authentication/methods` per user, within the
//!   identity and access budget of 8,000 resource units per 10 s (a token bucket; 1 RU a GET).
//!
//! Every request answers after `--latency-ms`. For each tenant size it prints the requests made
//! (429s included), the 429s, the time, the estimate the default source is chosen by
//! (`readiness::estimate`, at the run's latency and concurrency) and which source wins; the
//! last size is the headline (100,000 users). `--markdown FILE` also writes the table.
//!
//!   --users N          the headline tenant (100000)
//!   --sizes LIST       smaller tenants around the crossover, comma-separated (1000,4995,5000,20000; "" for none)
//!   --latency-ms MS    simulated Graph latency (50)
//!   --concurrency N    users read at the same time on the per-user path (64)
//!   --markdown FILE    write the table there too

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graph_sim::seeds::mixed_tenant;
use graph_sim::{GraphSim, SimConfig};
use mfa_preload_core::config::GraphSettings;
use mfa_preload_core::graph::{ClientOptions, Credentials, GraphClient};
use mfa_preload_core::readiness::scan::{self, ScanOptions, SourceChoice};
use mfa_preload_core::readiness::{estimate, Source, Tally};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

struct Args {
    users: usize,
    sizes: Vec<usize>,
    latency: Duration,
    concurrency: usize,
    markdown: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        users: 100_000,
        sizes: vec![1_000, 4_995, 5_000, 20_000],
        latency: Duration::from_millis(50),
        concurrency: 64,
        markdown: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {val}: {e}");
        match flag.as_str() {
            "--users" => a.users = val.parse().map_err(bad)?,
            "--sizes" => {
                a.sizes = val
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse::<usize>().map_err(bad))
                    .collect::<Result<_, _>>()?
            }
            "--latency-ms" => a.latency = Duration::from_millis(val.parse().map_err(bad)?),
            "--concurrency" => a.concurrency = val.parse().map_err(bad)?,
            "--markdown" => a.markdown = Some(val),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One run: what it made and took.
struct Run {
    users: usize,
    source: Source,
    requests: u64,
    throttled: u64,
    secs: f64,
    estimated: f64,
    read: u64,
}

async fn one(users: usize, source: Source, a: &Args) -> Result<Run, String> {
    let sim = GraphSim::start(SimConfig {
        latency: a.latency,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| format!("simulator: {e}"))?;
    sim.try_register_app(TENANT, CLIENT, &fixture("test-app.crt.pem"))
        .map_err(|e| e.to_string())?;
    sim.add_users(mixed_tenant(users, "contoso.com"));
    let creds = Credentials::from_pem(
        TENANT,
        CLIENT,
        &fixture("test-app.crt.pem"),
        &fixture("test-app.key.pem"),
    )
    .map_err(|e| e.to_string())?;
    let settings = GraphSettings::single_host(&sim.base_url()).map_err(|e| e.to_string())?;
    let client = Arc::new(
        GraphClient::new(settings, creds, ClientOptions::default()).map_err(|e| e.to_string())?,
    );
    // A token first, so that the run times Graph's calls only.
    client.granted_roles().await.map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let s = scan::run(
        &client,
        &ScanOptions {
            source: SourceChoice::Only(source),
            concurrency: a.concurrency,
            default_methods: false,
        },
        &|_, _| {},
    )
    .await
    .map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    let stats = sim.stats();
    sim.shutdown().await;
    let e = estimate(users as u64, a.latency, a.concurrency, 1);
    Ok(Run {
        users,
        source,
        requests: stats.requests,
        throttled: stats.throttled,
        secs,
        estimated: match source {
            Source::Report => e.report.as_secs_f64(),
            Source::PerUser => e.per_user.as_secs_f64(),
        },
        read: Tally::of(&s.users, false).total(),
    })
}

#[tokio::main]
async fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("readiness-bench: {e}");
            std::process::exit(2);
        }
    };
    let mut sizes = a.sizes.clone();
    sizes.push(a.users);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| users | source | requests | 429s | time (s) | estimate (s) | users/s | faster |"
    );
    let _ = writeln!(table, "|---:|---|---:|---:|---:|---:|---:|---|");
    println!(
        "latency {} ms, per-user concurrency {}, simulator budgets: reports 5 per 10 s, 8,000 RU per 10 s",
        a.latency.as_millis(),
        a.concurrency
    );
    for users in sizes {
        let mut runs = Vec::new();
        for source in [Source::Report, Source::PerUser] {
            eprintln!("readiness-bench: {users} users, {}", source.as_str());
            match one(users, source, &a).await {
                Ok(r) => runs.push(r),
                Err(e) => {
                    eprintln!("readiness-bench: {users} users, {}: {e}", source.as_str());
                    std::process::exit(1);
                }
            }
        }
        let faster = if runs[1].secs < runs[0].secs {
            Source::PerUser
        } else {
            Source::Report
        };
        let chosen = estimate(users as u64, a.latency, a.concurrency, 1).faster();
        for r in &runs {
            assert_eq!(r.read, r.users as u64, "every user read");
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {} |",
                r.users,
                r.source.as_str(),
                r.requests,
                r.throttled,
                r.secs,
                r.estimated,
                r.users as f64 / r.secs.max(0.001),
                if r.source == faster {
                    if chosen == faster {
                        "measured, and chosen by the estimate"
                    } else {
                        "measured (the estimate chose the other)"
                    }
                } else {
                    ""
                }
            );
        }
    }
    print!("{table}");
    if let Some(path) = &a.markdown {
        if let Err(e) = std::fs::write(path, &table) {
            eprintln!("readiness-bench: {path}: {e}");
            std::process::exit(1);
        }
    }
}
