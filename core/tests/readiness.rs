//! Readiness over a simulated tenant of mixed users: exact counts per class through the
//! registration report and user by user (the same result), the fallback when the report is
//! not allowed, the report's own throttling (429 with a whole-second Retry-After between
//! pages), the choice of source by the tenant's size, and the TAP file.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use graph_sim::seeds::mixed_tenant;
use graph_sim::{GraphSim, SimConfig};
use mfa_preload_core::graph::ConfigFault;
use mfa_preload_core::readiness::scan::{self, ReadinessError, Scan, ScanOptions, SourceChoice};
use mfa_preload_core::readiness::{write_tap_file, Class, Source, Tally, UserReadiness};

/// The classes of the mixed tenant's rotation of 20 (graph_sim::seeds): 5 phishing-resistant,
/// 4 with an app, 7 on phones only, 2 with email only, 2 with nothing.
const PER_TWENTY: [u64; 5] = [5, 4, 7, 2, 2];
/// Mixes 0, 8 and 13 have SMS sign-in on.
const SMS_PER_TWENTY: u64 = 3;

fn opts(source: SourceChoice) -> ScanOptions {
    ScanOptions {
        source,
        concurrency: 16,
        default_methods: true,
    }
}

async fn tenant(users: usize, cfg: SimConfig) -> GraphSim {
    let sim = start_sim(SimConfig {
        sms_sign_in_policy: true,
        system_preferred_mfa: true,
        ..cfg
    })
    .await;
    sim.add_users(mixed_tenant(users, "contoso.com"));
    sim
}

async fn read(sim: &GraphSim, o: &ScanOptions) -> Result<Scan, ReadinessError> {
    let client = client_for(sim, &pem_secret(), test_options(4));
    scan::run(&client, o, &|_, _| {}).await
}

fn by_user(users: &[UserReadiness]) -> BTreeMap<String, UserReadiness> {
    users
        .iter()
        .map(|u| {
            (
                u.user.clone(),
                UserReadiness {
                    sms_sign_in: None,
                    mobile: None,
                    ..u.clone()
                },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sources_give_the_exact_counts_and_the_same_users() {
    let sim = tenant(40, SimConfig::default()).await;
    let report = read(&sim, &opts(SourceChoice::Only(Source::Report)))
        .await
        .expect("report");
    let per_user = read(&sim, &opts(SourceChoice::Only(Source::PerUser)))
        .await
        .expect("per user");
    assert_eq!(report.source, Source::Report);
    assert_eq!(per_user.source, Source::PerUser);
    for s in [&report, &per_user] {
        let tally = Tally::of(&s.users, s.sms_sign_in_known);
        let want: Vec<u64> = PER_TWENTY.iter().map(|n| n * 2).collect();
        assert_eq!(tally.counts.to_vec(), want, "{:?}", s.source);
        assert_eq!(tally.total(), 40);
        assert_eq!(tally.at_risk(), 22);
        assert!(s.failed.is_empty());
    }
    // The same classes, methods, default and system-preferred methods for every user.
    assert_eq!(by_user(&report.users), by_user(&per_user.users));
    // Only the per-user path knows SMS sign-in.
    assert_eq!(
        Tally::of(&report.users, report.sms_sign_in_known).sms_sign_in,
        None
    );
    assert_eq!(
        Tally::of(&per_user.users, per_user.sms_sign_in_known).sms_sign_in,
        Some(SMS_PER_TWENTY * 2)
    );
    let u0 = per_user
        .users
        .iter()
        .find(|u| u.user == "user0@contoso.com")
        .expect("user0");
    assert_eq!(u0.class, Class::PhishingResistant);
    assert_eq!(u0.default_method.as_deref(), Some("sms"));
    assert_eq!(u0.system_preferred, vec!["sms"]);
    assert_eq!(u0.mobile.as_deref(), Some("+1 2000000000"));
    let u7 = per_user
        .users
        .iter()
        .find(|u| u.user == "user7@contoso.com")
        .expect("user7");
    assert_eq!(u7.class, Class::AuthenticatorApp);
    assert_eq!(u7.system_preferred, vec!["push"]);
    // The report's requests: one page for 40 users, none against the resource units.
    assert_eq!(sim.stats().report_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_audit_log_the_per_user_path_is_taken_and_said_once() {
    let sim = tenant(40, SimConfig::default()).await;
    sim.set_app_roles(
        TENANT,
        CLIENT_ID,
        &["User.Read.All", "UserAuthenticationMethod.Read.All"],
    );
    let s = read(&sim, &opts(SourceChoice::Auto))
        .await
        .expect("fallback");
    assert_eq!(s.source, Source::PerUser);
    assert_eq!(s.notes.len(), 1, "{:?}", s.notes);
    assert!(s.notes[0].contains("AuditLog.Read.All"), "{:?}", s.notes);
    assert_eq!(Tally::of(&s.users, true).count(Class::PhoneOnly), 14);
    // The report was never asked: the token's roles said so.
    assert_eq!(sim.stats().report_requests, 0);

    // Tokens whose roles cannot be read: Graph's 403 says it, and the run falls back all the same.
    sim.set_opaque_tokens(true);
    let s = read(&sim, &opts(SourceChoice::Auto))
        .await
        .expect("fallback on 403");
    assert_eq!(s.source, Source::PerUser);
    assert_eq!(
        s.notes.iter().filter(|n| n.contains("refused")).count(),
        1,
        "{:?}",
        s.notes
    );
    assert!(
        s.notes.iter().any(|n| n.contains("AuditLog.Read.All")),
        "{:?}",
        s.notes
    );
    assert_eq!(Tally::of(&s.users, true).total(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_entra_id_p1_falls_back_too() {
    let sim = tenant(
        20,
        SimConfig {
            premium_license: false,
            ..SimConfig::default()
        },
    )
    .await;
    let s = read(&sim, &opts(SourceChoice::Auto))
        .await
        .expect("fallback");
    assert_eq!(s.source, Source::PerUser);
    assert!(
        s.notes.iter().any(|n| n.contains("P1 or P2")),
        "{:?}",
        s.notes
    );
    // Asked for the report alone, it is a configuration fault.
    match read(&sim, &opts(SourceChoice::Only(Source::Report))).await {
        Err(ReadinessError::Configuration(ConfigFault::NotLicensed { .. })) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_permissions_are_configuration_faults_naming_them() {
    let sim = tenant(5, SimConfig::default()).await;
    sim.set_app_roles(TENANT, CLIENT_ID, &["User.Read.All"]);
    match read(&sim, &opts(SourceChoice::Only(Source::Report))).await {
        Err(ReadinessError::Configuration(ConfigFault::MissingPermission { grant, .. })) => {
            assert_eq!(grant, "AuditLog.Read.All")
        }
        other => panic!("{other:?}"),
    }
    match read(&sim, &opts(SourceChoice::Only(Source::PerUser))).await {
        Err(ReadinessError::Configuration(ConfigFault::MissingPermission { grant, .. })) => {
            assert_eq!(grant, "UserAuthenticationMethod.Read.All")
        }
        other => panic!("{other:?}"),
    }
    match read(&sim, &opts(SourceChoice::Auto)).await {
        Err(ReadinessError::Configuration(f)) => {
            let text = f.to_string();
            assert!(text.contains("AuditLog.Read.All"), "{text}");
            assert!(text.contains("UserAuthenticationMethod.Read.All"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_paged_through_its_429s_and_retry_after() {
    // 2,500 users are three pages of 999; one request per second makes the second and third
    // pages wait for a 429's Retry-After (whole seconds).
    let sim = tenant(
        2_500,
        SimConfig {
            report_requests_per_window: 1,
            report_window: Duration::from_secs(1),
            ..SimConfig::default()
        },
    )
    .await;
    let client = client_for(&sim, &pem_secret(), test_options(4));
    let t0 = Instant::now();
    let s = scan::run(
        &client,
        &opts(SourceChoice::Only(Source::Report)),
        &|_, _| {},
    )
    .await
    .expect("report");
    let took = t0.elapsed();
    let stats = sim.stats();
    assert_eq!(
        stats.report_requests - stats.report_throttled,
        3,
        "{stats:?}"
    );
    assert!(stats.report_throttled >= 2, "{stats:?}");
    assert_eq!(client.stats().throttled, stats.report_throttled);
    assert!(
        took >= Duration::from_millis(1_500),
        "waited for Retry-After: {took:?}"
    );
    let tally = Tally::of(&s.users, false);
    let want: Vec<u64> = PER_TWENTY.iter().map(|n| n * 125).collect();
    assert_eq!(tally.counts.to_vec(), want);
    let ids: std::collections::HashSet<&str> = s.users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids.len(), 2_500, "each user once");
    // The report's throttling never touched the resource units.
    assert_eq!(stats.ru_used, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_source_follows_the_tenants_size() {
    // 40 users fit in one report page.
    let small = tenant(40, SimConfig::default()).await;
    let s = read(
        &small,
        &ScanOptions {
            default_methods: false,
            ..opts(SourceChoice::Auto)
        },
    )
    .await
    .expect("small");
    assert_eq!(s.source, Source::Report);
    assert_eq!(s.estimate.map(|(n, _)| n), Some(40));
    // 6,000 users are seven pages, two windows of the report's five requests per 10 s; read
    // one by one they are within the first burst of resource units.
    let large = tenant(6_000, SimConfig::default()).await;
    let s = read(
        &large,
        &ScanOptions {
            default_methods: false,
            ..opts(SourceChoice::Auto)
        },
    )
    .await
    .expect("large");
    assert_eq!(s.source, Source::PerUser, "{:?}", s.estimate);
    assert_eq!(large.stats().report_requests, 0);
    let want: Vec<u64> = PER_TWENTY.iter().map(|n| n * 300).collect();
    assert_eq!(Tally::of(&s.users, true).counts.to_vec(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tap_file_holds_exactly_the_users_at_risk() {
    let sim = tenant(40, SimConfig::default()).await;
    let s = read(&sim, &opts(SourceChoice::Only(Source::Report)))
        .await
        .expect("report");
    let (bytes, n) = write_tap_file(Vec::new(), &s.users, 600).expect("tap file");
    let text = String::from_utf8(bytes).expect("utf-8");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("UPN,TapLifetimeMinutes"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(n, 22);
    assert_eq!(rows.len(), 22);
    // The mixes at risk: 8..=18 (phones, email, nothing) in both turns of the rotation.
    let mut want: Vec<String> = (0..40)
        .filter(|i| (8..=18).contains(&(i % 20)))
        .map(|i| format!("user{i}@contoso.com,600"))
        .collect();
    want.sort();
    let mut got: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    got.sort();
    assert_eq!(got, want);
}
