//! The job's HTML report in a real browser: a job of a few thousand rows is recorded in the
//! in-memory ledger, rendered with `ledger::html::render`, and opened in headless Chromium
//! (Debian's `chromium`, which `scripts/test.sh` installs; `CHROMIUM` names another binary).
//! The screenshot must be a PNG of the window's size with something drawn on it (the bars'
//! colours among it), and the DOM after rendering must show the ledger's numbers.
//! `REPORT_HTML_KEEP=DIR` keeps the report and the screenshot in DIR.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mfa_preload_core::ledger::html::{render, MAX_ACTION_ROWS};
use mfa_preload_core::ledger::memory::MemoryLedger;
use mfa_preload_core::ledger::{
    claim_if_complete, JobKey, JobSummary, LedgerPort, RowRecord, Stage, FAILED, REJECTED,
};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2400;
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);
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

// ---- Chromium ----

/// `CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
fn chromium_binary() -> PathBuf {
    if let Some(c) = std::env::var_os("CHROMIUM").filter(|c| !c.is_empty()) {
        let c = PathBuf::from(c);
        if c.components().count() > 1 {
            assert!(c.is_file(), "CHROMIUM={} does not exist", c.display());
            return c;
        }
        return on_path(c.to_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("CHROMIUM={} is not on PATH", c.display()));
    }
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(on_path)
        .unwrap_or_else(|| {
            panic!(
                "no Chromium: neither `chromium` nor `chromium-browser` is on PATH and CHROMIUM is \
                 not set. `bash scripts/test.sh` installs Debian's `chromium` package \
                 (`sudo apt-get install -y chromium`), or set CHROMIUM to a Chromium or Chrome binary."
            )
        })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn file_url(p: &Path) -> String {
    let abs = p.canonicalize().expect("absolute path");
    let mut url = String::from("file://");
    for b in abs.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(b as char)
            }
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    url
}

/// Runs headless Chromium with a fresh profile under `dir`; its stdout. Killed (its whole process
/// group) after [`CHROMIUM_TIMEOUT`].
fn run_chromium(bin: &Path, dir: &Path, name: &str, args: &[&str]) -> String {
    use std::os::unix::process::CommandExt;
    let profile = dir.join(format!("profile-{name}"));
    let out_path = dir.join(format!("chromium-{name}.stdout"));
    let err_path = dir.join(format!("chromium-{name}.stderr"));
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for Chromium") {
            break s;
        }
        if Instant::now() > deadline {
            // The group Chromium leads (the browser, its renderer and GPU processes).
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Chromium ({name}) did not finish within {CHROMIUM_TIMEOUT:?}; killed. stderr:\n{}",
                tail(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "Chromium ({name}) failed: {status}; stderr:\n{}",
        tail(&err_path)
    );
    std::fs::read_to_string(&out_path).expect("Chromium's output")
}

fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
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
        let near = |p: &[u8]| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 6);
        let mut longest = 0;
        for line in img.rgb.chunks_exact(WIDTH as usize * 3) {
            let mut run = 0;
            for p in line.chunks_exact(3) {
                run = if near(p) { run + 1 } else { 0 };
                longest = longest.max(run);
            }
        }
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

struct Image {
    width: u32,
    height: u32,
    /// 8-bit RGB, row after row.
    rgb: Vec<u8>,
}

/// A non-interlaced 8-bit RGB or RGBA PNG (what Chromium writes).
fn decode_png(png: &[u8]) -> Image {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let mut pos = 8;
    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    let mut idat = Vec::new();
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &png[pos + 4..pos + 8];
        let data = &png[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap());
                height = u32::from_be_bytes(data[4..8].try_into().unwrap());
                let (depth, colour, interlace) = (data[8], data[9], data[12]);
                assert_eq!(depth, 8, "bit depth");
                assert_eq!(interlace, 0, "interlaced");
                channels = match colour {
                    2 => 3,
                    6 => 4,
                    c => panic!("PNG colour type {c}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    assert!(width > 0 && channels > 0, "no IHDR");
    let raw = inflate(&idat[2..]); // after the zlib header
    let stride = width as usize * channels;
    assert_eq!(raw.len(), (stride + 1) * height as usize, "decoded size");
    let mut pixels = vec![0u8; stride * height as usize];
    for y in 0..height as usize {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels {
                pixels[y * stride + x - channels]
            } else {
                0
            };
            let b = if y > 0 {
                pixels[(y - 1) * stride + x]
            } else {
                0
            };
            let c = if y > 0 && x >= channels {
                pixels[(y - 1) * stride + x - channels]
            } else {
                0
            };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => paeth(a, b, c),
                f => panic!("PNG filter {f}"),
            };
            pixels[y * stride + x] = line[x].wrapping_add(predictor);
        }
    }
    let rgb = if channels == 3 {
        pixels
    } else {
        pixels
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    };
    Image { width, height, rgb }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// A raw DEFLATE stream (RFC 1951), after puff.c: enough to read a screenshot, no more.
fn inflate(data: &[u8]) -> Vec<u8> {
    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
        buf: u64,
        n: u32,
    }
    impl Bits<'_> {
        fn get(&mut self, need: u32) -> u32 {
            while self.n < need {
                let byte = *self.data.get(self.pos).expect("deflate stream ends early");
                self.buf |= u64::from(byte) << self.n;
                self.pos += 1;
                self.n += 8;
            }
            let v = (self.buf & ((1u64 << need) - 1)) as u32;
            self.buf >>= need;
            self.n -= need;
            v
        }
    }
    struct Huffman {
        count: [u16; 16],
        symbol: Vec<u16>,
    }
    fn build(lengths: &[u8]) -> Huffman {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[l as usize] += 1;
        }
        count[0] = 0;
        let mut offs = [0u16; 16];
        for l in 1..16 {
            offs[l] = offs[l - 1] + count[l - 1];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[offs[l as usize] as usize] = s as u16;
                offs[l as usize] += 1;
            }
        }
        Huffman { count, symbol }
    }
    fn decode(bits: &mut Bits, h: &Huffman) -> u16 {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.get(1) as i32;
            let count = i32::from(h.count[len]);
            if code - count < first {
                return h.symbol[(index + (code - first)) as usize];
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        panic!("bad Huffman code");
    }
    const LBASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEXT: [u8; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DBASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DEXT: [u8; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];

    let mut bits = Bits {
        data,
        pos: 0,
        buf: 0,
        n: 0,
    };
    let mut out: Vec<u8> = Vec::new();
    loop {
        let last = bits.get(1) == 1;
        match bits.get(2) {
            0 => {
                bits.buf = 0;
                bits.n = 0;
                let p = bits.pos;
                let len = u16::from_le_bytes([data[p], data[p + 1]]) as usize;
                out.extend_from_slice(&data[p + 4..p + 4 + len]);
                bits.pos = p + 4 + len;
            }
            kind @ (1 | 2) => {
                let (lit, dist) = if kind == 1 {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (build(&l), build(&[5u8; 30]))
                } else {
                    let nlen = bits.get(5) as usize + 257;
                    let ndist = bits.get(5) as usize + 1;
                    let ncode = bits.get(4) as usize + 4;
                    let mut cl = [0u8; 19];
                    for &i in ORDER.iter().take(ncode) {
                        cl[i] = bits.get(3) as u8;
                    }
                    let clh = build(&cl);
                    let mut lengths = Vec::with_capacity(nlen + ndist);
                    while lengths.len() < nlen + ndist {
                        match decode(&mut bits, &clh) {
                            s @ 0..=15 => lengths.push(s as u8),
                            16 => {
                                let prev = *lengths.last().expect("repeat of nothing");
                                let n = 3 + bits.get(2);
                                lengths.extend(std::iter::repeat_n(prev, n as usize));
                            }
                            17 => {
                                let n = 3 + bits.get(3);
                                lengths.extend(std::iter::repeat_n(0, n as usize));
                            }
                            _ => {
                                let n = 11 + bits.get(7);
                                lengths.extend(std::iter::repeat_n(0, n as usize));
                            }
                        }
                    }
                    (build(&lengths[..nlen]), build(&lengths[nlen..]))
                };
                loop {
                    let sym = decode(&mut bits, &lit) as usize;
                    if sym < 256 {
                        out.push(sym as u8);
                    } else if sym == 256 {
                        break;
                    } else {
                        let i = sym - 257;
                        let len = LBASE[i] as usize + bits.get(u32::from(LEXT[i])) as usize;
                        let d = decode(&mut bits, &dist) as usize;
                        let back = DBASE[d] as usize + bits.get(u32::from(DEXT[d])) as usize;
                        assert!(back <= out.len(), "distance too far back");
                        for _ in 0..len {
                            let b = out[out.len() - back];
                            out.push(b);
                        }
                    }
                }
            }
            _ => panic!("deflate block type 3"),
        }
        if last {
            break;
        }
    }
    out
}

// ---- The DOM ----

/// One start tag of the serialized DOM: its name and attributes (values unescaped).
struct Tag {
    name: String,
    attrs: BTreeMap<String, String>,
    /// Byte offset of the tag's end in the document.
    end: usize,
}

/// Start tags of a serialized DOM (Chromium's: attributes in double quotes, text escaped).
fn tags(dom: &str) -> Vec<Tag> {
    let b = dom.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = dom[i..].find('<') {
        i += off + 1;
        if dom[i..].starts_with("!--") {
            i = dom[i..].find("-->").map_or(b.len(), |e| i + e + 3);
            continue;
        }
        if i >= b.len() || !b[i].is_ascii_alphabetic() {
            continue; // an end tag or a doctype
        }
        let name_end = i + dom[i..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(b.len() - i);
        let name = dom[i..name_end].to_ascii_lowercase();
        let mut attrs = BTreeMap::new();
        let mut j = name_end;
        loop {
            while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == b'/') {
                j += 1;
            }
            if j >= b.len() || b[j] == b'>' {
                break;
            }
            let a_end = j + dom[j..]
                .find(|c: char| c.is_whitespace() || c == '=' || c == '>')
                .unwrap_or(b.len() - j);
            let key = dom[j..a_end].to_ascii_lowercase();
            j = a_end;
            let mut value = String::new();
            if j < b.len() && b[j] == b'=' {
                assert_eq!(b[j + 1], b'"', "attribute {key} not in double quotes");
                let v_end = j + 2 + dom[j + 2..].find('"').expect("closing quote");
                value = unescape(&dom[j + 2..v_end]);
                j = v_end + 1;
            }
            attrs.insert(key, value);
        }
        out.push(Tag {
            name,
            attrs,
            end: j + 1,
        });
        i = j;
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

fn by_id<'a>(tags: &'a [Tag], id: &str) -> &'a Tag {
    tags.iter()
        .find(|t| t.attrs.get("id").map(String::as_str) == Some(id))
        .unwrap_or_else(|| panic!("no element with id=\"{id}\" in the DOM"))
}

fn value<'a>(t: &'a Tag, what: &str) -> &'a str {
    t.attrs
        .get("data-value")
        .unwrap_or_else(|| panic!("{what} without data-value"))
}

fn check_dom(dom: &str, s: &JobSummary) {
    assert!(
        dom.contains("<table"),
        "no table in the DOM:\n{}",
        &dom[..dom.len().min(2000)]
    );
    let tags = tags(dom);
    // Nothing active, nothing fetched.
    for t in &tags {
        assert_ne!(t.name, "script", "a <script> element in the DOM");
        assert_ne!(t.name, "iframe", "an <iframe> in the DOM");
        for a in ["src", "href"] {
            assert!(
                !t.attrs.contains_key(a),
                "<{} {a}=..> in a self-contained report",
                t.name
            );
        }
        assert!(
            !t.attrs.keys().any(|k| k.starts_with("on")),
            "an event handler on <{}>",
            t.name
        );
    }

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
