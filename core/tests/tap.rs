//! Temporary Access Pass issuance through the engine (`apply`, `apply_with`) against the Graph
//! simulator: a new pass and where its value may (not) appear, an existing pass (`tap_exists`,
//! `forcedUpdate`, a request's own undelivered pass), the tenant's policy (off, targets, lifetime
//! range) and the least privilege that issues a pass.

mod common;

use std::sync::Arc;

use common::*;
use graph_sim::{GraphSim, SeedUser, SimConfig, TapPolicy};
use mfa_preload_core::apply::{apply, apply_with, read_current_with, ApplyOptions, UserResult};
use mfa_preload_core::graph::{ConfigFault, GraphClient};
use mfa_preload_core::message::parse_request;
use mfa_preload_core::plan::{plan, Subject};
use mfa_preload_core::tap::TapRequest;
use mfa_preload_core::{Outcome, Reason, Request};
use serde_json::{json, Value};

const M1: &str = "+1 5555551234";
const M2: &str = "+1 5555559876";
const M3: &str = "+44 7700900123";

/// A v1 request for `user` with `methods`, `policy` and `temporaryAccessPass: tap`.
fn request(user: &str, methods: Value, policy: Value, tap: Value) -> Request {
    parse_request(&body(
        user,
        methods,
        policy,
        json!({ "temporaryAccessPass": tap }),
    ))
    .expect("a valid v1 request")
}

/// `lifetimeInMinutes` 60, one sign-in.
fn tap60() -> Value {
    json!({"lifetimeInMinutes": 60, "isUsableOnce": true})
}

async fn sim_with(users: &[&str]) -> GraphSim {
    let sim = start_sim(SimConfig::default()).await;
    for u in users {
        sim.add_user(SeedUser::new(*u));
    }
    sim
}

fn client(sim: &GraphSim) -> Arc<GraphClient> {
    client_for(sim, &pem_secret(), test_options(4))
}

/// Values of every pass the simulator issued for `upn`, in issue order.
fn issued_for(sim: &GraphSim, upn: &str) -> Vec<String> {
    sim.issued_passes()
        .into_iter()
        .filter(|p| p.upn.eq_ignore_ascii_case(upn))
        .map(|p| p.value)
        .collect()
}

/// `(method, op)` of the user's writes, in order.
fn writes_of(sim: &GraphSim, upn: &str) -> Vec<(String, String)> {
    sim.write_log()
        .into_iter()
        .filter(|w| w.upn.eq_ignore_ascii_case(upn))
        .map(|w| (w.method, w.op))
        .collect()
}

fn tap_writes(sim: &GraphSim, upn: &str) -> Vec<String> {
    writes_of(sim, upn)
        .into_iter()
        .filter(|(m, _)| m == "temporaryAccessPass")
        .map(|(_, op)| op)
        .collect()
}

fn decision(r: &UserResult, subject: Subject) -> Option<Outcome> {
    r.decisions
        .iter()
        .find(|d| d.subject == subject)
        .map(|d| d.outcome)
}

fn reason(r: &UserResult) -> Option<Reason> {
    r.outcome.as_ref().err().map(|e| e.reason)
}

/// Gives `upn` a usable pass through the client (60 minutes, from now); its method id.
async fn give_pass(client: &GraphClient, sim: &GraphSim, upn: &str) -> String {
    let p = client
        .create_tap(
            upn,
            &TapRequest {
                lifetime_in_minutes: 60,
                start_date_time: None,
                is_usable_once: true,
            },
        )
        .await
        .expect("a pass");
    let st = sim.tap_state(upn).expect("the pass is held");
    assert_eq!(st.id, p.method_id);
    p.method_id
}

/// Every text of a result that a log line, a DLQ detail or a results row may carry.
fn printable(r: &UserResult) -> String {
    format!(
        "{r:?}\n{}\n{}\n{}",
        r.detail(),
        r.actions.join("\n"),
        r.notes.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pass_is_issued_and_its_value_is_only_in_the_pass() {
    const U: &str = "new@contoso.com";
    let sim = sim_with(&[U]).await;
    let client = client(&sim);
    let r = apply(&client, &request(U, json!({}), json!({}), tap60())).await;
    assert_eq!(r.outcome, Ok(Outcome::Created), "{}", r.detail());
    assert_eq!(
        decision(&r, Subject::TemporaryAccessPass),
        Some(Outcome::Created)
    );
    assert!(!r.transient && r.config_fault.is_none());
    let pass = r.pass.as_ref().expect("the issued pass");
    let issued = issued_for(&sim, U);
    assert_eq!(issued.len(), 1);
    assert_eq!(pass.value.expose(), issued.last().unwrap());
    assert_eq!((pass.lifetime_in_minutes, pass.is_usable_once), (60, true));
    let st = sim.tap_state(U).expect("the user holds the pass");
    assert_eq!(st.id, pass.method_id);
    assert_eq!((st.lifetime_in_minutes, st.is_usable_once), (60, true));
    assert_eq!(tap_writes(&sim, U), ["create"]);
    assert_eq!(r.actions, ["temporaryAccessPass:create(60 min, once)"]);

    let shown = printable(&r);
    assert!(
        !shown.contains(pass.value.expose()),
        "the value is printed: {shown}"
    );
    assert!(shown.contains("PassValue(<redacted>)"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_pass_is_tap_exists_and_the_other_methods_are_written() {
    const U: &str = "has.pass@contoso.com";
    let sim = sim_with(&[U]).await;
    let client = client(&sim);
    let id = give_pass(&client, &sim, U).await;
    let before = sim.issued_passes().len();

    let r = apply(
        &client,
        &request(U, json!({"mobile": M1}), json!({}), tap60()),
    )
    .await;
    assert_eq!(reason(&r), Some(Reason::TapExists), "{:?}", r.outcome);
    assert!(!r.transient && r.config_fault.is_none());
    assert!(r.pass.is_none());
    assert_eq!(decision(&r, Subject::Mobile), Some(Outcome::Created));
    assert_eq!(
        decision(&r, Subject::TemporaryAccessPass),
        Some(Outcome::SkippedExists)
    );
    // The mobile is in Graph, the pass untouched, none issued.
    assert_eq!(sim.user(U).unwrap().mobile.as_deref(), Some(M1));
    assert_eq!(sim.tap_state(U).map(|t| t.id), Some(id));
    assert_eq!(sim.issued_passes().len(), before);
    assert!(tap_writes(&sim, U).len() == 1, "only the pass given above");
    let detail = r.detail();
    assert!(detail.contains("ForcedUpdate"), "{detail}");
    assert!(detail.contains("done: mobile:create("), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_update_deletes_the_pass_then_issues_a_new_one() {
    const U: &str = "forced@contoso.com";
    let sim = sim_with(&[U]).await;
    let client = client(&sim);
    let old = give_pass(&client, &sim, U).await;
    let before = sim.issued_passes().len();
    let req = request(
        U,
        json!({"mobile": M1}),
        json!({"forcedUpdate": true}),
        tap60(),
    );

    // What the plan says, from what Graph shows now.
    let current = read_current_with(&client, &req, &ApplyOptions::default())
        .await
        .expect("read");
    let p = plan(&current, &req);
    assert_eq!(
        p.decisions
            .iter()
            .find(|d| d.subject == Subject::TemporaryAccessPass)
            .map(|d| d.outcome),
        Some(Outcome::Updated),
        "{p:?}"
    );
    assert!(p.deferred.is_none() && p.rejection.is_none(), "{p:?}");

    sim.clear_write_log();
    let r = apply(&client, &req).await;
    assert_eq!(r.outcome, p.outcome(), "{}", r.detail());
    assert_eq!(r.outcome, Ok(Outcome::Created), "the mobile is created");
    assert_eq!(
        decision(&r, Subject::TemporaryAccessPass),
        Some(Outcome::Updated)
    );
    let pass = r.pass.as_ref().expect("a new pass");
    let issued = issued_for(&sim, U);
    assert_eq!(sim.issued_passes().len(), before + 1);
    assert_eq!(pass.value.expose(), issued.last().unwrap());
    let now = sim.tap_state(U).expect("a pass");
    assert_ne!(now.id, old, "the old pass is gone");
    assert_eq!(now.id, pass.method_id);
    // The old pass deleted first, then the new one created, after the mobile.
    assert_eq!(
        writes_of(&sim, U),
        [
            ("mobile".to_string(), "create".to_string()),
            ("temporaryAccessPass".into(), "delete".into()),
            ("temporaryAccessPass".into(), "create".into()),
        ]
    );
    assert_eq!(
        r.actions[1..],
        [
            "temporaryAccessPass:delete",
            "temporaryAccessPass:create(60 min, once)"
        ]
    );
    assert!(!printable(&r).contains(pass.value.expose()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_is_off_is_read_once_and_refuses_every_pass() {
    let users = ["off1@contoso.com", "off2@contoso.com", "off3@contoso.com"];
    let mobiles = [M1, M2, M3];
    let sim = sim_with(&users).await;
    sim.set_tap_policy(TapPolicy::disabled());
    let client = client(&sim);
    // The token first, so that only the run's Graph requests are counted.
    client.check_features(&[]).await.expect("token");
    sim.reset_stats();

    let mut tasks = tokio::task::JoinSet::new();
    for (u, m) in users.iter().zip(mobiles) {
        let client = client.clone();
        let req = request(u, json!({"mobile": m}), json!({}), tap60());
        tasks.spawn(async move { (req.user.clone(), apply(&client, &req).await) });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.push(r.expect("task"));
    }
    assert_eq!(results.len(), users.len());
    for (u, r) in &results {
        assert_eq!(
            reason(r),
            Some(Reason::TapNotAllowedByPolicy),
            "{u}: {:?}",
            r.outcome
        );
        assert!(!r.transient && r.config_fault.is_none(), "{u}");
        assert!(r.pass.is_none(), "{u}");
        assert_eq!(decision(r, Subject::Mobile), Some(Outcome::Created), "{u}");
        assert!(
            r.detail().contains("done: mobile:create("),
            "{u}: {}",
            r.detail()
        );
    }
    for (u, m) in users.iter().zip(mobiles) {
        assert_eq!(sim.user(u).unwrap().mobile.as_deref(), Some(m), "{u}");
        assert!(sim.tap_state(u).is_none(), "{u}");
        assert!(tap_writes(&sim, u).is_empty(), "{u}");
    }
    assert!(sim.issued_passes().is_empty());
    // The simulator keeps no log of reads, only counts: one phone-methods read per user, one
    // policy read for the run, and no pass listed (the policy is off) nor created.
    let st = sim.stats();
    assert_eq!(st.gets, users.len() as u64 + 1, "{st:?}");
    assert_eq!(st.posts, users.len() as u64, "the mobiles only: {st:?}");
    assert_eq!(st.forbidden, 0, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_outside_the_policy_targets_is_refused_alone() {
    const IN: &str = "in.scope@contoso.com";
    const OUT: &str = "out.of.scope@contoso.com";
    let sim = sim_with(&[IN, OUT, "other@contoso.com"]).await;
    sim.set_tap_policy(TapPolicy {
        included: Some(vec![IN.to_string(), "other@contoso.com".to_string()]),
        ..TapPolicy::default()
    });
    let client = client(&sim);

    let inside = apply(
        &client,
        &request(IN, json!({"mobile": M1}), json!({}), tap60()),
    )
    .await;
    assert_eq!(inside.outcome, Ok(Outcome::Created), "{}", inside.detail());
    assert!(inside.pass.is_some());

    let outside = apply(
        &client,
        &request(OUT, json!({"mobile": M2}), json!({}), tap60()),
    )
    .await;
    assert_eq!(
        reason(&outside),
        Some(Reason::TapNotAllowedByPolicy),
        "{:?}",
        outside.outcome
    );
    assert!(!outside.transient && outside.config_fault.is_none());
    assert!(outside.pass.is_none());
    let detail = outside.detail();
    assert!(
        detail.contains("Converged UserCredentialPolicy does not allow"),
        "Graph's message: {detail}"
    );
    // The mobile was written before Graph refused the pass.
    assert_eq!(sim.user(OUT).unwrap().mobile.as_deref(), Some(M2));
    assert!(detail.contains("mobile:create("), "{detail}");
    assert!(sim.tap_state(OUT).is_none());
    assert!(issued_for(&sim, OUT).is_empty());
    assert_eq!(sim.issued_passes().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifetime_the_policy_refuses_is_graph_rejected_with_graphs_message() {
    const U: &str = "long@contoso.com";
    let sim = sim_with(&[U]).await;
    let client = client(&sim);
    let r = apply(
        &client,
        &request(
            U,
            json!({}),
            json!({}),
            json!({"lifetimeInMinutes": 600, "isUsableOnce": true}),
        ),
    )
    .await;
    assert_eq!(reason(&r), Some(Reason::GraphRejected), "{:?}", r.outcome);
    assert!(!r.transient && r.config_fault.is_none());
    let detail = r.detail();
    assert!(
        detail.contains("Invalid LifetimeInMinutes specified. The valid range between 60 and 480."),
        "{detail}"
    );
    assert!(r.pass.is_none());
    assert!(sim.issued_passes().is_empty());
    assert!(sim.tap_state(U).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tap_permission_alone_issues_a_pass_and_without_it_nothing_is_issued() {
    const U: &str = "least@contoso.com";
    let sim = sim_with(&[U]).await;
    assert!(sim.set_app_roles(TENANT, CLIENT_ID, &["UserAuthMethod-TAP.ReadWrite.All"]));
    let client = client(&sim);
    client.check_features(&[]).await.expect("token");
    sim.reset_stats();
    let r = apply(&client, &request(U, json!({}), json!({}), tap60())).await;
    assert_eq!(r.outcome, Ok(Outcome::Created), "{}", r.detail());
    assert!(r.config_fault.is_none());
    let pass = r.pass.as_ref().expect("a pass");
    assert_eq!(
        Some(pass.value.expose()),
        issued_for(&sim, U).last().map(String::as_str)
    );
    // Two reads: the policy (refused: no Policy.Read.AuthenticationMethod, which is optional)
    // and the user's pass. A phone read would be refused too (no UserAuthenticationMethod.*)
    // and would have ended the row.
    let st = sim.stats();
    assert_eq!((st.gets, st.posts), (2, 1), "{st:?}");
    assert_eq!(st.forbidden, 1, "only the policy read: {st:?}");

    // Another app, which may read passes but not issue them: a configuration fault before the
    // user is touched.
    const V: &str = "nopass@contoso.com";
    sim.add_user(SeedUser::new(V));
    assert!(sim.set_app_roles(
        TENANT,
        CLIENT_ID,
        &[
            "UserAuthMethod-TAP.Read.All",
            "UserAuthenticationMethod.Read.All",
            "User.Read.All",
            "Policy.Read.AuthenticationMethod",
        ],
    ));
    let reader = client_for(&sim, &pem_secret(), test_options(4));
    let before = sim.issued_passes().len();
    sim.reset_stats();
    let r = apply(&reader, &request(V, json!({}), json!({}), tap60())).await;
    assert_eq!(
        reason(&r),
        Some(Reason::ConfigurationFault),
        "{:?}",
        r.outcome
    );
    assert!(r.pass.is_none());
    match &r.config_fault {
        Some(ConfigFault::MissingPermission { grant, .. }) => {
            assert_eq!(*grant, "UserAuthMethod-TAP.ReadWrite.All")
        }
        other => panic!("not a missing permission: {other:?}"),
    }
    assert!(
        r.detail().contains("UserAuthMethod-TAP.ReadWrite.All"),
        "{}",
        r.detail()
    );
    assert_eq!(sim.issued_passes().len(), before);
    assert!(sim.tap_state(V).is_none());
    assert_eq!(sim.stats().requests, 0, "the user is not touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_pass_id_is_replaced_and_any_other_pass_is_kept() {
    const EARLIER: &str = "earlier@contoso.com";
    const LATER: &str = "later@contoso.com";
    let sim = sim_with(&[EARLIER, LATER]).await;
    let client = client(&sim);
    // EARLIER's pass is someone else's; LATER's is the one an earlier try of this request
    // made and recorded (the worker's pending record), never delivered.
    let earlier_id = give_pass(&client, &sim, EARLIER).await;
    let later_id = give_pass(&client, &sim, LATER).await;
    let opts = ApplyOptions {
        own_pass_id: Some(&later_id),
    };

    let before = sim.issued_passes().len();
    let r = apply_with(
        &client,
        &request(LATER, json!({}), json!({}), tap60()),
        &opts,
    )
    .await;
    assert_eq!(r.outcome, Ok(Outcome::Updated), "{}", r.detail());
    assert_eq!(
        decision(&r, Subject::TemporaryAccessPass),
        Some(Outcome::Updated)
    );
    let pass = r.pass.as_ref().expect("a new pass");
    assert_eq!(sim.issued_passes().len(), before + 1);
    assert_eq!(
        Some(pass.value.expose()),
        issued_for(&sim, LATER).last().map(String::as_str)
    );
    let now = sim.tap_state(LATER).expect("a pass");
    assert_ne!(now.id, later_id);
    assert_eq!(now.id, pass.method_id);
    assert_eq!(tap_writes(&sim, LATER), ["create", "delete", "create"]);

    let r = apply_with(
        &client,
        &request(EARLIER, json!({}), json!({}), tap60()),
        &opts,
    )
    .await;
    assert_eq!(reason(&r), Some(Reason::TapExists), "{:?}", r.outcome);
    assert!(r.pass.is_none());
    assert_eq!(sim.issued_passes().len(), before + 1);
    assert_eq!(sim.tap_state(EARLIER).map(|t| t.id), Some(earlier_id));
    assert_eq!(tap_writes(&sim, EARLIER), ["create"]);
}
