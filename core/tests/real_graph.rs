//! The worker engine against what Microsoft's service really does (the simulator imitates it; see
//! graph-sim's crate docs for the sources): 411 for a bodyless POST without `Content-Length`, 409
//! `phoneNumberNotUnique` with the mobile written, 403 for a missing permission, credentials
//! Entra refuses, an unusable secret, and users that answer 404 while they replicate.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use common::*;
use graph_sim::{GraphSim, SeedUser, SimConfig, SmsConflictAnswer};
use mfa_preload_core::config::GraphSettings;
use mfa_preload_core::dlq::MemoryDlq;
use mfa_preload_core::graph::{ConfigFault, Credentials, GraphClient};
use mfa_preload_core::worker::{
    ClientSource, Disposition, InboundMessage, MemoryQueue, Worker, WorkerConfig,
    FIRST_SENT_ATTRIBUTE,
};
use mfa_preload_core::{Outcome, Reason};
use serde_json::json;

const M1: &str = "+1 5555551234";
const M3: &str = "+44 7700900123";
const O1: &str = "+31 201234567";

fn seed(upn: &str, mobile: Option<&str>) -> SeedUser {
    SeedUser {
        mobile: mobile.map(str::to_string),
        ..SeedUser::new(upn)
    }
}

fn writes(sim: &GraphSim, upn: &str) -> Vec<String> {
    sim.write_log()
        .into_iter()
        .filter(|w| w.upn == upn)
        .map(|w| format!("{}:{}", w.method, w.op))
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A message as SQS delivers it: a receipt handle and the time it was first sent.
fn sqs_msg(id: &str, body: String, receive_count: u32, first_sent_ms: u64) -> InboundMessage {
    InboundMessage {
        receipt_handle: format!("rh-{id}-{receive_count}"),
        first_sent_ms: Some(first_sent_ms),
        ..InboundMessage::new(id, body, receive_count)
    }
}

fn policy_sim(users: &[&str]) -> SimConfig {
    SimConfig {
        sms_sign_in_policy: true,
        sms_sign_in_policy_users: users.iter().map(|u| u.to_string()).collect(),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn sms_sign_in_changes_send_a_content_length() {
    // The simulator refuses a bodyless POST without Content-Length with 411, as Graph does.
    let sim = start_sim(policy_sim(&[])).await;
    sim.add_user(seed("on@contoso.com", Some(M1)));
    sim.add_user(SeedUser {
        sms_sign_in_enabled: true,
        ..seed("off@contoso.com", Some(M3))
    });
    let (worker, dlq) = worker_for(client_for(&sim, &pem_secret(), test_options(3)), 5);
    let reports = worker
        .process(vec![
            msg(
                "1",
                body(
                    "on@contoso.com",
                    json!({}),
                    json!({}),
                    json!({"smsSignIn": "enable"}),
                ),
            ),
            msg(
                "2",
                body(
                    "off@contoso.com",
                    json!({}),
                    json!({}),
                    json!({"smsSignIn": "disable"}),
                ),
            ),
        ])
        .await;
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::Done(Outcome::Updated),
            "{:?}",
            r.result
        );
    }
    assert!(dlq.entries().is_empty());
    assert_eq!(sim.stats().length_required, 0);
    assert_eq!(
        sim.user("on@contoso.com")
            .and_then(|u| u.sms_sign_in)
            .as_deref(),
        Some("ready")
    );
    assert_eq!(writes(&sim, "on@contoso.com"), ["smsSignIn:enable"]);
    assert_eq!(writes(&sim, "off@contoso.com"), ["smsSignIn:disable"]);
    sim.shutdown().await;
}

/// A row with a mobile another user holds for SMS sign-in, an office phone and a default method,
/// through both shapes Graph answers with.
async fn conflict_row(answer: SmsConflictAnswer, sms_sign_in: Option<&str>) {
    let mut cfg = policy_sim(&["owner@contoso.com", "taker@contoso.com"]);
    cfg.sms_conflict_answer = answer;
    let sim = start_sim(cfg).await;
    sim.add_user(SeedUser {
        sms_sign_in_enabled: true,
        ..seed("owner@contoso.com", Some(M3))
    });
    sim.add_user(seed("taker@contoso.com", None));
    let (worker, dlq) = worker_for(client_for(&sim, &pem_secret(), test_options(3)), 5);
    let extra = match sms_sign_in {
        Some(s) => json!({"smsSignIn": s, "defaultMethod": "voiceOffice"}),
        None => json!({"defaultMethod": "voiceOffice"}),
    };
    let b = body(
        "taker@contoso.com",
        json!({"mobile": M3, "office": O1, "email": "taker@fabrikam.com"}),
        json!({}),
        extra,
    );
    let report = worker.process_one(&msg("1", b)).await;
    let what = format!("{answer:?} {sms_sign_in:?}");
    // Whatever the answer's shape: the mobile, the office phone, the email and the default
    // method are all written, and SMS sign-in is not asked for again.
    let u = sim.user("taker@contoso.com").expect("taker");
    assert_eq!(u.mobile.as_deref(), Some(M3), "{what}");
    assert_eq!(u.office.as_deref(), Some(O1), "{what}");
    assert_eq!(u.email.as_deref(), Some("taker@fabrikam.com"), "{what}");
    assert_eq!(u.default_method.as_deref(), Some("voiceOffice"), "{what}");
    assert_eq!(
        u.sms_sign_in.as_deref(),
        Some("phoneNumberNotUnique"),
        "{what}"
    );
    assert_eq!(
        writes(&sim, "taker@contoso.com"),
        [
            "mobile:create",
            "office:create",
            "email:create",
            "signInPreferences:update"
        ],
        "{what}"
    );
    let result = report.result.as_ref().expect("applied");
    if sms_sign_in == Some("enable") {
        assert_eq!(
            report.disposition,
            Disposition::DeadLettered(Reason::SmsSigninNumberNotUnique),
            "{what}"
        );
        let entries = dlq.entries();
        assert_eq!(entries.len(), 1);
        let detail = &entries[0].0.detail;
        // What was done is in the detail; the number is not.
        for done in ["mobile:create", "office:create", "email:create"] {
            assert!(detail.contains(done), "{what}: {detail}");
        }
        assert!(!detail.contains("7700900123"), "{detail}");
    } else {
        assert_eq!(
            report.disposition,
            Disposition::Done(Outcome::Created),
            "{what}"
        );
        assert!(dlq.entries().is_empty(), "{what}");
        assert!(
            result.detail().contains("SMS sign-in is not active"),
            "{what}: {}",
            result.detail()
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_409_sms_conflict_writes_the_mobile_and_the_rest_of_the_row() {
    for answer in [SmsConflictAnswer::Conflict, SmsConflictAnswer::Accepted] {
        conflict_row(answer, None).await;
        conflict_row(answer, Some("enable")).await;
    }
}

#[tokio::test]
async fn a_missing_permission_dead_letters_nobody_and_late_consent_completes() {
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        ..SimConfig::default()
    })
    .await;
    // Consent for the email method only.
    sim.set_app_roles(TENANT, CLIENT_ID, &["UserAuthMethod-Email.ReadWrite.All"]);
    let client = client_for(&sim, &pem_secret(), test_options(3));
    let queue = Arc::new(MemoryQueue::new());
    let (worker, dlq) = worker_for(client, 3);
    let worker = worker.with_queue(queue.clone());
    let sent = now_ms();
    let batch = |receive: u32| -> Vec<InboundMessage> {
        (0..6)
            .map(|i| {
                sqs_msg(
                    &format!("m{i}"),
                    body(
                        &format!("u{i}@contoso.com"),
                        json!({"mobile": M1}),
                        json!({}),
                        json!({}),
                    ),
                    receive,
                    sent,
                )
            })
            .collect()
    };
    let reports = worker.process(batch(1)).await;
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::Retry(Reason::ConfigurationFault)
        );
    }
    assert!(dlq.entries().is_empty());
    // The token's roles said so: no user was touched.
    assert_eq!(sim.stats().requests, 0);
    assert_eq!(worker.configuration_faults(), 1);
    // Each message comes back after the configuration-fault visibility.
    let changes = queue.visibility_changes();
    assert_eq!(changes.len(), 6);
    assert!(changes
        .iter()
        .all(|(_, d)| *d == WorkerConfig::default().config_fault_retry));
    let fault = reports[0]
        .result
        .as_ref()
        .and_then(|r| r.config_fault.clone())
        .expect("the first user met the fault");
    assert!(
        fault
            .to_string()
            .contains("UserAuthMethod-Phone.ReadWrite.All"),
        "{fault}"
    );
    // On the last receive the messages are sent again as fresh copies, not dead-lettered.
    let reports = worker.process(batch(3)).await;
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::Requeued(Reason::ConfigurationFault)
        );
    }
    let copies = queue.requeued();
    assert_eq!(copies.len(), 6);
    assert!(copies[0]
        .attributes
        .contains(&(FIRST_SENT_ATTRIBUTE.to_string(), sent.to_string())));
    assert!(dlq.entries().is_empty());
    // Consent granted: the next batch completes, with nothing in the DLQ.
    sim.set_app_roles(TENANT, CLIENT_ID, &["UserAuthMethod-Phone.ReadWrite.All"]);
    let reports = worker.process(batch(2)).await;
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::Done(Outcome::Created),
            "{:?}",
            r.result
        );
    }
    assert!(dlq.entries().is_empty());
    assert_eq!(
        sim.user("u5@contoso.com").and_then(|u| u.mobile).as_deref(),
        Some(M1)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_403_from_graph_is_a_configuration_fault_too() {
    // Opaque tokens: the client cannot read the roles, so Graph's 403 is what tells.
    let sim = start_sim(SimConfig::default()).await;
    sim.set_opaque_tokens(true);
    sim.set_app_roles(TENANT, CLIENT_ID, &["User.Read.All"]);
    for i in 0..4 {
        sim.add_user(seed(&format!("u{i}@contoso.com"), None));
    }
    // One user at a time, so that the users after the first fault are provably not tried.
    let (worker, dlq) = worker_with(
        client_for(&sim, &pem_secret(), test_options(3)),
        WorkerConfig {
            concurrency: 1,
            ..WorkerConfig::default()
        },
    );
    let msgs: Vec<InboundMessage> = (0..4)
        .map(|i| {
            msg(
                &format!("m{i}"),
                body(
                    &format!("u{i}@contoso.com"),
                    json!({"mobile": M1}),
                    json!({}),
                    json!({}),
                ),
            )
        })
        .collect();
    let reports = worker.process(msgs).await;
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::Retry(Reason::ConfigurationFault)
        );
    }
    assert!(dlq.entries().is_empty());
    let s = sim.stats();
    assert_eq!(
        s.forbidden, 1,
        "the users after the first fault are not tried: {s:?}"
    );
    assert_eq!(s.requests, 1, "{s:?}");
    let fault = reports
        .iter()
        .find_map(|r| r.result.as_ref().and_then(|x| x.config_fault.clone()))
        .expect("a fault");
    let text = fault.to_string();
    assert!(
        text.contains("accessDenied") && text.contains("UserAuthMethod-Phone"),
        "{text}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn credentials_entra_refuses_are_a_configuration_fault() {
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        ..SimConfig::default()
    })
    .await;
    // The app registration holds another certificate than the secret's.
    sim.register_app(TENANT, CLIENT_ID, &fixture("other-app.crt.pem"));
    let (worker, dlq) = worker_for(client_for(&sim, &pem_secret(), test_options(3)), 1);
    let r = worker
        .process_one(&msg(
            "1",
            body("a@contoso.com", json!({"mobile": M1}), json!({}), json!({})),
        ))
        .await;
    // Even on the last receive (max 1) it is not dead-lettered.
    assert!(
        matches!(
            r.disposition,
            Disposition::Retry(Reason::ConfigurationFault)
                | Disposition::Requeued(Reason::ConfigurationFault)
        ),
        "{:?}",
        r.disposition
    );
    assert!(dlq.entries().is_empty());
    let fault = r.result.and_then(|x| x.config_fault).expect("fault");
    let text = fault.to_string();
    assert!(
        text.contains("AADSTS700027") && text.contains("upload"),
        "{text}"
    );
    // The refusal is remembered: more batches within the minute ask the token endpoint nothing.
    let requests = sim.stats().token_requests;
    for i in 0..3 {
        let b = body("a@contoso.com", json!({"mobile": M1}), json!({}), json!({}));
        let r = worker.process_one(&msg(&format!("again{i}"), b)).await;
        assert!(r.result.and_then(|x| x.config_fault).is_some());
    }
    assert_eq!(
        sim.stats().token_requests,
        requests,
        "one token request per minute, not per message"
    );
    sim.shutdown().await;
}

/// Builds the client once `ready` is set (a secret being fixed).
struct Fixable {
    ready: AtomicBool,
    base_url: String,
}

#[async_trait]
impl ClientSource for Fixable {
    async fn build(&self) -> Result<GraphClient, ConfigFault> {
        if !self.ready.load(Ordering::SeqCst) {
            return Err(ConfigFault::Secret(
                "secret s: the credentials secret has no 'privateKeyPem' field".into(),
            ));
        }
        let creds = Credentials::from_secret_json(&pem_secret()).expect("credentials");
        let settings = GraphSettings::single_host(&self.base_url).expect("settings");
        Ok(GraphClient::new(settings, creds, test_options(3)).expect("client"))
    }
}

#[tokio::test]
async fn an_unusable_secret_dead_letters_nobody_and_heals_when_fixed() {
    let sim = start_sim(SimConfig {
        auto_create_users: true,
        ..SimConfig::default()
    })
    .await;
    let source = Arc::new(Fixable {
        ready: AtomicBool::new(false),
        base_url: sim.base_url(),
    });
    let dlq = Arc::new(MemoryDlq::new());
    let queue = Arc::new(MemoryQueue::new());
    let fault = ConfigFault::Secret("at start".into());
    let worker = Worker::faulted(fault, source.clone(), dlq.clone(), WorkerConfig::default())
        .with_queue(queue.clone())
        .with_rebuild_interval(Duration::ZERO);
    let msgs = || {
        vec![
            sqs_msg(
                "a",
                body("a@contoso.com", json!({"mobile": M1}), json!({}), json!({})),
                1,
                now_ms(),
            ),
            sqs_msg("b", "not json".into(), 1, now_ms()),
        ]
    };
    let reports = worker.process(msgs()).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::Retry(Reason::ConfigurationFault)
    );
    // A message that is broken on its own is still dead-lettered as what it is.
    assert_eq!(
        reports[1].disposition,
        Disposition::DeadLettered(Reason::InvalidMessage)
    );
    assert_eq!(dlq.entries().len(), 1);
    assert!(worker
        .start_fault()
        .is_some_and(|f| f.to_string().contains("privateKeyPem")));
    assert_eq!(sim.stats().requests, 0);
    source.ready.store(true, Ordering::SeqCst);
    let reports = worker.process(msgs()).await;
    assert_eq!(reports[0].disposition, Disposition::Done(Outcome::Created));
    assert!(worker.start_fault().is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_user_that_replicates_late_is_retried_within_the_window() {
    let sim = start_sim(SimConfig::default()).await;
    sim.add_user(seed("new@contoso.com", None));
    sim.hide_user_for("new@contoso.com", Duration::from_millis(1500));
    let client = client_for(&sim, &pem_secret(), test_options(3));
    let queue = Arc::new(MemoryQueue::new());
    let (worker, dlq) = worker_with(
        client,
        WorkerConfig {
            max_receive_count: 5,
            user_not_found_retry: Duration::from_secs(300),
            ..WorkerConfig::default()
        },
    );
    let worker = worker.with_queue(queue.clone());
    let sent = now_ms();
    let m = |receive: u32| {
        sqs_msg(
            "n",
            body(
                "new@contoso.com",
                json!({"mobile": M1}),
                json!({}),
                json!({}),
            ),
            receive,
            sent,
        )
    };
    let r = worker.process_one(&m(1)).await;
    assert_eq!(r.disposition, Disposition::Retry(Reason::UserNotFound));
    // 300 s and 4 receives left: the first retry after 300 / (2^4 - 1) = 20 s.
    let d = r.retry_in.expect("spaced");
    assert!(
        d >= Duration::from_secs(19) && d <= Duration::from_secs(20),
        "{d:?}"
    );
    assert_eq!(queue.visibility_changes(), vec![("rh-n-1".to_string(), d)]);
    assert!(dlq.entries().is_empty());
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = worker.process_one(&m(2)).await;
    assert_eq!(r.disposition, Disposition::Done(Outcome::Created));
    assert!(dlq.entries().is_empty());

    // Past the window it is final, with how long it was looked for.
    let old = sqs_msg(
        "g",
        body(
            "ghost@contoso.com",
            json!({"mobile": M1}),
            json!({}),
            json!({}),
        ),
        2,
        sent - 301_000,
    );
    let r = worker.process_one(&old).await;
    assert_eq!(
        r.disposition,
        Disposition::DeadLettered(Reason::UserNotFound)
    );
    assert!(
        dlq.entries()[0].0.detail.contains("still not found"),
        "{}",
        dlq.entries()[0].0.detail
    );
    // And so it is on the last receive, whatever the window.
    let last = sqs_msg(
        "l",
        body(
            "ghost@contoso.com",
            json!({"mobile": M1}),
            json!({}),
            json!({}),
        ),
        5,
        sent,
    );
    assert_eq!(
        worker.process_one(&last).await.disposition,
        Disposition::DeadLettered(Reason::UserNotFound)
    );
    // With the window at zero, at once.
    let client = client_for(&sim, &pem_secret(), test_options(3));
    let (at_once, _) = worker_with(
        client,
        WorkerConfig {
            user_not_found_retry: Duration::ZERO,
            ..WorkerConfig::default()
        },
    );
    let fresh = sqs_msg(
        "z",
        body("nobody@contoso.com", json!({}), json!({}), json!({})),
        1,
        now_ms(),
    );
    assert_eq!(
        at_once.process_one(&fresh).await.disposition,
        Disposition::DeadLettered(Reason::UserNotFound)
    );
    sim.shutdown().await;
}
