//! The worker engine against the Graph simulator: outcomes, reasons, tokens, retries,
//! idempotence and the SQS batch response.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use common::*;
use graph_sim::{FaultConfig, FaultKind, SeedUser, SimConfig};
use mfa_preload_core::worker::{Disposition, InboundMessage, WorkerConfig};
use mfa_preload_core::{Outcome, Reason};
use serde_json::json;

const M1: &str = "+1 5555551234";
const M2: &str = "+1 5555559999";
const M3: &str = "+44 7700900123";
const O1: &str = "+31 201234567";

fn seed(upn: &str, mobile: Option<&str>, office: Option<&str>, default: Option<&str>) -> SeedUser {
    SeedUser {
        mobile: mobile.map(str::to_string),
        office: office.map(str::to_string),
        default_method: default.map(str::to_string),
        ..SeedUser::new(upn)
    }
}

fn writes_for(sim: &graph_sim::GraphSim, upn: &str) -> usize {
    sim.write_log()
        .iter()
        .filter(|w| w.upn.eq_ignore_ascii_case(upn))
        .count()
}

#[tokio::test]
async fn every_outcome() {
    let sim = start_sim(SimConfig::default()).await;
    sim.add_user(seed("new@contoso.com", None, None, None));
    sim.add_user(seed("upd@contoso.com", Some(M2), None, None));
    sim.add_user(seed("del@contoso.com", Some(M1), Some(O1), Some("sms")));
    sim.add_user(seed("same@contoso.com", Some("+15555551234"), None, None));
    sim.add_user(seed("skip@contoso.com", Some(M2), None, None));
    let client = client_for(&sim, &pem_secret(), test_options(4));
    let (worker, dlq) = worker_for(client.clone(), 5);
    let msgs = vec![
        msg(
            "1",
            body(
                "new@contoso.com",
                json!({"mobile": M1, "email": "new@fabrikam.com"}),
                json!({}),
                json!({}),
            ),
        ),
        msg(
            "2",
            body(
                "upd@contoso.com",
                json!({"mobile": M1}),
                json!({"forcedUpdate": true}),
                json!({}),
            ),
        ),
        msg(
            "3",
            body(
                "del@contoso.com",
                json!({"office": null}),
                json!({"forcedRemoval": true}),
                json!({}),
            ),
        ),
        msg(
            "4",
            body(
                "same@contoso.com",
                json!({"mobile": M1}),
                json!({}),
                json!({}),
            ),
        ),
        msg(
            "5",
            body(
                "skip@contoso.com",
                json!({"mobile": M1}),
                json!({}),
                json!({}),
            ),
        ),
    ];
    let reports = worker.process(msgs).await;
    let got: Vec<Disposition> = reports.iter().map(|r| r.disposition).collect();
    assert_eq!(
        got,
        vec![
            Disposition::Done(Outcome::Created),
            Disposition::Done(Outcome::Updated),
            Disposition::Done(Outcome::Deleted),
            Disposition::Done(Outcome::Unchanged),
            Disposition::Done(Outcome::SkippedExists),
        ]
    );
    assert!(dlq.entries().is_empty());
    let new = sim.user("new@contoso.com").unwrap();
    assert_eq!(new.mobile.as_deref(), Some(M1));
    assert_eq!(new.email.as_deref(), Some("new@fabrikam.com"));
    assert_eq!(
        sim.user("upd@contoso.com").unwrap().mobile.as_deref(),
        Some(M1)
    );
    assert_eq!(sim.user("del@contoso.com").unwrap().office, None);
    assert_eq!(
        sim.user("skip@contoso.com").unwrap().mobile.as_deref(),
        Some(M2)
    );
    assert_eq!(writes_for(&sim, "same@contoso.com"), 0);
    assert_eq!(writes_for(&sim, "skip@contoso.com"), 0);
    assert_eq!(writes_for(&sim, "new@contoso.com"), 2);
    // Per-method decisions are in the detail.
    let r = reports[0].result.as_ref().unwrap();
    assert_eq!(r.detail(), "mobile=created email=created");
    assert_eq!(
        r.actions,
        vec![
            "mobile:create(+1 555****234)",
            "email:create(n***@fabrikam.com)"
        ]
    );
    // 1 GET of phoneMethods per user + 1 email GET for the one managing email + 4 writes.
    let s = sim.stats();
    assert_eq!(s.gets, 6, "{s:?}");
    assert_eq!(s.posts + s.patches + s.deletes, 4, "{s:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn every_reason() {
    // SMS sign-in is allowed for the two users of the conflict case only.
    let sim = start_sim(SimConfig {
        sms_sign_in_policy: true,
        sms_sign_in_policy_users: vec!["owner@contoso.com".into(), "taker@contoso.com".into()],
        ..SimConfig::default()
    })
    .await;
    sim.add_user(seed("alt@contoso.com", None, None, None));
    sim.add_user(seed("dflt@contoso.com", Some(M1), None, Some("sms")));
    sim.add_user(seed("dflt2@contoso.com", Some(M1), None, Some("sms")));
    sim.add_user(SeedUser {
        sms_sign_in_enabled: true,
        ..seed("owner@contoso.com", Some(M3), None, None)
    });
    sim.add_user(seed("taker@contoso.com", None, None, None));
    sim.add_user(seed("pref@contoso.com", Some(M1), None, None));
    sim.add_user(seed("nosms@contoso.com", None, None, None));
    let client = client_for(&sim, &pem_secret(), test_options(4));
    // `user_not_found` at once (the retry window has its own test).
    let (worker, dlq) = worker_with(
        client.clone(),
        WorkerConfig {
            user_not_found_retry: Duration::ZERO,
            ..WorkerConfig::default()
        },
    );
    let cases: Vec<(String, Reason)> = vec![
        ("{\"v\":1,".to_string(), Reason::InvalidMessage),
        (
            body(
                "ghost@contoso.com",
                json!({"mobile": M1}),
                json!({}),
                json!({}),
            ),
            Reason::UserNotFound,
        ),
        (
            body(
                "alt@contoso.com",
                json!({"alternateMobile": M2}),
                json!({}),
                json!({}),
            ),
            Reason::AlternateRequiresMobile,
        ),
        // Graph's 400 at delete time (the default is not read unless the request sets one).
        (
            body(
                "dflt@contoso.com",
                json!({"mobile": null}),
                json!({"forcedRemoval": true}),
                json!({}),
            ),
            Reason::DefaultMethodConflict,
        ),
        // Known default at plan time.
        (
            body(
                "dflt2@contoso.com",
                json!({"mobile": null}),
                json!({"forcedRemoval": true}),
                json!({"defaultMethod": "voiceMobile"}),
            ),
            Reason::DefaultMethodConflict,
        ),
        (
            body(
                "taker@contoso.com",
                json!({"mobile": M3}),
                json!({}),
                json!({"smsSignIn": "enable"}),
            ),
            Reason::SmsSigninNumberNotUnique,
        ),
        (
            body(
                "pref@contoso.com",
                json!({}),
                json!({}),
                json!({"defaultMethod": "voiceOffice"}),
            ),
            Reason::GraphRejected,
        ),
        (
            body(
                "nosms@contoso.com",
                json!({}),
                json!({}),
                json!({"smsSignIn": "enable"}),
            ),
            Reason::InvalidRow,
        ),
        (
            body("a/b@contoso.com", json!({}), json!({}), json!({})),
            Reason::InvalidMessage,
        ),
    ];
    let msgs: Vec<InboundMessage> = cases
        .iter()
        .enumerate()
        .map(|(i, (b, _))| msg(&format!("m{i}"), b.clone()))
        .collect();
    let reports = worker.process(msgs).await;
    for ((b, want), r) in cases.iter().zip(&reports) {
        assert_eq!(
            r.disposition,
            Disposition::DeadLettered(*want),
            "{b}: {:?}",
            r.result
        );
    }
    let all = dlq.entries();
    assert_eq!(all.len(), cases.len());
    // Entries arrive in completion order; pair each case with its entry by the original body.
    let mut entries = Vec::new();
    for (b, want) in &cases {
        let expected = serde_json::from_str::<serde_json::Value>(b)
            .unwrap_or_else(|_| serde_json::Value::String(b.clone()));
        let (entry, attrs) = all
            .iter()
            .find(|(e, _)| e.request == expected)
            .unwrap_or_else(|| panic!("no entry for {b}"))
            .clone();
        assert_eq!(entry.reason, *want, "{b}");
        assert_eq!(entry.stage, "worker");
        let attr: HashMap<_, _> = attrs.iter().cloned().collect();
        assert_eq!(attr["reason"], want.as_str());
        assert_eq!(attr["stage"], "worker");
        assert!(!attr["detail"].is_empty());
        // No whole phone number in any detail.
        for n in ["5555551234", "5555559999", "7700900123"] {
            assert!(!entry.detail.contains(n), "{}", entry.detail);
        }
        entries.push((entry, attrs));
    }
    // The S3 job and row survive for Graph-side rejects.
    assert_eq!(entries[1].0.row, Some(2));
    assert!(entries[1].0.job.is_some());
    // The default-method conflict was reported, not looped on: one DELETE attempt, no writes.
    assert_eq!(
        sim.user("dflt@contoso.com").unwrap().mobile.as_deref(),
        Some(M1)
    );
    assert_eq!(writes_for(&sim, "dflt@contoso.com"), 0);
    assert_eq!(writes_for(&sim, "dflt2@contoso.com"), 0);
    assert!(
        entries[3].0.detail.contains("default"),
        "{}",
        entries[3].0.detail
    );
    // The SMS sign-in conflict says what was done before it.
    let d = &entries[5].0.detail;
    assert!(d.contains("mobile:create"), "{d}");
    assert_eq!(client.stats().throttled, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn new_mobile_with_non_unique_sms_number_says_so() {
    let sim = start_sim(SimConfig {
        sms_sign_in_policy: true,
        ..SimConfig::default()
    })
    .await;
    sim.add_user(SeedUser {
        sms_sign_in_enabled: true,
        ..seed("owner@contoso.com", Some(M3), None, None)
    });
    sim.add_user(seed("second@contoso.com", None, None, None));
    sim.add_user(seed("third@contoso.com", None, None, None));
    let client = client_for(&sim, &pem_secret(), test_options(4));
    let (worker, _dlq) = worker_for(client, 5);
    let reports = worker
        .process(vec![
            msg(
                "1",
                body(
                    "second@contoso.com",
                    json!({"mobile": M3}),
                    json!({}),
                    json!({}),
                ),
            ),
            // Policy enables SMS sign-in for a unique new number: no extra enable call.
            msg(
                "2",
                body(
                    "third@contoso.com",
                    json!({"mobile": M1}),
                    json!({}),
                    json!({"smsSignIn": "enable"}),
                ),
            ),
        ])
        .await;
    // Graph answered 409 and wrote the mobile: it counts as written, with a note.
    assert_eq!(reports[0].disposition, Disposition::Done(Outcome::Created));
    let detail = reports[0].result.as_ref().unwrap().detail();
    assert!(detail.contains("SMS sign-in is not active"), "{detail}");
    assert_eq!(
        sim.user("second@contoso.com").unwrap().mobile.as_deref(),
        Some(M3)
    );
    assert_eq!(reports[1].disposition, Disposition::Done(Outcome::Created));
    assert_eq!(
        sim.user("third@contoso.com")
            .unwrap()
            .sms_sign_in
            .as_deref(),
        Some("ready")
    );
    assert_eq!(writes_for(&sim, "third@contoso.com"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn pem_and_pfx_secrets_both_work_and_the_token_is_reused() {
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        latency: Duration::from_millis(2),
        ..SimConfig::default()
    })
    .await;
    for (name, secret) in [("pem", pem_secret()), ("pfx", pfx_secret())] {
        let client = client_for(&sim, &secret, test_options(4));
        let (worker, dlq) = worker_for(client.clone(), 5);
        let msgs: Vec<InboundMessage> = (0..60)
            .map(|i| {
                msg(
                    &format!("{i}"),
                    body(
                        &format!("{name}{i}@contoso.com"),
                        json!({"mobile": M1}),
                        json!({}),
                        json!({}),
                    ),
                )
            })
            .collect();
        let reports = worker.process(msgs).await;
        assert!(
            reports
                .iter()
                .all(|r| r.disposition == Disposition::Done(Outcome::Created)),
            "{name}"
        );
        assert!(dlq.entries().is_empty());
        // One token for 60 concurrent users, and still one for a second (warm) batch.
        assert_eq!(client.stats().token_requests, 1, "{name}");
        let again: Vec<InboundMessage> = (0..20)
            .map(|i| {
                msg(
                    &format!("{i}"),
                    body(
                        &format!("{name}{i}@contoso.com"),
                        json!({"mobile": M1}),
                        json!({}),
                        json!({}),
                    ),
                )
            })
            .collect();
        let reports = worker.process(again).await;
        assert!(reports
            .iter()
            .all(|r| r.disposition == Disposition::Done(Outcome::Unchanged)));
        assert_eq!(client.stats().token_requests, 1, "{name}");
    }
    assert_eq!(sim.stats().token_requests, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_once() {
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, &pem_secret(), test_options(4));
    let (worker, _dlq) = worker_for(client.clone(), 5);
    let r = worker
        .process(vec![msg(
            "1",
            body("a@contoso.com", json!({"mobile": M1}), json!({}), json!({})),
        )])
        .await;
    assert_eq!(r[0].disposition, Disposition::Done(Outcome::Created));
    sim.revoke_tokens();
    let msgs: Vec<InboundMessage> = (0..10)
        .map(|i| {
            msg(
                &format!("{i}"),
                body(
                    &format!("r{i}@contoso.com"),
                    json!({"mobile": M1}),
                    json!({}),
                    json!({}),
                ),
            )
        })
        .collect();
    let r = worker.process(msgs).await;
    assert!(r
        .iter()
        .all(|r| r.disposition == Disposition::Done(Outcome::Created)));
    assert_eq!(client.stats().token_requests, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_to_success() {
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        faults: FaultConfig {
            rate: 0.3,
            kinds: vec![
                FaultKind::Throttle429,
                FaultKind::Status500,
                FaultKind::Status503,
                FaultKind::Drop,
                FaultKind::AfterCommit,
            ],
        },
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, &pem_secret(), test_options(12));
    let (worker, dlq) = worker_for(client.clone(), 5);
    let msgs: Vec<InboundMessage> = (0..40)
        .map(|i| {
            msg(
                &format!("{i}"),
                body(
                    &format!("f{i}@contoso.com"),
                    json!({"mobile": M1, "office": O1}),
                    json!({}),
                    json!({}),
                ),
            )
        })
        .collect();
    let reports = tokio::time::timeout(Duration::from_secs(60), worker.process(msgs))
        .await
        .expect("bounded");
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::Done(Outcome::Created),
            "{:?}",
            r.result
        );
    }
    assert!(dlq.entries().is_empty());
    let s = client.stats();
    assert!(
        s.retries > 0 && s.throttled > 0 && s.server_errors > 0,
        "{s:?}"
    );
    // Every method written exactly once despite lost answers (AfterCommit) and retries.
    let mut seen = HashSet::new();
    for w in sim.write_log() {
        assert!(
            seen.insert((w.upn.clone(), w.method.clone(), w.op.clone())),
            "second write {w:?}"
        );
    }
    assert_eq!(seen.len(), 80);
    for i in 0..40 {
        let u = sim.user(&format!("f{i}@contoso.com")).unwrap();
        assert_eq!(u.mobile.as_deref(), Some(M1));
        assert_eq!(u.office.as_deref(), Some(O1));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn timeouts_are_retried() {
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        faults: FaultConfig {
            rate: 0.3,
            kinds: vec![FaultKind::Timeout],
        },
        ..SimConfig::default()
    })
    .await;
    sim.set_timeout_hold(Duration::from_secs(3));
    let mut opts = test_options(12);
    opts.request_timeout = Duration::from_millis(300);
    let client = client_for(&sim, &pem_secret(), opts);
    let (worker, _dlq) = worker_for(client.clone(), 5);
    let msgs: Vec<InboundMessage> = (0..10)
        .map(|i| {
            msg(
                &format!("{i}"),
                body(
                    &format!("t{i}@contoso.com"),
                    json!({"mobile": M1}),
                    json!({}),
                    json!({}),
                ),
            )
        })
        .collect();
    let reports = tokio::time::timeout(Duration::from_secs(60), worker.process(msgs))
        .await
        .expect("bounded");
    assert!(reports
        .iter()
        .all(|r| r.disposition == Disposition::Done(Outcome::Created)));
    assert!(client.stats().network_errors > 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_delivery_makes_no_second_write() {
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, &pem_secret(), test_options(4));
    let (worker, _dlq) = worker_for(client, 5);
    let b = body(
        "dup@contoso.com",
        json!({"mobile": M1, "alternateMobile": M3, "email": "d@x.org"}),
        json!({}),
        json!({}),
    );
    let r = worker.process(vec![msg("1", b.clone())]).await;
    assert_eq!(r[0].disposition, Disposition::Done(Outcome::Created));
    let writes = sim.write_log().len();
    assert_eq!(writes, 3);
    let r = worker.process(vec![msg("1", b.clone())]).await;
    assert_eq!(r[0].disposition, Disposition::Done(Outcome::Unchanged));
    assert_eq!(sim.write_log().len(), writes);
    // Two copies racing in one batch: one set of writes, both end well.
    let b2 = body(
        "race@contoso.com",
        json!({"mobile": M1}),
        json!({}),
        json!({}),
    );
    let r = worker
        .process(vec![msg("a", b2.clone()), msg("b", b2.clone())])
        .await;
    for x in &r {
        assert!(
            matches!(
                x.disposition,
                Disposition::Done(Outcome::Created | Outcome::Unchanged)
            ),
            "{x:?}"
        );
    }
    assert_eq!(writes_for(&sim, "race@contoso.com"), 1);
    sim.shutdown().await;
}

fn sqs_message(id: &str, body: String, receive_count: u32) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_string());
    m.body = Some(body);
    m.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    m
}

#[tokio::test]
async fn batch_response_lists_exactly_the_transient_failures() {
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        faults: FaultConfig {
            rate: 1.0,
            kinds: vec![FaultKind::Status503],
        },
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, &pem_secret(), test_options(2));
    let (worker, dlq) = worker_for(client, 5);
    let mut event = SqsEvent::default();
    event.records = vec![
        sqs_message(
            "first-try",
            body("a@contoso.com", json!({"mobile": M1}), json!({}), json!({})),
            1,
        ),
        sqs_message(
            "last-try",
            body("b@contoso.com", json!({"mobile": M1}), json!({}), json!({})),
            5,
        ),
        sqs_message("garbage", "not json".into(), 1),
        sqs_message(
            "second-try",
            body("c@contoso.com", json!({"mobile": M1}), json!({}), json!({})),
            2,
        ),
    ];
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        worker.handle_event_until(event, None),
    )
    .await
    .expect("bounded");
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["first-try", "second-try"]);
    let entries = dlq.entries();
    let mut reasons: Vec<Reason> = entries.iter().map(|(e, _)| e.reason).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![Reason::RetriesExhausted, Reason::InvalidMessage]
    );
    let exhausted = entries
        .iter()
        .find(|(e, _)| e.reason == Reason::RetriesExhausted)
        .unwrap();
    assert!(exhausted.0.detail.contains("503"), "{}", exhausted.0.detail);
    assert_eq!(exhausted.0.request["user"], "b@contoso.com");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_dlq_turns_rejects_into_retries() {
    let sim = start_sim(SimConfig::default()).await;
    sim.add_user(seed("ok@contoso.com", None, None, None));
    let client = client_for(&sim, &pem_secret(), test_options(2));
    let (worker, dlq) = worker_for(client, 5);
    dlq.set_failing(true);
    let reports = worker
        .process(vec![
            msg(
                "ok",
                body(
                    "ok@contoso.com",
                    json!({"mobile": M1}),
                    json!({}),
                    json!({}),
                ),
            ),
            msg(
                "ghost",
                body(
                    "ghost@contoso.com",
                    json!({"mobile": M1}),
                    json!({}),
                    json!({}),
                ),
            ),
            msg("bad", "[]".into()),
        ])
        .await;
    assert_eq!(reports[0].disposition, Disposition::Done(Outcome::Created));
    assert_eq!(
        reports[1].disposition,
        Disposition::Retry(Reason::UserNotFound)
    );
    assert_eq!(
        reports[2].disposition,
        Disposition::Retry(Reason::InvalidMessage)
    );
    assert_eq!(
        mfa_preload_core::worker::batch_failures(&reports),
        vec!["ghost", "bad"]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_engine_finds_the_ru_ceiling_without_a_429_storm() {
    // A small budget so the test is quick: 300 RU per 1 s, 5 ms latency, 1,200 re-run users
    // (one GET each).
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(5),
        ru_per_window: 300,
        window: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await;
    let n = 1200;
    sim.add_users((0..n).map(|i| SeedUser {
        mobile: Some(M1.to_string()),
        ..SeedUser::new(format!("c{i}@contoso.com"))
    }));
    let mut opts = test_options(6);
    opts.limiter = mfa_preload_core::graph::LimiterConfig::default();
    opts.max_retry_after = Duration::from_secs(5);
    let client = client_for(&sim, &pem_secret(), opts);
    let (worker, _dlq) = worker_for(client.clone(), 5);
    let msgs: Vec<InboundMessage> = (0..n)
        .map(|i| {
            msg(
                &format!("{i}"),
                body(
                    &format!("c{i}@contoso.com"),
                    json!({"mobile": M1}),
                    json!({}),
                    json!({}),
                ),
            )
        })
        .collect();
    let reports = tokio::time::timeout(Duration::from_secs(60), worker.process(msgs))
        .await
        .expect("bounded");
    assert!(reports
        .iter()
        .all(|r| r.disposition == Disposition::Done(Outcome::Unchanged)));
    let s = sim.stats();
    assert_eq!(s.writes, 0);
    assert!(s.peak_ru_in_window <= 300, "{s:?}");
    let throttled_share = s.throttled as f64 / s.requests as f64;
    assert!(throttled_share < 0.05, "{throttled_share} {s:?}");
    // How close to the ceiling it runs is measured by `worker-bench` (BENCHMARKS.md), not here.
    let learned = client.limiter().snapshot();
    assert!(learned.pace.is_some(), "{learned:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_deadline_turns_unfinished_messages_into_retries() {
    // Every Graph request takes 3 s; the invocation has 400 ms.
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        latency: Duration::from_secs(3),
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, &pem_secret(), test_options(2));
    let (worker, dlq) = worker_for(client, 5);
    let mut msgs: Vec<InboundMessage> = (0..3)
        .map(|i| {
            msg(
                &format!("m{i}"),
                body(
                    &format!("late{i}@contoso.com"),
                    json!({"mobile": M1}),
                    json!({}),
                    json!({"row": 10 + i}),
                ),
            )
        })
        .collect();
    // The last one is on its last allowed receive.
    msgs[2].receive_count = 5;
    let start = std::time::Instant::now();
    let reports = worker
        .process_until(msgs, start + Duration::from_millis(400))
        .await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        reports.iter().map(|r| r.disposition).collect::<Vec<_>>(),
        vec![
            Disposition::Retry(Reason::RetriesExhausted),
            Disposition::Retry(Reason::RetriesExhausted),
            Disposition::DeadLettered(Reason::RetriesExhausted),
        ]
    );
    assert_eq!(
        mfa_preload_core::worker::batch_failures(&reports),
        vec!["m0", "m1"]
    );
    let entries = dlq.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0.row, Some(12));
    assert!(
        entries[0].0.detail.contains("deadline"),
        "{:?}",
        entries[0].0
    );
    sim.shutdown().await;
}
