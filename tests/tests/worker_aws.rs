//! The worker as it runs in AWS, against the moto server and the Graph simulator: its credentials
//! read from a real Secrets Manager secret (PEM pair or PFX), its messages received from a real
//! queue with a redrive policy the way Lambda's event source receives them (receive count
//! included), its batch response deciding what is deleted, and its rejects read back from the real
//! DLQ with their `reason` and `detail` attributes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use base64::Engine as _;
use e2e_tests::app::{fixture, pem_secret, quick_options as options, CLIENT_ID, TENANT};
use e2e_tests::poller::sqs_record;
use e2e_tests::{create_queues, drain, queue_arn, sdk_config, unique, Queues, Received};
use graph_sim::{FaultConfig, FaultKind, GraphSim, SeedUser, SimConfig};
use mfa_preload_core::worker::{build_with_options, SetupError, Worker};
use mfa_preload_core::{DlqEntry, Reason};
use serde_json::{json, Value};

const M1: &str = "+1 5555551234";
const M2: &str = "+1 5555559999";
const M3: &str = "+44 7700900123";
const O1: &str = "+31 201234567";
/// Receives before a message is dead-lettered: the queue's redrive policy and the worker's
/// `MAX_RECEIVE_COUNT` agree, as in the template.
const MAX_RECEIVES: u32 = 3;

fn pfx_secret(password: &str) -> String {
    json!({
        "tenantId": TENANT,
        "clientId": CLIENT_ID,
        "pfxBase64": base64::engine::general_purpose::STANDARD.encode(fixture("test-app.pfx")),
        "pfxPassword": password,
    })
    .to_string()
}

fn seed(upn: &str, mobile: Option<&str>, office: Option<&str>, default: Option<&str>) -> SeedUser {
    SeedUser {
        mobile: mobile.map(str::to_string),
        office: office.map(str::to_string),
        default_method: default.map(str::to_string),
        ..SeedUser::new(upn)
    }
}

/// A v1 request as the ingest writes it.
fn body(row: u64, user: &str, methods: Value, policy: Value, extra: Value) -> String {
    let mut v = json!({
        "v": 1,
        "job": {"bucket": "mfa-in", "key": "incoming/users.csv", "etag": "e1"},
        "row": row,
        "user": user,
        "methods": methods,
        "policy": policy,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v.to_string()
}

struct Rig {
    cfg: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    queues: Queues,
    queue_arn: String,
    secret_arn: String,
    sim: GraphSim,
}

async fn put_secret(cfg: &aws_config::SdkConfig, tag: &str, value: String) -> String {
    aws_sdk_secretsmanager::Client::new(cfg)
        .create_secret()
        .name(unique(tag))
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("secret arn")
}

async fn rig(tag: &str, secret: String, sim: SimConfig) -> Rig {
    let cfg = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    // A short visibility timeout: what the worker hands back is retried within seconds.
    let queues = create_queues(&sqs, &unique(tag), MAX_RECEIVES, 1).await;
    let queue_arn = queue_arn(&sqs, &queues.queue_url).await;
    let secret_arn = put_secret(&cfg, tag, secret).await;
    let sim = GraphSim::start(sim).await.expect("simulator");
    sim.register_app(
        TENANT,
        CLIENT_ID,
        &String::from_utf8(fixture("test-app.crt.pem")).expect("utf-8"),
    );
    Rig {
        cfg,
        sqs,
        queues,
        queue_arn,
        secret_arn,
        sim,
    }
}

impl Rig {
    fn env(&self, secret_id: &str) -> HashMap<String, String> {
        [
            ("CREDENTIALS_SECRET_ID", secret_id.to_string()),
            ("DLQ_URL", self.queues.dlq_url.clone()),
            ("GRAPH_BASE_URL", self.sim.base_url()),
            ("LOGIN_BASE_URL", self.sim.base_url()),
            ("WORKER_CONCURRENCY", "8".to_string()),
            ("MAX_RECEIVE_COUNT", MAX_RECEIVES.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The worker as the Lambda binary builds it, from its environment.
    async fn worker_with_secret(&self, secret_id: &str) -> Result<Worker, SetupError> {
        let env = self.env(secret_id);
        build_with_options(&self.cfg, |k| env.get(k).cloned(), options()).await
    }

    /// The worker with more variables, `QUEUE_URL` (its own queue) among them: it spaces its
    /// retries itself.
    async fn worker_env(&self, extra: &[(&str, &str)]) -> Worker {
        let mut env = self.env(&self.secret_arn);
        env.insert("QUEUE_URL".into(), self.queues.queue_url.clone());
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        build_with_options(&self.cfg, |k| env.get(k).cloned(), options())
            .await
            .expect("worker set-up")
    }

    /// Invocations as Lambda makes them until the queue is empty: what the worker lists comes
    /// back when the visibility it set (or the receive's) runs out. Returns invocations and
    /// messages listed for a retry.
    async fn run_as_lambda(&self, worker: &Worker, limit: Duration) -> (usize, usize) {
        let started = Instant::now();
        let (mut invocations, mut retried) = (0, 0);
        loop {
            assert!(
                started.elapsed() < limit,
                "the queue did not empty in {limit:?}"
            );
            let msgs = self.receive(10).await;
            if msgs.is_empty() {
                if self.depth().await == 0 {
                    return (invocations, retried);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            invocations += 1;
            retried += self.invoke_with(worker, msgs, false).await.1.len();
        }
    }

    async fn worker(&self) -> Worker {
        self.worker_with_secret(&self.secret_arn)
            .await
            .expect("worker set-up")
    }

    async fn send(&self, bodies: &[String]) {
        for (n, chunk) in bodies.chunks(10).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{n}-{i}"))
                        .message_body(b)
                        .build()
                        .expect("entry")
                })
                .collect();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(&self.queues.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("send batch");
            assert!(out.failed.is_empty(), "{:?}", out.failed);
        }
    }

    /// Receives up to `max` messages the way Lambda's event source does (system attributes
    /// included), with a visibility timeout long enough for one invocation.
    async fn receive(&self, max: i32) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.queues.queue_url)
            .max_number_of_messages(max)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .visibility_timeout(30)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default()
    }

    /// One invocation: the batch as an `SqsEvent`, the worker's response, and the deletion of
    /// every message it did not list; the listed ones are handed back to the queue (visibility 0,
    /// as the end of a short visibility timeout would). Returns the batch's message ids and the
    /// listed ones.
    async fn invoke(
        &self,
        worker: &Worker,
        msgs: Vec<aws_sdk_sqs::types::Message>,
    ) -> (Vec<String>, Vec<String>) {
        self.invoke_with(worker, msgs, true).await
    }

    /// [`Rig::invoke`]; `hand_back`: make the listed messages visible at once.
    async fn invoke_with(
        &self,
        worker: &Worker,
        msgs: Vec<aws_sdk_sqs::types::Message>,
        hand_back: bool,
    ) -> (Vec<String>, Vec<String>) {
        let records: Vec<Value> = msgs
            .iter()
            .map(|m| sqs_record(m, &self.queue_arn))
            .collect();
        let event: SqsEvent =
            serde_json::from_value(json!({ "Records": records })).expect("SQS event");
        let resp = tokio::time::timeout(
            Duration::from_secs(60),
            worker.handle_event_until(event, None),
        )
        .await
        .expect("the worker answers within a minute");
        let listed: Vec<String> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let ids: Vec<String> = msgs
            .iter()
            .map(|m| m.message_id.clone().unwrap_or_default())
            .collect();
        let listed_set: HashSet<&String> = listed.iter().collect();
        let delete: Vec<DeleteMessageBatchRequestEntry> = msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| !listed_set.contains(&m.message_id.clone().unwrap_or_default()))
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .build()
                    .expect("entry")
            })
            .collect();
        if !delete.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queues.queue_url)
                .set_entries(Some(delete))
                .send()
                .await
                .expect("delete");
        }
        for m in msgs
            .iter()
            .filter(|_| hand_back)
            .filter(|m| listed_set.contains(&m.message_id.clone().unwrap_or_default()))
        {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.queues.queue_url)
                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                .visibility_timeout(0)
                .send()
                .await
                .expect("hand back");
        }
        (ids, listed)
    }

    /// Invocations of batches of 10 until the queue is empty (nothing visible, nothing in flight).
    /// Returns the number of invocations and of messages listed for a retry.
    async fn run_until_empty(&self, worker: &Worker) -> (usize, usize) {
        let started = Instant::now();
        let (mut invocations, mut retried) = (0, 0);
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "the queue did not empty in 3 minutes"
            );
            let msgs = self.receive(10).await;
            if msgs.is_empty() {
                if self.depth().await == 0 {
                    return (invocations, retried);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            invocations += 1;
            retried += self.invoke(worker, msgs).await.1.len();
        }
    }

    async fn depth(&self) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queues.queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum()
    }

    /// Every DLQ message, parsed.
    async fn dead_letters(&self) -> Vec<(DlqEntry, HashMap<String, String>)> {
        drain(&self.sqs, &self.queues.dlq_url)
            .await
            .into_iter()
            .map(|Received { body, attributes }| {
                (
                    serde_json::from_str::<DlqEntry>(&body).expect("DLQ entry JSON"),
                    attributes,
                )
            })
            .collect()
    }

    fn writes_for(&self, upn: &str) -> usize {
        self.sim
            .write_log()
            .iter()
            .filter(|w| w.upn.eq_ignore_ascii_case(upn))
            .count()
    }
}

#[tokio::test]
async fn every_outcome_and_reason_through_real_queues_with_one_token() {
    // SMS sign-in allowed for the conflict's users; phone error texts quote the number, so the
    // masking of what reaches the DLQ is tested end to end.
    let rig = rig(
        "worker-all",
        pem_secret(),
        SimConfig {
            sms_sign_in_policy: true,
            sms_sign_in_policy_users: vec![
                "owner@contoso.com".into(),
                "taker@contoso.com".into(),
                "taker2@contoso.com".into(),
            ],
            echo_numbers_in_errors: true,
            ..SimConfig::default()
        },
    )
    .await;
    for u in [
        seed("new@contoso.com", None, None, None),
        seed("upd@contoso.com", Some(M2), None, None),
        seed("del@contoso.com", Some(M1), Some(O1), Some("sms")),
        seed("same@contoso.com", Some("+15555551234"), None, None),
        seed("skip@contoso.com", Some(M2), None, None),
        seed("alt@contoso.com", None, None, None),
        seed("dflt@contoso.com", Some(M1), None, Some("sms")),
        SeedUser {
            sms_sign_in_enabled: true,
            ..seed("owner@contoso.com", Some(M3), None, None)
        },
        seed("taker@contoso.com", None, None, None),
        seed("taker2@contoso.com", None, None, None),
        seed("pref@contoso.com", Some(M1), None, None),
        seed("nosms@contoso.com", None, None, None),
    ] {
        rig.sim.add_user(u);
    }
    let none = json!({});
    let done = [
        (
            body(
                2,
                "new@contoso.com",
                json!({"mobile": M1, "email": "new@fabrikam.com"}),
                none.clone(),
                none.clone(),
            ),
            "new@contoso.com",
        ),
        (
            body(
                3,
                "upd@contoso.com",
                json!({"mobile": M1}),
                json!({"forcedUpdate": true}),
                none.clone(),
            ),
            "upd@contoso.com",
        ),
        (
            body(
                4,
                "del@contoso.com",
                json!({"office": null}),
                json!({"forcedRemoval": true}),
                none.clone(),
            ),
            "del@contoso.com",
        ),
        (
            body(
                5,
                "same@contoso.com",
                json!({"mobile": M1}),
                none.clone(),
                none.clone(),
            ),
            "same@contoso.com",
        ),
        (
            body(
                6,
                "skip@contoso.com",
                json!({"mobile": M1}),
                none.clone(),
                none.clone(),
            ),
            "skip@contoso.com",
        ),
        // Another user holds the mobile for SMS sign-in: Graph answers 409 but writes it, and
        // the office phone is written too. SMS sign-in was not asked for: a note, not a reject.
        (
            body(
                14,
                "taker2@contoso.com",
                json!({"mobile": M3, "office": O1}),
                none.clone(),
                none.clone(),
            ),
            "taker2@contoso.com",
        ),
    ];
    let rejects: Vec<(String, Reason)> = vec![
        ("{\"v\":1,".to_string(), Reason::InvalidMessage),
        (
            body(
                7,
                "a/b@contoso.com",
                none.clone(),
                none.clone(),
                none.clone(),
            ),
            Reason::InvalidMessage,
        ),
        (
            body(
                8,
                "ghost@contoso.com",
                json!({"mobile": M1}),
                none.clone(),
                none.clone(),
            ),
            Reason::UserNotFound,
        ),
        (
            body(
                9,
                "alt@contoso.com",
                json!({"alternateMobile": M2}),
                none.clone(),
                none.clone(),
            ),
            Reason::AlternateRequiresMobile,
        ),
        (
            body(
                10,
                "dflt@contoso.com",
                json!({"mobile": null}),
                json!({"forcedRemoval": true}),
                none.clone(),
            ),
            Reason::DefaultMethodConflict,
        ),
        (
            // The same with SMS sign-in asked for: the row's outcome is the conflict, after its
            // mobile and office were written.
            body(
                11,
                "taker@contoso.com",
                json!({"mobile": M3, "office": O1}),
                none.clone(),
                json!({"smsSignIn": "enable"}),
            ),
            Reason::SmsSigninNumberNotUnique,
        ),
        (
            body(
                12,
                "pref@contoso.com",
                none.clone(),
                none.clone(),
                json!({"defaultMethod": "voiceOffice"}),
            ),
            Reason::GraphRejected,
        ),
        (
            body(
                13,
                "nosms@contoso.com",
                none.clone(),
                none.clone(),
                json!({"smsSignIn": "enable"}),
            ),
            Reason::InvalidRow,
        ),
    ];
    let mut all: Vec<String> = done.iter().map(|(b, _)| b.clone()).collect();
    all.extend(rejects.iter().map(|(b, _)| b.clone()));
    rig.send(&all).await;
    // `user_not_found` at once here (the retry window has its own test).
    let env = {
        let mut e = rig.env(&rig.secret_arn);
        e.insert("USER_NOT_FOUND_RETRY_SECONDS".into(), "0".into());
        e
    };
    let worker = build_with_options(&rig.cfg, |k| env.get(k).cloned(), options())
        .await
        .expect("worker");
    let (invocations, retried) = rig.run_until_empty(&worker).await;
    assert_eq!(retried, 0, "nothing here is transient");
    assert_eq!(invocations, all.len().div_ceil(10));

    // The state in Graph.
    let user = |u: &str| rig.sim.user(u).expect("user");
    assert_eq!(user("new@contoso.com").mobile.as_deref(), Some(M1));
    assert_eq!(
        user("new@contoso.com").email.as_deref(),
        Some("new@fabrikam.com")
    );
    assert_eq!(user("upd@contoso.com").mobile.as_deref(), Some(M1));
    assert_eq!(user("del@contoso.com").office, None);
    assert_eq!(user("skip@contoso.com").mobile.as_deref(), Some(M2));
    assert_eq!(user("dflt@contoso.com").mobile.as_deref(), Some(M1));
    for (u, writes) in [
        ("new@contoso.com", 2),
        ("upd@contoso.com", 1),
        ("del@contoso.com", 1),
        ("same@contoso.com", 0),
        ("skip@contoso.com", 0),
        ("dflt@contoso.com", 0),
        ("taker@contoso.com", 2),
        ("taker2@contoso.com", 2),
    ] {
        assert_eq!(rig.writes_for(u), writes, "{u}");
    }
    for u in ["taker@contoso.com", "taker2@contoso.com"] {
        assert_eq!(user(u).mobile.as_deref(), Some(M3), "{u}");
        assert_eq!(user(u).office.as_deref(), Some(O1), "{u}");
    }

    // Every reject is in the real DLQ once, with its reason and detail as attributes and the
    // original request inside.
    let dead = rig.dead_letters().await;
    assert_eq!(dead.len(), rejects.len(), "{dead:?}");
    for (b, want) in &rejects {
        let expected =
            serde_json::from_str::<Value>(b).unwrap_or_else(|_| Value::String(b.clone()));
        let hits: Vec<_> = dead.iter().filter(|(e, _)| e.request == expected).collect();
        assert_eq!(hits.len(), 1, "{b}");
        let (entry, attrs) = hits[0];
        assert_eq!(entry.reason, *want, "{b}: {}", entry.detail);
        assert_eq!(entry.stage, "worker");
        assert_eq!(attrs["reason"], want.as_str());
        assert_eq!(attrs["stage"], "worker");
        assert!(!attrs["detail"].is_empty());
        for n in ["5555551234", "5555559999", "7700900123"] {
            assert!(
                !entry.detail.contains(n),
                "a whole number: {}",
                entry.detail
            );
        }
        if let Some(row) = expected.get("row").and_then(Value::as_u64) {
            assert_eq!(entry.row, Some(row), "the row survives for {b}");
        }
    }

    let taker = dead
        .iter()
        .find(|(e, _)| e.row == Some(11))
        .expect("the conflict row");
    assert!(
        taker.0.detail.contains("mobile:create") && taker.0.detail.contains("office:create"),
        "{}",
        taker.0.detail
    );

    // One token for the whole run, and still one for a second (warm) batch of the same users.
    assert_eq!(rig.sim.stats().token_requests, 1);
    let again: Vec<String> = done.iter().map(|(b, _)| b.clone()).collect();
    rig.send(&again).await;
    let writes_before = rig.sim.write_log().len();
    rig.run_until_empty(&worker).await;
    assert_eq!(rig.sim.stats().token_requests, 1);
    assert_eq!(
        rig.sim.write_log().len(),
        writes_before,
        "a re-run writes nothing"
    );
    assert!(rig.dead_letters().await.is_empty());
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_pfx_secret_works_and_bad_secrets_name_the_field_not_the_value() {
    let password = "test-pfx-password";
    let rig = rig(
        "worker-pfx",
        pfx_secret(password),
        SimConfig {
            auto_create_users: true,
            ..SimConfig::default()
        },
    )
    .await;
    let worker = rig.worker().await;
    let bodies: Vec<String> = (0..25)
        .map(|i| {
            body(
                i + 2,
                &format!("pfx{i}@contoso.com"),
                json!({"mobile": M1}),
                json!({}),
                json!({}),
            )
        })
        .collect();
    rig.send(&bodies).await;
    rig.run_until_empty(&worker).await;
    for i in 0..25 {
        let u = rig.sim.user(&format!("pfx{i}@contoso.com")).expect("user");
        assert_eq!(u.mobile.as_deref(), Some(M1));
    }
    assert_eq!(rig.sim.stats().token_requests, 1);
    assert!(rig.dead_letters().await.is_empty());

    // A wrong PFX password, a PEM secret without its key, a secret that is not JSON: each a
    // clear set-up error naming the secret and the field, never echoing what the secret holds.
    let key_pem = String::from_utf8(fixture("test-app.key.pem")).expect("utf-8");
    let mut no_key: Value = serde_json::from_str(&pem_secret()).expect("json");
    no_key
        .as_object_mut()
        .expect("object")
        .remove("privateKeyPem");
    let cases = [
        (pfx_secret("not-the-password"), "pfx", "not-the-password"),
        (no_key.to_string(), "privateKeyPem", "BEGIN CERTIFICATE"),
        (
            format!("tenant={TENANT} key={key_pem}"),
            "JSON",
            "PRIVATE KEY",
        ),
    ];
    for (secret, names, never) in cases {
        let id = put_secret(&rig.cfg, "worker-bad", secret).await;
        // An unusable secret is a configuration fault: the worker starts, faulted.
        let worker = rig
            .worker_with_secret(&id)
            .await
            .expect("a faulted worker starts");
        let err = worker.start_fault().expect("faulted").to_string();
        assert!(
            err.to_lowercase().contains(&names.to_lowercase()),
            "{names}: {err}"
        );
        assert!(err.contains(&id), "the secret is named: {err}");
        assert!(!err.contains(never), "the secret's content leaked: {err}");
        assert!(!err.contains("MII"), "key material leaked: {err}");
    }
    // A secret that does not exist.
    let missing = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}",
        unique("none")
    );
    let worker = rig
        .worker_with_secret(&missing)
        .await
        .expect("a faulted worker starts");
    let err = worker.start_fault().expect("faulted").to_string();
    assert!(err.contains("none"), "{err}");
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_late_consent_dead_letters_nobody_and_every_user_ends_right() {
    let rig = rig(
        "worker-consent",
        pem_secret(),
        SimConfig {
            auto_create_users: true,
            ..SimConfig::default()
        },
    )
    .await;
    // Consent not granted yet: the app may read users, nothing else.
    rig.sim.set_app_roles(TENANT, CLIENT_ID, &["User.Read.All"]);
    let bodies: Vec<String> = (0..12)
        .map(|i| {
            body(
                i + 2,
                &format!("c{i}@contoso.com"),
                json!({"mobile": M1}),
                json!({}),
                json!({}),
            )
        })
        .collect();
    rig.send(&bodies).await;
    let worker = rig
        .worker_env(&[("CONFIGURATION_FAULT_RETRY_SECONDS", "1")])
        .await;
    // More faulted batches than a message has receives (3): the messages outlive their receive
    // count as fresh copies instead of being moved to the DLQ by the redrive policy.
    let grant = async {
        let waiting = Instant::now();
        while worker.configuration_faults() < 8 {
            assert!(
                waiting.elapsed() < Duration::from_secs(90),
                "only {} faulted batches",
                worker.configuration_faults()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(rig.sim.stats().requests, 0, "no user was touched");
        rig.sim
            .set_app_roles(TENANT, CLIENT_ID, &["UserAuthMethod-Phone.ReadWrite.All"]);
    };
    let (_, (_, retried)) =
        tokio::join!(grant, rig.run_as_lambda(&worker, Duration::from_secs(120)));
    assert!(retried > 0);
    for i in 0..12 {
        let u = rig.sim.user(&format!("c{i}@contoso.com")).expect("user");
        assert_eq!(u.mobile.as_deref(), Some(M1), "c{i}");
    }
    assert!(rig.dead_letters().await.is_empty(), "nothing in the DLQ");
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_certificate_rotated_in_the_secret_is_picked_up_on_invalid_client() {
    let rig = rig(
        "worker-rotate",
        pem_secret(),
        SimConfig {
            auto_create_users: true,
            ..SimConfig::default()
        },
    )
    .await;
    let worker = rig.worker().await;
    rig.send(&[body(
        2,
        "r1@contoso.com",
        json!({"mobile": M1}),
        json!({}),
        json!({}),
    )])
    .await;
    rig.run_until_empty(&worker).await;
    assert_eq!(rig.sim.stats().token_requests, 1);
    // The administrator rotates: a new certificate on the app (the old one removed), the new
    // pair in the secret, and the worker's cached token ends.
    rig.sim.register_app(
        TENANT,
        CLIENT_ID,
        &String::from_utf8(fixture("other-app.crt.pem")).expect("utf-8"),
    );
    let rotated = json!({
        "tenantId": TENANT,
        "clientId": CLIENT_ID,
        "certificatePem": String::from_utf8(fixture("other-app.crt.pem")).expect("utf-8"),
        "privateKeyPem": String::from_utf8(fixture("other-app.key.pem")).expect("utf-8"),
    })
    .to_string();
    aws_sdk_secretsmanager::Client::new(&rig.cfg)
        .put_secret_value()
        .secret_id(&rig.secret_arn)
        .secret_string(rotated)
        .send()
        .await
        .expect("rotate the secret");
    rig.sim.revoke_tokens();
    rig.send(&[body(
        3,
        "r2@contoso.com",
        json!({"mobile": M1}),
        json!({}),
        json!({}),
    )])
    .await;
    let (_, retried) = rig.run_until_empty(&worker).await;
    assert_eq!(
        retried, 0,
        "the refused certificate was replaced by the secret's new one at once"
    );
    assert_eq!(
        rig.sim
            .user("r2@contoso.com")
            .and_then(|u| u.mobile)
            .as_deref(),
        Some(M1)
    );
    // The old certificate was refused once, then the new one got a token.
    assert_eq!(rig.sim.stats().token_requests, 3);
    assert!(rig.dead_letters().await.is_empty());
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_user_that_appears_after_its_message_is_applied_not_dead_lettered() {
    let rig = rig("worker-late-user", pem_secret(), SimConfig::default()).await;
    rig.sim.add_user(SeedUser::new("hire@contoso.com"));
    rig.sim
        .hide_user_for("hire@contoso.com", Duration::from_secs(5));
    rig.send(&[body(
        2,
        "hire@contoso.com",
        json!({"mobile": M1}),
        json!({}),
        json!({}),
    )])
    .await;
    // A 30 s window over 3 receives: the first retry after 30 / (2^2 - 1) = 10 s.
    let worker = rig
        .worker_env(&[("USER_NOT_FOUND_RETRY_SECONDS", "30")])
        .await;
    let (invocations, retried) = rig.run_as_lambda(&worker, Duration::from_secs(60)).await;
    assert_eq!((invocations, retried), (2, 1));
    assert_eq!(
        rig.sim
            .user("hire@contoso.com")
            .and_then(|u| u.mobile)
            .as_deref(),
        Some(M1)
    );
    assert!(rig.dead_letters().await.is_empty());
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn throttling_and_faults_are_retried_and_duplicate_deliveries_write_once() {
    let rig = rig(
        "worker-faults",
        pem_secret(),
        SimConfig {
            auto_create_users: true,
            // A small budget: the run is throttled with Retry-After, besides the faults. The
            // first batch alone (10 users: a GET and two writes each, 50 RU) is more than a
            // window holds, however much the faults slow the rest of the run down.
            ru_per_window: 20,
            window: Duration::from_secs(1),
            faults: FaultConfig::new(
                0.25,
                vec![
                    FaultKind::Throttle429,
                    FaultKind::Status500,
                    FaultKind::Status503,
                    FaultKind::Drop,
                ],
            ),
            ..SimConfig::default()
        },
    )
    .await;
    let users: Vec<String> = (0..40).map(|i| format!("dup{i}@contoso.com")).collect();
    let bodies: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            body(
                i as u64 + 2,
                u,
                json!({"mobile": M1, "email": format!("{i}@fabrikam.com")}),
                json!({}),
                json!({}),
            )
        })
        .collect();
    // Every message is in the queue twice, as SQS's at-least-once delivery may hand it over.
    let mut twice = bodies.clone();
    twice.extend(bodies.iter().cloned());
    rig.send(&twice).await;
    let worker = rig.worker().await;
    let (_, retried) = rig.run_until_empty(&worker).await;
    let s = rig.sim.stats();
    assert!(s.faults_injected > 0, "{s:?}");
    assert!(s.throttled > 0, "{s:?}");
    for (i, u) in users.iter().enumerate() {
        let st = rig.sim.user(u).expect("user");
        assert_eq!(st.mobile.as_deref(), Some(M1), "{u}");
        assert_eq!(
            st.email.as_deref(),
            Some(format!("{i}@fabrikam.com").as_str()),
            "{u}"
        );
        // One write per change, though the request arrived twice and calls failed on the way.
        assert_eq!(rig.writes_for(u), 2, "{u}: {:?}", rig.sim.write_log());
    }
    let dead = rig.dead_letters().await;
    assert!(
        dead.is_empty(),
        "faults that retries absorb dead-letter nothing: {dead:?}"
    );
    eprintln!(
        "faults: {} injected, {} throttled, {} messages retried by SQS",
        s.faults_injected, s.throttled, retried
    );
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_mixed_batch_lists_exactly_its_transient_failures_and_nothing_is_lost() {
    let rig = rig(
        "worker-mixed",
        pem_secret(),
        SimConfig {
            auto_create_users: true,
            faults: FaultConfig::new(1.0, vec![FaultKind::Status503]),
            ..SimConfig::default()
        },
    )
    .await;
    let a = body(
        2,
        "a@contoso.com",
        json!({"mobile": M1}),
        json!({}),
        json!({}),
    );
    let b = body(
        3,
        "b@contoso.com",
        json!({"mobile": M1}),
        json!({}),
        json!({}),
    );
    let c = body(
        4,
        "c@contoso.com",
        json!({"mobile": M1}),
        json!({}),
        json!({}),
    );
    // b reaches its last receive first: received and handed back twice.
    rig.send(std::slice::from_ref(&b)).await;
    for _ in 0..MAX_RECEIVES - 1 {
        let got = rig.receive(1).await;
        assert_eq!(got.len(), 1);
        rig.sqs
            .change_message_visibility()
            .queue_url(&rig.queues.queue_url)
            .receipt_handle(got[0].receipt_handle.clone().expect("receipt"))
            .visibility_timeout(0)
            .send()
            .await
            .expect("hand back");
    }
    rig.send(&[a.clone(), "not json".to_string(), c.clone()])
        .await;
    let worker = rig.worker().await;
    let mut batch = Vec::new();
    for _ in 0..20 {
        batch.extend(rig.receive(10).await);
        if batch.len() == 4 {
            break;
        }
    }
    assert_eq!(batch.len(), 4, "one batch of four");
    let id_of = |want: &str| {
        batch
            .iter()
            .find(|m| m.body.as_deref() == Some(want))
            .and_then(|m| m.message_id.clone())
            .expect("in the batch")
    };
    let (ida, idc) = (id_of(&a), id_of(&c));
    let (_, listed) = rig.invoke(&worker, batch).await;
    let listed: HashSet<String> = listed.into_iter().collect();
    assert_eq!(
        listed,
        HashSet::from([ida, idc]),
        "only the transient failures with receives left"
    );
    // What was not listed was deleted, and its outcome is in the DLQ: the garbage at once, and
    // b, whose last receive this was, as retries_exhausted.
    let dead = rig.dead_letters().await;
    let mut reasons: Vec<Reason> = dead.iter().map(|(e, _)| e.reason).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![Reason::RetriesExhausted, Reason::InvalidMessage]
    );
    let exhausted = dead
        .iter()
        .find(|(e, _)| e.reason == Reason::RetriesExhausted)
        .expect("retries_exhausted");
    assert_eq!(exhausted.0.request["user"], "b@contoso.com");
    assert!(exhausted.0.detail.contains("503"), "{}", exhausted.0.detail);
    assert_eq!(exhausted.1["reason"], "retries_exhausted");
    // Graph recovers: the listed messages come back from the queue and complete.
    rig.sim.set_faults(FaultConfig::none());
    rig.run_until_empty(&worker).await;
    for u in ["a@contoso.com", "c@contoso.com"] {
        assert_eq!(
            rig.sim.user(u).expect("user").mobile.as_deref(),
            Some(M1),
            "{u}"
        );
        assert_eq!(rig.writes_for(u), 1, "{u}");
    }
    assert_eq!(rig.writes_for("b@contoso.com"), 0);
    assert!(rig.dead_letters().await.is_empty());
    assert_eq!(rig.depth().await, 0);
    rig.sim.shutdown().await;
}
