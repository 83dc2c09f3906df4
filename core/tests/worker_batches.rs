//! One batch as SQS hands it over: a message delivered twice in it is worked once, messages of
//! one user run in order, deliveries to two instances at once do no harm, and a DLQ that fails
//! on the last delivery loses nothing.

mod common;

use std::sync::Arc;

use common::*;
use graph_sim::{SeedUser, SimConfig};
use mfa_preload_core::dlq::MemoryDlq;
use mfa_preload_core::worker::{Disposition, InboundMessage, MemoryQueue, Worker, WorkerConfig};
use mfa_preload_core::{Outcome, Reason};
use serde_json::json;

const M1: &str = "+1 5555551234";
const M2: &str = "+1 5555559999";

fn writes(sim: &graph_sim::GraphSim, upn: &str) -> Vec<String> {
    sim.write_log()
        .into_iter()
        .filter(|w| w.upn == upn)
        .map(|w| format!("{}:{}:{}", w.method, w.op, w.value.unwrap_or_default()))
        .collect()
}

fn row_body(row: u64, user: &str, methods: serde_json::Value, policy: serde_json::Value) -> String {
    json!({
        "v": 1,
        "job": {"bucket": "mfa-in", "key": "incoming/users.csv", "etag": "\"e1\""},
        "row": row,
        "user": user,
        "methods": methods,
        "policy": policy,
    })
    .to_string()
}

#[tokio::test]
async fn a_message_delivered_twice_in_one_batch_is_worked_once() {
    let sim = start_sim(SimConfig::default()).await;
    for u in ["a@contoso.com", "b@contoso.com", "c@contoso.com"] {
        sim.add_user(SeedUser::new(u));
    }
    let a = row_body(2, "a@contoso.com", json!({"mobile": M1}), json!({}));
    let b = row_body(3, "b@contoso.com", json!({"mobile": M1}), json!({}));
    // The same row sent twice (another message id, as a re-sent batch entry is).
    let b_again = row_body(3, "b@contoso.com", json!({"mobile": M1}), json!({}));
    let ghost = row_body(4, "ghost@contoso.com", json!({"mobile": M1}), json!({}));
    // The same job and row for another user (a producer may number rows its own way): not a
    // duplicate.
    let c_same_row = row_body(3, "c@contoso.com", json!({"mobile": M1}), json!({}));
    let batch = vec![
        msg("m-a", a.clone()),
        msg("m-a", a),
        msg("m-b", b),
        msg("m-b2", b_again),
        msg("m-g", ghost.clone()),
        msg("m-g", ghost),
        msg("m-c", c_same_row),
    ];
    let zero_window = WorkerConfig {
        user_not_found_retry: std::time::Duration::ZERO,
        ..WorkerConfig::default()
    };
    let (worker, dlq) = worker_with(
        client_for(&sim, &pem_secret(), test_options(3)),
        zero_window,
    );
    let reports = worker.process(batch).await;
    let d: Vec<_> = reports.iter().map(|r| r.disposition).collect();
    assert_eq!(
        d,
        vec![
            Disposition::Done(Outcome::Created),
            Disposition::Done(Outcome::Created),
            Disposition::Done(Outcome::Created),
            Disposition::Done(Outcome::Created),
            Disposition::DeadLettered(Reason::UserNotFound),
            Disposition::DeadLettered(Reason::UserNotFound),
            Disposition::Done(Outcome::Created),
        ]
    );
    assert_eq!(reports[3].message_id, "m-b2");
    assert_eq!(
        writes(&sim, "c@contoso.com"),
        [format!("mobile:create:{M1}")]
    );
    assert_eq!(
        writes(&sim, "a@contoso.com"),
        [format!("mobile:create:{M1}")]
    );
    assert_eq!(
        writes(&sim, "b@contoso.com"),
        [format!("mobile:create:{M1}")]
    );
    assert_eq!(
        dlq.entries().len(),
        1,
        "one DLQ entry for the twice-delivered reject"
    );
    // One read per distinct user, no more.
    assert_eq!(sim.stats().gets, 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn messages_of_one_user_in_one_batch_run_in_order() {
    // Latency, so that two requests worked at once would both read before either writes.
    let sim = start_sim(SimConfig {
        latency: std::time::Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    sim.add_user(SeedUser {
        mobile: Some(M1.into()),
        ..SeedUser::new("o@contoso.com")
    });
    let (worker, dlq) = worker_for(client_for(&sim, &pem_secret(), test_options(3)), 5);
    // A removal, then a new number for the same user (a leaver's number taken back, then a new
    // one): in order, the user ends with the new number; worked at once, the second would see
    // the old number and skip.
    let first = row_body(
        2,
        "O@contoso.com",
        json!({"mobile": null}),
        json!({"forcedRemoval": true}),
    );
    let second = row_body(9, "o@contoso.com", json!({"mobile": M2}), json!({}));
    let reports = worker
        .process(vec![msg("1", first), msg("2", second)])
        .await;
    assert_eq!(reports[0].disposition, Disposition::Done(Outcome::Deleted));
    assert_eq!(reports[1].disposition, Disposition::Done(Outcome::Created));
    assert_eq!(
        writes(&sim, "o@contoso.com"),
        ["mobile:delete:".to_string(), format!("mobile:create:{M2}")]
    );
    assert_eq!(
        sim.user("o@contoso.com").and_then(|u| u.mobile).as_deref(),
        Some(M2)
    );
    assert!(dlq.entries().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn deliveries_to_two_instances_at_once_do_no_harm() {
    let sim = start_sim(SimConfig::default()).await;
    for i in 0..20 {
        sim.add_user(SeedUser::new(format!("p{i}@contoso.com")));
    }
    let make = || worker_for(client_for(&sim, &pem_secret(), test_options(3)), 5);
    let ((one, dlq1), (two, dlq2)) = (make(), make());
    let batch: Vec<InboundMessage> = (0..20)
        .map(|i| {
            msg(
                &format!("m{i}"),
                row_body(
                    i + 2,
                    &format!("p{i}@contoso.com"),
                    json!({"mobile": M1, "office": "+31 201234567", "email": format!("p{i}@fabrikam.com")}),
                    json!({}),
                ),
            )
        })
        .collect();
    let (r1, r2) = tokio::join!(one.process(batch.clone()), two.process(batch));
    for (a, b) in r1.iter().zip(&r2) {
        // Each delivery ends done: one created, the other found the work done (unchanged) or
        // created what the first had not yet written; neither is a reject.
        for r in [a, b] {
            assert!(
                matches!(r.disposition, Disposition::Done(_)),
                "{:?}",
                r.result
            );
        }
    }
    for i in 0..20 {
        let u = sim.user(&format!("p{i}@contoso.com")).expect("user");
        assert_eq!(u.mobile.as_deref(), Some(M1));
        assert_eq!(u.office.as_deref(), Some("+31 201234567"));
        assert_eq!(u.email, Some(format!("p{i}@fabrikam.com")));
    }
    assert!(dlq1.entries().is_empty() && dlq2.entries().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_dlq_that_fails_on_the_last_delivery_loses_nothing() {
    let sim = start_sim(SimConfig::default()).await;
    let client = client_for(&sim, &pem_secret(), test_options(3));
    let dlq = Arc::new(MemoryDlq::new());
    dlq.set_failing(true);
    let queue = Arc::new(MemoryQueue::new());
    let worker = Worker::new(
        client,
        dlq.clone(),
        WorkerConfig {
            max_receive_count: 3,
            user_not_found_retry: std::time::Duration::ZERO,
            ..WorkerConfig::default()
        },
    )
    .with_queue(queue.clone());
    let body = row_body(2, "ghost@contoso.com", json!({"mobile": M1}), json!({}));
    // Not the last delivery: back to the queue, its DLQ send tried again next time.
    let r = worker
        .process_one(&InboundMessage::new("m", body.clone(), 2))
        .await;
    assert_eq!(r.disposition, Disposition::Retry(Reason::UserNotFound));
    assert!(queue.requeued().is_empty());
    // The last delivery: a fresh copy, so that SQS does not move it to the DLQ without a reason.
    let r = worker
        .process_one(&InboundMessage::new("m", body.clone(), 3))
        .await;
    assert_eq!(r.disposition, Disposition::Requeued(Reason::UserNotFound));
    let copies = queue.requeued();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].body, body);
    // Once the DLQ works again, the copy is dead-lettered with its reason.
    dlq.set_failing(false);
    let r = worker
        .process_one(&InboundMessage::new("copy", body, 1))
        .await;
    assert_eq!(
        r.disposition,
        Disposition::DeadLettered(Reason::UserNotFound)
    );
    assert_eq!(dlq.entries().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn protected_users_are_refused_whichever_way_they_are_named() {
    use mfa_preload_core::worker::protected::ProtectedUsers;
    let sim = start_sim(SimConfig::default()).await;
    let admin_id = "0a0a0a0a-0000-4000-8000-000000000001";
    sim.add_user(SeedUser {
        id: Some(admin_id.into()),
        ..SeedUser::new("admin@contoso.com")
    });
    sim.add_user(SeedUser {
        id: Some("0b0b0b0b-0000-4000-8000-000000000002".into()),
        ..SeedUser::new("glass@contoso.com")
    });
    sim.add_user(SeedUser::new("nested@contoso.com"));
    sim.add_user(SeedUser::new("staff@contoso.com"));
    let admins = "1a1a1a1a-0000-4000-8000-00000000000a";
    let inner = "1b1b1b1b-0000-4000-8000-00000000000b";
    sim.add_group(admins, &["glass@contoso.com", inner]);
    sim.add_group(inner, &["nested@contoso.com"]);
    // Reading users and group members is part of the consent this needs.
    sim.set_app_roles(
        TENANT,
        CLIENT_ID,
        &["UserAuthMethod-Phone.ReadWrite.All", "User.Read.All"],
    );
    let protected =
        || ProtectedUsers::parse(&format!("admin@contoso.com group:{admins}")).expect("valid");
    let client = client_for(&sim, &pem_secret(), test_options(3));
    let (worker, dlq) = worker_for(client.clone(), 5);
    let worker = worker.with_protected(protected());
    let batch = || {
        vec![
            msg("1", row_body(2, admin_id, json!({"mobile": M1}), json!({}))),
            msg(
                "2",
                row_body(3, "GLASS@contoso.com", json!({"mobile": M1}), json!({})),
            ),
            msg(
                "3",
                row_body(
                    4,
                    "0b0b0b0b-0000-4000-8000-000000000002",
                    json!({"mobile": M1}),
                    json!({}),
                ),
            ),
            msg(
                "4",
                row_body(5, "nested@contoso.com", json!({"mobile": M1}), json!({})),
            ),
            msg(
                "5",
                row_body(6, "staff@contoso.com", json!({"mobile": M1}), json!({})),
            ),
        ]
    };
    // Without GroupMember.Read.All the list cannot be looked up: nobody is touched.
    let reports = worker.process(batch()).await;
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::Retry(Reason::ConfigurationFault)
        );
    }
    assert!(sim.write_log().is_empty());
    assert!(dlq.entries().is_empty());
    sim.set_app_roles(
        TENANT,
        CLIENT_ID,
        &[
            "UserAuthMethod-Phone.ReadWrite.All",
            "User.Read.All",
            "GroupMember.Read.All",
        ],
    );
    // A new worker (a fresh token with the new consent).
    let (worker, dlq) = worker_for(client_for(&sim, &pem_secret(), test_options(3)), 5);
    let worker = worker.with_protected(protected());
    let reports = worker.process(batch()).await;
    let d: Vec<_> = reports.iter().map(|r| r.disposition).collect();
    assert_eq!(
        d,
        vec![
            Disposition::DeadLettered(Reason::ProtectedUser),
            Disposition::DeadLettered(Reason::ProtectedUser),
            Disposition::DeadLettered(Reason::ProtectedUser),
            Disposition::DeadLettered(Reason::ProtectedUser),
            Disposition::Done(Outcome::Created),
        ]
    );
    assert_eq!(dlq.entries().len(), 4);
    let written: Vec<String> = sim.write_log().into_iter().map(|w| w.upn).collect();
    assert_eq!(written, ["staff@contoso.com"]);
    sim.shutdown().await;
}
