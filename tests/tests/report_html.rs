//! The job's HTML report in a real browser: a job of a few thousand rows is recorded in the
//! in-memory ledger, rendered with `ledger::html::render`, and opened in headless Chromium
//! (Debian's `chromium`, which `scripts/test.sh` installs; `CHROMIUM` names another binary;
//! `e2e_tests::browser` runs it).
//! The screenshot must be a PNG of the window's size with something drawn on it (the bars'
//! colours among it), and the DOM after rendering must show the ledger's numbers.
//! `REPORT_HTML_KEEP=DIR` keeps the report and the screenshot in DIR.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use e2e_tests::browser::{
    assert_inert, by_id, chromium_binary, decode_png, file_url, longest_run, run_chromium, tags,
    value, Tag,
};

use mfa_preload_core::ledger::html::{render, MAX_ACTION_ROWS};
use mfa_preload_core::ledger::memory::MemoryLedger;
use mfa_preload_core::ledger::{
    claim_if_complete, JobKey, JobSummary, LedgerPort, RowRecord, Stage, FAILED, REJECTED,
};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2400;
/// The detail of one rejected row: HTML that must stay text.
const DANGEROUS: &str = "<script>alert(1)</script> & \"quoted\" <b>bold</b>";
const DANGEROUS_ROW: u64 = 77;

#[test]
fn the_html_report_renders_in_chromium_with_the_ledgers_numbers() {
    let chromium = chromium_binary();
    let t0 = Instant::now();
    let (summary, rows) = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(job_in_ledger());
    // The job as built: complete, with rows of every kind needing action.
    assert!(summary.is_complete(), "{summary:?}");
    assert!(summary.needing_action() > 500, "{summary:?}");

    let html = render(&summary, &rows, "2026-12-03T10:05:00Z");
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("job.report.html");
    std::fs::write(&page, &html).expect("write the report");
    let url = file_url(&page);

    // Screenshot.
    let png_path = dir.path().join("report.png");
    let screenshot_arg = format!("--screenshot={}", png_path.display());
    let window = format!("--window-size={WIDTH},{HEIGHT}");
    run_chromium(
        &chromium,
        dir.path(),
        "shot",
        &[&screenshot_arg, &window, &url],
    );
    let png = std::fs::read(&png_path).unwrap_or_else(|e| {
        panic!(
            "Chromium wrote no screenshot at {}: {e}",
            png_path.display()
        )
    });
    // REPORT_HTML_KEEP=DIR keeps the report and its screenshot there, to look at.
    if let Some(keep) = std::env::var_os("REPORT_HTML_KEEP") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).expect("REPORT_HTML_KEEP");
        std::fs::copy(&page, keep.join("job.report.html")).expect("keep the report");
        std::fs::copy(&png_path, keep.join("report.png")).expect("keep the screenshot");
    }
    check_screenshot(&png);

    // The DOM after rendering.
    let dom = run_chromium(&chromium, dir.path(), "dom", &["--dump-dom", &window, &url]);
    check_dom(&dom, &summary);
    eprintln!(
        "report of {} rows ({} bytes, {} needing action) checked in Chromium in {:.1} s",
        summary.done,
        html.len(),
        summary.needing_action(),
        t0.elapsed().as_secs_f64()
    );
}

/// 4,000 rows: 60 ingest rejects, worker outcomes of every kind, rejects and failures of
/// several reasons, a row delivered twice, over 200 s (20 rows/s).
async fn job_in_ledger() -> (JobSummary, Vec<RowRecord>) {
    let ledger = MemoryLedger::new();
    let job = JobKey::of_file("uploads", "hr/users.csv", "run-1");
    let label = "s3://uploads/hr/users.csv";
    let total: u64 = 4_000;
    let at = |i: u64| {
        // Row i recorded at 10:00:00 + i/20 s.
        let ms = i * 50;
        let (m, s, ms) = (ms / 60_000, ms / 1000 % 60, ms % 1000);
        format!("2026-12-03T10:{m:02}:{s:02}.{ms:03}Z")
    };
    let record = |row: u64, outcome: &str, reason: &str, detail: String, stage: Stage| RowRecord {
        row: Some(row),
        user: if row == DANGEROUS_ROW {
            "o'brien&co@contoso.com".to_string()
        } else {
            format!("user{row}@contoso.com")
        },
        outcome: outcome.to_string(),
        reason: reason.to_string(),
        detail,
        at: at(row - 2),
        deliveries: if stage == Stage::Ingest {
            1
        } else {
            1 + (row % 3) as u32
        },
        stage,
    };
    // The ingest's rejects come first.
    let mut ingest = Vec::new();
    let ingest_reasons = ["invalid_phone_number", "invalid_email", "invalid_row"];
    for i in 0..60u64 {
        let row = 2 + i * 61;
        let reason = ingest_reasons[(i % 3) as usize];
        ingest.push(record(
            row,
            REJECTED,
            reason,
            format!("cell {i} is bad"),
            Stage::Ingest,
        ));
    }
    ledger.record(&job, label, &ingest).await.expect("record");
    let ingest_rows: Vec<u64> = ingest.iter().filter_map(|r| r.row).collect();
    // The worker's outcomes, in batches of 10 as a worker records them.
    let worker_rejects = [
        "user_not_found",
        "default_method_conflict",
        "graph_rejected",
        "sms_signin_number_not_unique",
        "protected_user",
    ];
    let mut batch = Vec::new();
    for row in 2..2 + total {
        if ingest_rows.contains(&row) {
            continue;
        }
        let r = if row == DANGEROUS_ROW {
            record(
                row,
                REJECTED,
                "graph_rejected",
                DANGEROUS.to_string(),
                Stage::Worker,
            )
        } else {
            match row % 20 {
                0..=7 => record(row, "created", "", String::new(), Stage::Worker),
                8..=10 => record(row, "updated", "", String::new(), Stage::Worker),
                11 => record(row, "deleted", "", String::new(), Stage::Worker),
                12..=13 => record(row, "unchanged", "", String::new(), Stage::Worker),
                14 => record(row, "skipped_exists", "", String::new(), Stage::Worker),
                15..=17 => {
                    let reason = worker_rejects[(row / 20 % 5) as usize];
                    record(
                        row,
                        REJECTED,
                        reason,
                        format!("Graph said no to row {row}"),
                        Stage::Worker,
                    )
                }
                _ => record(
                    row,
                    FAILED,
                    "retries_exhausted",
                    "429 Too Many Requests, 5 deliveries".to_string(),
                    Stage::Worker,
                ),
            }
        };
        batch.push(r);
        if batch.len() == 10 {
            ledger.record(&job, label, &batch).await.expect("record");
            batch.clear();
        }
    }
    ledger.record(&job, label, &batch).await.expect("record");
    // A duplicate delivery with another outcome: not counted again.
    let dup = record(100, "unchanged", "", String::new(), Stage::Worker);
    assert_eq!(ledger.record(&job, label, &[dup]).await.expect("record"), 0);
    ledger
        .set_expected(&job, label, total, total)
        .await
        .expect("expected");
    let done = claim_if_complete(&ledger, &job, "2026-12-03T10:03:20Z")
        .await
        .expect("claim")
        .expect("the job is complete");
    assert_eq!(done.done, total);
    let summary = ledger.summary(&job).await.expect("summary").expect("a job");
    let rows = ledger.rows(&job).await.expect("rows");
    assert_eq!(rows.len() as u64, total);
    (summary, rows)
}

// ---- The screenshot ----

fn check_screenshot(png: &[u8]) {
    assert!(png.len() > 4_096, "a screenshot of {} bytes", png.len());
    let img = decode_png(png);
    assert_eq!(
        (img.width, img.height),
        (WIDTH, HEIGHT),
        "the screenshot is the window"
    );
    let mut colours: HashMap<[u8; 3], u64> = HashMap::new();
    for px in img.rgb.chunks_exact(3) {
        *colours.entry([px[0], px[1], px[2]]).or_default() += 1;
    }
    let pixels = u64::from(WIDTH) * u64::from(HEIGHT);
    let (background, bg_count) = colours
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, n)| (*c, *n))
        .expect("pixels");
    assert!(
        colours.len() > 16,
        "{} colours: a blank page? (background {background:?})",
        colours.len()
    );
    let drawn = pixels - bg_count;
    assert!(
        drawn * 100 > pixels * 3,
        "only {drawn} of {pixels} pixels differ from the background {background:?}"
    );
    // The bars, as horizontal runs of their colour no text has: rejected in red (#b3261e),
    // failed in orange (#b35c00).
    for (what, rgb) in [
        ("the rejected bar", [0xb3, 0x26, 0x1e]),
        ("the failed bar", [0xb3, 0x5c, 0x00]),
    ] {
        let longest = longest_run(&img, rgb);
        assert!(
            longest >= 40,
            "{what}: no bar of {rgb:02x?} (longest run {longest} px)"
        );
    }
    // Drawn at the top and further down too, not only in one band.
    let row_bytes = WIDTH as usize * 3;
    for band in [0..600usize, 600..1800] {
        let start = band.start * row_bytes;
        let end = band.end * row_bytes;
        let differ = img.rgb[start..end]
            .chunks_exact(3)
            .filter(|p| p != &background)
            .count();
        assert!(differ > 5_000, "rows {band:?}: {differ} pixels drawn");
    }
}

fn check_dom(dom: &str, s: &JobSummary) {
    assert!(
        dom.contains("<table"),
        "no table in the DOM:\n{}",
        &dom[..dom.len().min(2000)]
    );
    let tags = tags(dom);
    // Nothing active, nothing fetched.
    assert_inert(&tags);

    assert_eq!(value(by_id(&tags, "status"), "status"), s.status().as_str());
    assert_eq!(value(by_id(&tags, "done"), "done"), s.done.to_string());
    let expected = s.expected.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(value(by_id(&tags, "expected"), "expected"), expected);
    let rows_read = s.rows_read.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(value(by_id(&tags, "rows-read"), "rows read"), rows_read);
    assert_eq!(
        value(by_id(&tags, "needing-action"), "needing action"),
        s.needing_action().to_string()
    );
    // 4,000 rows over 200 s.
    assert_eq!(value(by_id(&tags, "throughput"), "throughput"), "20.00");

    for (attr, want) in [
        ("data-outcome", &s.by_outcome),
        ("data-reason", &s.by_reason),
    ] {
        let mut shown: BTreeMap<String, u64> = BTreeMap::new();
        for t in tags.iter().filter(|t| t.attrs.contains_key(attr)) {
            let code = t.attrs[attr].clone();
            let n: u64 = value(t, attr).parse().expect("a count");
            assert!(
                shown.insert(code.clone(), n).is_none(),
                "{attr}={code} twice"
            );
        }
        let nonzero: BTreeMap<String, u64> = shown.into_iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(&nonzero, want, "{attr} counts shown vs the ledger's");
    }

    let actions: Vec<&Tag> = tags
        .iter()
        .filter(|t| {
            t.name == "tr"
                && t.attrs
                    .get("class")
                    .is_some_and(|c| c.split_whitespace().any(|c| c == "action"))
        })
        .collect();
    let need = s.needing_action() as usize;
    assert_eq!(actions.len(), need.min(MAX_ACTION_ROWS), "tr.action rows");
    let numbers: Vec<u64> = actions
        .iter()
        .map(|t| t.attrs["data-row"].parse().expect("data-row"))
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "action rows in row order"
    );

    // The dangerous detail is text in its row.
    let row = actions
        .iter()
        .find(|t| t.attrs["data-row"] == DANGEROUS_ROW.to_string())
        .expect("the row with the HTML detail needs action");
    let row_html = &dom[row.end..row.end + dom[row.end..].find("</tr>").expect("</tr>")];
    assert!(
        row_html.contains(
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; \"quoted\" &lt;b&gt;bold&lt;/b&gt;"
        ),
        "the detail is not shown as text: {row_html}"
    );
    assert!(
        row_html.contains("o'brien&amp;co@contoso.com"),
        "{row_html}"
    );
    assert!(row_html.contains("read detail"), "what to do: {row_html}");
    assert!(!dom.contains("<b>bold"), "markup of the detail rendered");
}
