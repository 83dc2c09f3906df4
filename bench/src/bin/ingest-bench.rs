//! Benchmark of the ingest core: a generated CSV of N rows through the reader, validation,
//! normalisation, whole-file duplicate checks, message encoding and batching into an in-process
//! sink, on one core. Each size runs in its own process so peak RSS is per size.
//!
//! `cargo run --release -p mfa-preload-core --bin ingest-bench -- --rows 100000,1000000,10000000 --markdown bench-ingest.md`

use mfa_preload_core::dedupe::Bloom;
use mfa_preload_core::ingest::{run_to_end, FileSource, MemorySink};
use mfa_preload_core::message::Job;
use mfa_preload_core::validate::Settings;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Messy but valid numbers of several countries (the digits in braces are free; the digits before
/// them keep each number in a range its numbering plan assigns).
const NUMBERS: [&str; 12] = [
    "+31 6 1{7}",
    "0031 6 2{7}",
    "+3106 3{7}",
    "+1 (201) 55{5}",
    "+44 7400 {6}",
    "+49 1512 {7}",
    "+33 6 1{7}",
    "+61 4 1{7}",
    "+91 98{8}",
    "+27 71 {7}",
    "+81 90-1{7}",
    "+1 201-55{5} ext. 12",
];

fn digits(seed: u64, n: usize) -> String {
    let mut s = format!("{:019}", seed.wrapping_mul(2_654_435_761) % 10u64.pow(19));
    s.truncate(n);
    s
}

fn number(i: u64) -> String {
    let t = NUMBERS[(i % NUMBERS.len() as u64) as usize];
    let open = t.find('{').unwrap_or(t.len());
    let close = t.find('}').unwrap_or(t.len());
    let n: usize = t[open + 1..close].parse().unwrap_or(6);
    format!("{}{}{}", &t[..open], digits(i, n), &t[close + 1..])
}

fn generate(path: &Path, rows: u64) -> std::io::Result<()> {
    let f = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    writeln!(
        w,
        "UPN,Mobile,AlternateMobile,OfficePhone,Email,ForcedUpdate,ForcedRemoval"
    )?;
    for i in 0..rows {
        let user = if i % 5000 == 4998 {
            format!("user{}@contoso.com", i / 2)
        } else {
            format!("user{i}@contoso.com")
        };
        let alt = if i % 3 == 0 {
            number(i + 7)
        } else {
            String::new()
        };
        let office = if i % 4 == 0 {
            number(i + 13)
        } else {
            String::new()
        };
        let email = if i % 2 == 0 {
            format!("user{i}@example.org")
        } else {
            String::new()
        };
        let mobile = if i % 1000 == 999 {
            "call me".to_string()
        } else {
            number(i)
        };
        writeln!(
            w,
            "{user},{mobile},{alt},{office},{email},{},{}",
            i % 7 == 0,
            i % 11 == 0
        )?;
    }
    w.flush()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The measured run, in this process (one core: a current-thread runtime).
fn child(path: &Path) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    let job = Job::S3 {
        bucket: "bench".into(),
        key: path.display().to_string(),
        etag: "bench".into(),
        run: None,
    };
    let started = Instant::now();
    let (counts, sink) = rt
        .block_on(run_to_end(
            FileSource(path.to_path_buf()),
            MemorySink::default(),
            &Default::default(),
            Settings::default(),
            job,
            Bloom::for_object_size(size),
        ))
        .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "rows": counts.rows_read, "secs": secs, "enqueued": counts.enqueued, "rejected": counts.rejected_total(),
            "queue": sink.queue, "dlq": sink.dlq, "batches": sink.batches, "bytes": size, "message_bytes": sink.bytes, "peak_rss_kib": peak_rss_kib(),
            "bloom_bits": Bloom::for_object_size(size).bits()
        })
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        if let Err(e) = child(Path::new(
            args.get(2).map(String::as_str).unwrap_or_default(),
        )) {
            eprintln!("ingest-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut sizes: Vec<u64> = vec![100_000, 1_000_000];
    let mut markdown: Option<PathBuf> = None;
    let mut dir = std::env::temp_dir().join("mfa-preload-bench");
    let mut repeat: usize = 3;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--rows" => {
                sizes = args
                    .get(i + 1)
                    .map(|v| {
                        v.split(',')
                            .filter_map(|x| x.trim().replace('_', "").parse().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                i += 1;
            }
            "--markdown" => {
                markdown = args.get(i + 1).map(PathBuf::from);
                i += 1;
            }
            "--repeat" => {
                repeat = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
                    .max(1);
                i += 1;
            }
            "--dir" => {
                if let Some(d) = args.get(i + 1) {
                    dir = PathBuf::from(d);
                }
                i += 1;
            }
            other => {
                eprintln!("usage: ingest-bench [--rows 100000,1000000] [--repeat 3] [--markdown FILE] [--dir DIR] (unknown argument {other})");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("ingest-bench: {}: {e}", dir.display());
        std::process::exit(1);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(&args[0]));
    let mut results = Vec::new();
    for rows in &sizes {
        let path = dir.join(format!("bench-{rows}.csv"));
        if !path.exists() {
            eprintln!("generating {rows} rows into {} ...", path.display());
            if let Err(e) = generate(&path, *rows) {
                eprintln!("ingest-bench: {e}");
                std::process::exit(1);
            }
        }
        // Each size several times, each in a fresh process: the median time is reported (shared
        // machines are noisy), and the highest peak RSS.
        let mut runs: Vec<serde_json::Value> = Vec::new();
        for run in 1..=repeat {
            eprintln!("measuring {rows} rows (run {run} of {repeat}) ...");
            let out = Command::new(&exe).arg("--child").arg(&path).output();
            let out = match out {
                Ok(o) if o.status.success() => o,
                Ok(o) => {
                    eprintln!(
                        "ingest-bench child failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                    std::process::exit(1);
                }
                Err(e) => {
                    eprintln!("ingest-bench: {e}");
                    std::process::exit(1);
                }
            };
            runs.push(serde_json::from_slice(&out.stdout).unwrap_or_default());
        }
        let secs = |v: &serde_json::Value| v["secs"].as_f64().unwrap_or(f64::MAX);
        let all: Vec<String> = runs.iter().map(|v| format!("{:.2}", secs(v))).collect();
        let peak = runs
            .iter()
            .filter_map(|v| v["peak_rss_kib"].as_u64())
            .max()
            .unwrap_or(0);
        runs.sort_by(|a, b| secs(a).total_cmp(&secs(b)));
        let mut median = runs.swap_remove(runs.len() / 2);
        median["peak_rss_kib"] = peak.into();
        median["all_secs"] = all.join(" / ").into();
        results.push(median);
    }
    let mut md = String::new();
    md.push_str("| rows | file | time (median) | runs | rows/s (one core, median) | peak RSS (highest) | filter | enqueued | rejected |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for v in &results {
        let rows = v["rows"].as_f64().unwrap_or(0.0);
        let secs = v["secs"].as_f64().unwrap_or(1.0);
        md.push_str(&format!(
            "| {} | {:.0} MB | {:.2} s | {} s | {:.0} | {:.1} MiB | {} KiB | {} | {} |\n",
            v["rows"],
            v["bytes"].as_f64().unwrap_or(0.0) / 1e6,
            secs,
            v["all_secs"].as_str().unwrap_or_default(),
            rows / secs,
            v["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            v["bloom_bits"].as_u64().unwrap_or(0) / 8 / 1024,
            v["enqueued"],
            v["rejected"],
        ));
    }
    // Continuations a file of the largest size needs in Lambda.
    if let Some(v) = results.last() {
        let rows = v["rows"].as_f64().unwrap_or(0.0);
        let core = rows / v["secs"].as_f64().unwrap_or(1.0);
        let in_flight = 16.0;
        let call_ms = 25.0;
        let sqs = in_flight * 10.0 / (call_ms / 1000.0);
        let rate = core.min(sqs);
        let usable = 900.0 - 60.0;
        let per_invocation = rate * usable;
        let invocations = (rows / per_invocation).ceil().max(1.0);
        md.push_str(&format!(
            "\nContinuations for {rows:.0} rows in Lambda (1,769 MB = one vCPU, timeout 900 s, {usable:.0} s usable after the 60 s safety margin):\n\
             - core rate measured above: {core:.0} rows/s\n\
             - SQS side: `SendMessageBatch` of 10 with {in_flight:.0} calls in flight at ~{call_ms:.0} ms each = {sqs:.0} messages/s per invocation \
             (standard queues have no practical throughput limit; 10 entries and 256 KiB per call are the limits that apply)\n\
             - rate per invocation = min({core:.0}, {sqs:.0}) = {rate:.0} rows/s -> {per_invocation:.0} rows per invocation\n\
             - {rows:.0} / {per_invocation:.0} = {:.2} -> **{invocations:.0} invocation(s), i.e. {:.0} continuation(s)**\n",
            rows / per_invocation,
            invocations - 1.0
        ));
    }
    println!("{md}");
    if let Some(p) = markdown {
        if let Err(e) = std::fs::write(&p, &md) {
            eprintln!("ingest-bench: {}: {e}", p.display());
            std::process::exit(1);
        }
    }
}
