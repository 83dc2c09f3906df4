//! The readiness page in a real browser: a simulated tenant of mixed users is read user by user
//! (so SMS sign-in is known) through the real client, the page rendered with
//! `readiness::html::render` and opened in headless Chromium (`e2e_tests::browser`). The
//! screenshot must be the window with the classes' bars drawn in their colours, and the DOM
//! after rendering must show the run's numbers: per class, the users at risk, the days left,
//! the deadline, SMS sign-in. `READINESS_HTML_KEEP=DIR` keeps the page and the screenshot.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use e2e_tests::browser::{
    assert_inert, by_id, chromium_binary, decode_png, file_url, longest_run, run_chromium, tags,
    value,
};
use graph_sim::seeds::mixed_tenant;
use graph_sim::{GraphSim, SimConfig};
use mfa_preload_core::config::GraphSettings;
use mfa_preload_core::graph::{ClientOptions, Credentials, GraphClient};
use mfa_preload_core::readiness::html::{render, Page};
use mfa_preload_core::readiness::scan::{self, ScanOptions, SourceChoice};
use mfa_preload_core::readiness::{days_left, Class, Source, Tally};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1800;
const USERS: usize = 300;
const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(e2e_tests::repo_path(&format!("tests/fixtures/{name}")))
        .expect("fixture")
}

async fn scanned() -> (Vec<mfa_preload_core::readiness::UserReadiness>, Tally) {
    let sim = GraphSim::start(SimConfig {
        sms_sign_in_policy: true,
        system_preferred_mfa: true,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    sim.register_app(TENANT, CLIENT, &fixture("test-app.crt.pem"));
    sim.add_users(mixed_tenant(USERS, "fabrikam.com"));
    let creds = Credentials::from_pem(
        TENANT,
        CLIENT,
        &fixture("test-app.crt.pem"),
        &fixture("test-app.key.pem"),
    )
    .expect("credentials");
    let settings = GraphSettings::single_host(&sim.base_url()).expect("settings");
    let client =
        Arc::new(GraphClient::new(settings, creds, ClientOptions::default()).expect("client"));
    let s = scan::run(
        &client,
        &ScanOptions {
            source: SourceChoice::Only(Source::PerUser),
            concurrency: 32,
            default_methods: true,
        },
        &|_, _| {},
    )
    .await
    .expect("readiness");
    sim.shutdown().await;
    let tally = Tally::of(&s.users, s.sms_sign_in_known);
    (s.users, tally)
}

#[test]
fn the_readiness_page_renders_in_chromium_with_the_runs_numbers() {
    let chromium = chromium_binary();
    let (users, tally) = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(scanned());
    // The tenant as built: 15 per class of 20 per turn (graph_sim::seeds).
    assert_eq!(tally.total(), USERS as u64);
    assert_eq!(tally.count(Class::PhoneOnly), 105);
    let today = NaiveDate::from_ymd_opt(2026, 12, 3).expect("date");
    let html = render(&Page {
        users: &users,
        tally: &tally,
        source: Source::PerUser,
        today,
        generated_at: "2026-12-03T10:00:00Z",
        tenant: "fabrikam.onmicrosoft.com",
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("readiness.html");
    std::fs::write(&page, &html).expect("write the page");
    let url = file_url(&page);
    let window = format!("--window-size={WIDTH},{HEIGHT}");

    let png_path = dir.path().join("readiness.png");
    let shot = format!("--screenshot={}", png_path.display());
    run_chromium(&chromium, dir.path(), "shot", &[&shot, &window, &url]);
    let png = std::fs::read(&png_path).expect("Chromium wrote no screenshot");
    if let Some(keep) = std::env::var_os("READINESS_HTML_KEEP") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).expect("READINESS_HTML_KEEP");
        std::fs::copy(&page, keep.join("readiness.html")).expect("keep the page");
        std::fs::copy(&png_path, keep.join("readiness.png")).expect("keep the screenshot");
    }
    let img = decode_png(&png);
    assert_eq!(
        (img.width, img.height),
        (WIDTH, HEIGHT),
        "the screenshot is the window"
    );
    // Each class's bar in its colour (no text has them): the longest (phone_only, red) spans
    // most of its cell, the others their share of it.
    for (class, rgb, at_least) in [
        ("phone_only", [0xb3, 0x26, 0x1e], 150),
        ("phishing_resistant", [0x1f, 0x7a, 0x3f], 100),
        ("authenticator_app", [0x2f, 0x5f, 0xa8], 80),
    ] {
        let run = longest_run(&img, rgb);
        assert!(
            run >= at_least,
            "{class}: longest run of {rgb:02x?} is {run} px"
        );
    }

    let dom = run_chromium(&chromium, dir.path(), "dom", &["--dump-dom", &window, &url]);
    let tags = tags(&dom);
    assert_inert(&tags);
    assert_eq!(
        value(by_id(&tags, "total"), "total"),
        tally.total().to_string()
    );
    assert_eq!(
        value(by_id(&tags, "at-risk"), "at risk"),
        tally.at_risk().to_string()
    );
    assert_eq!(value(by_id(&tags, "deadline"), "deadline"), "2027-02-01");
    assert_eq!(
        value(by_id(&tags, "days-left"), "days left"),
        days_left(today).to_string()
    );
    assert_eq!(days_left(today), 60);
    assert_eq!(value(by_id(&tags, "source"), "source"), "per-user");
    assert_eq!(
        value(by_id(&tags, "sms-sign-in"), "sms sign-in"),
        tally.sms_sign_in.expect("known per user").to_string()
    );
    // Per class: the count shown and its bar, proportional to the largest.
    let mut shown = BTreeMap::new();
    for t in tags
        .iter()
        .filter(|t| t.attrs.contains_key("data-class") && t.name == "td")
    {
        let n: u64 = value(t, "class count").parse().expect("a count");
        assert!(shown.insert(t.attrs["data-class"].clone(), n).is_none());
    }
    let want: BTreeMap<String, u64> = Class::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), tally.count(*c)))
        .collect();
    assert_eq!(shown, want, "counts shown vs the run's");
    let max = *want.values().max().expect("classes") as f64;
    for (class, n) in &want {
        let bar = tags
            .iter()
            .find(|t| t.attrs.get("data-bar") == Some(class))
            .unwrap_or_else(|| panic!("no bar for {class}"));
        let w: f64 = bar.attrs["width"].parse().expect("width");
        assert!((w - *n as f64 / max * 100.0).abs() < 0.01, "{class}: {w}");
    }
    // The users at risk, each once, of an at-risk class.
    let rows: Vec<_> = tags
        .iter()
        .filter(|t| t.name == "tr" && t.attrs.get("class").map(String::as_str) == Some("at-risk"))
        .collect();
    assert_eq!(rows.len() as u64, tally.at_risk());
    for r in &rows {
        let c = Class::parse(&r.attrs["data-class"]).expect("a class");
        assert!(c.is_at_risk(), "{c:?}");
    }
    let listed: std::collections::HashSet<&str> =
        rows.iter().map(|r| r.attrs["data-user"].as_str()).collect();
    assert_eq!(listed.len(), rows.len());
    assert!(
        listed.contains("user16@fabrikam.com"),
        "the user with nothing"
    );
    assert!(
        !listed.contains("user0@fabrikam.com"),
        "a passkey user is not at risk"
    );
}
