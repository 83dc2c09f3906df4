//! Temporary Access Pass: the pass methods, the policy that governs them, and their permissions.

mod common;

use common::*;

use graph_sim::{MethodKind, SeedUser, SimConfig, TapPolicy, ThrottleModel, TAP_POLICY_GROUP_ID};
use reqwest::Method;
use serde_json::{json, Value};

const ADA: &str = "ada@contoso.com";
const BOB: &str = "bob@contoso.com";
const TAP_TYPE: &str = "#microsoft.graph.temporaryAccessPassAuthenticationMethod";
const POLICY: &str =
    "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass";
const POLICY_REFUSAL: &str = "Converged UserCredentialPolicy does not allow creating or updating this authentication method. AuthMethodType [TemporaryAccessPass].";

fn taps(upn: &str) -> String {
    format!("/v1.0/users/{upn}/authentication/temporaryAccessPassMethods")
}

fn tap(upn: &str, id: &str) -> String {
    format!("/v1.0/users/{upn}/authentication/temporaryAccessPassMethods/{id}")
}

async fn env() -> Env {
    Env::with_users(
        SimConfig {
            // A window holds exactly what was spent (a bucket refills while the test runs).
            throttle_model: ThrottleModel::SlidingWindow,
            ..SimConfig::default()
        },
        vec![SeedUser::new(ADA), SeedUser::new(BOB)],
    )
    .await
}

/// Sends with another token; returns status and JSON body (`Value::Null` when empty).
async fn call_as(
    env: &Env,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = env.client.request(method, env.url(path)).bearer_auth(token);
    req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json")
    };
    (status, json)
}

/// A token for the fixture app carrying exactly `roles`.
async fn token_with(env: &Env, roles: &[&str]) -> String {
    assert!(env.sim.set_app_roles(TENANT, CLIENT_ID, roles));
    env.fetch_token().await
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_created_pass_is_answered_once_and_listed_without_its_value() {
    let env = env().await;
    let (status, body) = env.call(Method::GET, &taps(ADA), None).await;
    assert_eq!((status, body), (200, json!({"value": []})));

    let (status, created) = env.call(Method::POST, &taps(ADA), Some(json!({}))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["@odata.type"], TAP_TYPE);
    let value = created["temporaryAccessPass"].as_str().expect("value");
    assert_eq!(value.chars().count(), 8, "the policy's defaultLength");
    // The policy's defaults, usable at once.
    assert_eq!(created["lifetimeInMinutes"], 60);
    assert_eq!(created["isUsableOnce"], false);
    assert_eq!(created["isUsable"], true);
    assert_eq!(created["methodUsabilityReason"], "EnabledByPolicy");
    assert!(created["createdDateTime"].is_string() && created["startDateTime"].is_string());
    let id = created["id"].as_str().expect("id").to_string();

    let (status, list) = env.call(Method::GET, &taps(ADA), None).await;
    assert_eq!(status, 200);
    let listed = list["value"].as_array().expect("value");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["@odata.type"], TAP_TYPE);
    assert_eq!(listed[0]["temporaryAccessPass"], Value::Null);
    assert_eq!(listed[0]["lifetimeInMinutes"], 60);
    assert_eq!(listed[0]["isUsable"], true);
    let (status, one) = env.call(Method::GET, &tap(ADA, &id), None).await;
    assert_eq!(status, 200);
    assert_eq!(one, listed[0]);
    let (status, body) = env.call(Method::GET, &tap(ADA, "nope"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "itemNotFound");

    // Every method lists it too, the same way; the value appears nowhere else.
    let (_, every) = env
        .call(
            Method::GET,
            &format!("/v1.0/users/{ADA}/authentication/methods"),
            None,
        )
        .await;
    let in_every = every["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|m| m["@odata.type"] == TAP_TYPE)
        .expect("listed in every method");
    assert_eq!(in_every, &listed[0]);
    assert!(!every.to_string().contains(value));
    assert!(!list.to_string().contains(value));

    // The inspection API.
    let issued = env.sim.issued_passes();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        (
            issued[0].upn.as_str(),
            issued[0].method_id.as_str(),
            issued[0].value.as_str()
        ),
        (ADA, id.as_str(), value)
    );
    let state = env.sim.tap_state(ADA).expect("a pass");
    assert_eq!(
        (
            state.id.as_str(),
            state.lifetime_in_minutes,
            state.is_usable_once
        ),
        (id.as_str(), 60, false)
    );
    assert!(env
        .sim
        .user(ADA)
        .expect("ada")
        .methods
        .contains(&MethodKind::TemporaryAccessPass));

    // A write like the phone creates (2 RU and one write; 5 GETs besides), logged without the
    // value.
    let stats = env.sim.stats();
    assert_eq!(stats.writes, 1);
    assert_eq!(stats.ru_used, 2 + 5);
    let log = env.sim.write_log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].method.as_str(), log[0].op.as_str(), &log[0].value),
        ("temporaryAccessPass", "create", &None)
    );

    // /beta serves the same routes.
    let (status, beta) = env
        .call(
            Method::GET,
            &format!("/beta/users/{ADA}/authentication/temporaryAccessPassMethods"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(beta["value"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_second_pass_replaces_the_first() {
    let env = env().await;
    let (s1, first) = env.call(Method::POST, &taps(ADA), Some(json!({}))).await;
    let (s2, second) = env
        .call(
            Method::POST,
            &taps(ADA),
            Some(json!({"lifetimeInMinutes": 120})),
        )
        .await;
    assert_eq!((s1, s2), (201, 201), "{first} {second}");
    assert_ne!(first["id"], second["id"]);
    assert_ne!(first["temporaryAccessPass"], second["temporaryAccessPass"]);

    let (_, list) = env.call(Method::GET, &taps(ADA), None).await;
    let listed = list["value"].as_array().expect("value");
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["id"], second["id"]);
    assert_eq!(listed[0]["lifetimeInMinutes"], 120);
    let first_id = first["id"].as_str().expect("id");
    let (status, _) = env.call(Method::GET, &tap(ADA, first_id), None).await;
    assert_eq!(status, 404, "the first pass was deleted");

    let issued = env.sim.issued_passes();
    let values: Vec<&str> = issued.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(
        values,
        [
            first["temporaryAccessPass"].as_str().expect("first"),
            second["temporaryAccessPass"].as_str().expect("second"),
        ]
    );
    assert_eq!(issued[0].method_id, first_id);
    assert!(issued[0].created <= issued[1].created);
    let kinds = env.sim.user(ADA).expect("ada").methods;
    assert_eq!(kinds, [MethodKind::TemporaryAccessPass]);
}

#[tokio::test]
async fn a_seeded_pass_is_expired_and_replaced_by_a_new_one() {
    let env = Env::with_users(
        SimConfig::default(),
        vec![SeedUser {
            methods: vec![MethodKind::TemporaryAccessPass, MethodKind::Authenticator],
            ..SeedUser::new(ADA)
        }],
    )
    .await;
    let (_, list) = env.call(Method::GET, &taps(ADA), None).await;
    assert_eq!(list["value"][0]["methodUsabilityReason"], "Expired");
    assert_eq!(list["value"][0]["isUsable"], false);
    let (status, created) = env.call(Method::POST, &taps(ADA), Some(json!({}))).await;
    assert_eq!(status, 201);
    let (_, list) = env.call(Method::GET, &taps(ADA), None).await;
    assert_eq!(list["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["value"][0]["id"], created["id"]);
    // The methods keep their order.
    assert_eq!(
        env.sim.user(ADA).expect("ada").methods,
        [MethodKind::TemporaryAccessPass, MethodKind::Authenticator]
    );
}

#[tokio::test]
async fn deleting_a_pass() {
    let env = env().await;
    let (_, created) = env.call(Method::POST, &taps(ADA), Some(json!({}))).await;
    let id = created["id"].as_str().expect("id");
    let (status, body) = env.call(Method::DELETE, &tap(ADA, id), None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, list) = env.call(Method::GET, &taps(ADA), None).await;
    assert_eq!(list, json!({"value": []}));
    let (status, body) = env.call(Method::DELETE, &tap(ADA, id), None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "itemNotFound");
    assert_eq!(env.sim.tap_state(ADA), None);
    assert!(!env
        .sim
        .user(ADA)
        .expect("ada")
        .methods
        .contains(&MethodKind::TemporaryAccessPass));
    let ops: Vec<String> = env.sim.write_log().iter().map(|w| w.op.clone()).collect();
    assert_eq!(ops, ["create", "delete"]);
    // All three are writes, the refused delete included (everything routed is charged).
    assert_eq!(env.sim.stats().writes, 3);
    assert_eq!(
        env.sim.issued_passes().len(),
        1,
        "deleted passes stay listed"
    );
}

#[tokio::test]
async fn a_lifetime_outside_the_policy_is_refused_in_graphs_words() {
    let env = env().await;
    for lifetime in [481, 59, 10] {
        let (status, body) = env
            .call(
                Method::POST,
                &taps(ADA),
                Some(json!({"lifetimeInMinutes": lifetime})),
            )
            .await;
        assert_eq!(status, 400, "{lifetime}: {body}");
        assert_eq!(body["error"]["code"], "badRequest");
        assert_eq!(
            message(&body),
            "Invalid LifetimeInMinutes specified. The valid range between 60 and 480."
        );
    }
    assert!(env.sim.issued_passes().is_empty());
    let (status, body) = env
        .call(
            Method::POST,
            &taps(ADA),
            Some(json!({"lifetimeInMinutes": 480, "isUsableOnce": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (&body["lifetimeInMinutes"], &body["isUsableOnce"]),
        (&json!(480), &json!(true))
    );
    // The bounds are the policy's.
    env.sim.set_tap_policy(TapPolicy {
        min_lifetime: 10,
        max_lifetime: 20,
        default_lifetime: 15,
        ..TapPolicy::default()
    });
    let (status, body) = env
        .call(
            Method::POST,
            &taps(BOB),
            Some(json!({"lifetimeInMinutes": 60})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        message(&body),
        "Invalid LifetimeInMinutes specified. The valid range between 10 and 20."
    );
    let (_, body) = env.call(Method::POST, &taps(BOB), Some(json!({}))).await;
    assert_eq!(body["lifetimeInMinutes"], 15, "the policy's default");
    assert_eq!(env.sim.issued_passes().len(), 2);
}

#[tokio::test]
async fn a_disabled_policy_refuses_passes() {
    let env = env().await;
    let (_, created) = env.call(Method::POST, &taps(ADA), Some(json!({}))).await;
    env.sim.set_tap_policy(TapPolicy::disabled());
    let (status, body) = env.call(Method::POST, &taps(BOB), Some(json!({}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "badRequest");
    assert_eq!(message(&body), POLICY_REFUSAL);
    assert_eq!(env.sim.issued_passes().len(), 1);
    assert_eq!(env.sim.tap_state(BOB), None);
    // The pass already issued is shown as disabled.
    let (_, list) = env.call(Method::GET, &taps(ADA), None).await;
    assert_eq!(list["value"][0]["id"], created["id"]);
    assert_eq!(list["value"][0]["isUsable"], false);
    assert_eq!(
        list["value"][0]["methodUsabilityReason"],
        "DisabledByPolicy"
    );
    let (status, policy) = env.call(Method::GET, POLICY, None).await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["state"], "disabled");
}

#[tokio::test]
async fn users_outside_the_include_targets_get_no_pass() {
    let env = env().await;
    env.sim.set_tap_policy(TapPolicy {
        included: Some(vec![ADA.to_uppercase()]),
        ..TapPolicy::default()
    });
    let (status, body) = env.call(Method::POST, &taps(BOB), Some(json!({}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "badRequest");
    assert_eq!(message(&body), POLICY_REFUSAL);
    let (status, _) = env.call(Method::POST, &taps(ADA), Some(json!({}))).await;
    assert_eq!(status, 201);
    let issued = env.sim.issued_passes();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].upn, ADA);
    // The policy names the group holding the included users.
    let (_, policy) = env.call(Method::GET, POLICY, None).await;
    assert_eq!(
        policy["includeTargets"],
        json!([{"targetType": "group", "id": TAP_POLICY_GROUP_ID, "isRegistrationRequired": false}])
    );
    let token = token_with(&env, &["GroupMember.Read.All"]).await;
    let (status, members) = call_as(
        &env,
        &token,
        Method::GET,
        &format!("/v1.0/groups/{TAP_POLICY_GROUP_ID}/members"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(members["value"][0]["userPrincipalName"], ADA);
}

#[tokio::test]
async fn a_one_time_policy_refuses_reusable_passes() {
    let env = env().await;
    env.sim.set_tap_policy(TapPolicy {
        is_usable_once: true,
        ..TapPolicy::default()
    });
    let (status, body) = env
        .call(
            Method::POST,
            &taps(ADA),
            Some(json!({"isUsableOnce": false})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "badRequest");
    assert_eq!(
        message(&body),
        "Invalid IsUsableOnce specified. Tenant Policy does not allow multiple use temporary access pass method."
    );
    assert!(env.sim.issued_passes().is_empty());
    // Without the property the policy decides; asking for one-time use is fine.
    let (status, body) = env.call(Method::POST, &taps(ADA), Some(json!({}))).await;
    assert_eq!((status, &body["isUsableOnce"]), (201, &json!(true)));
    let (status, body) = env
        .call(
            Method::POST,
            &taps(BOB),
            Some(json!({"isUsableOnce": true})),
        )
        .await;
    assert_eq!((status, &body["isUsableOnce"]), (201, &json!(true)));
}

#[tokio::test]
async fn start_times_in_the_past_are_refused_and_future_ones_wait() {
    let env = env().await;
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let (status, body) = env
        .call(
            Method::POST,
            &taps(ADA),
            Some(json!({"startDateTime": past.to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "badRequest");
    assert_eq!(
        message(&body),
        "Invalid StartDateTime specified. It can not be a time in the past."
    );
    assert!(env.sim.issued_passes().is_empty());
    // "Now" from a client whose clock is a little behind is fine.
    let now = chrono::Utc::now() - chrono::Duration::seconds(30);
    let (status, _) = env
        .call(
            Method::POST,
            &taps(ADA),
            Some(json!({"startDateTime": now.to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = env
        .call(
            Method::POST,
            &taps(BOB),
            Some(json!({"startDateTime": "2099-06-05T00:00:00.000Z"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["startDateTime"], "2099-06-05T00:00:00Z");
    assert_eq!(body["isUsable"], false);
    assert_eq!(body["methodUsabilityReason"], "NotYetValid");
}

#[tokio::test]
async fn malformed_requests_are_bad_requests() {
    let env = env().await;
    for body in [
        json!({"lifetimeInMinutes": "60"}),
        json!({"lifetimeInMinutes": 90.5}),
        json!({"isUsableOnce": "no"}),
        json!({"startDateTime": "next week"}),
        json!([1, 2]),
    ] {
        let (status, answer) = env.call(Method::POST, &taps(ADA), Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "badRequest");
    }
    let resp = env
        .client
        .post(env.url(&taps(ADA)))
        .bearer_auth(&env.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let (status, body) = env
        .call(Method::POST, &taps("nobody@contoso.com"), Some(json!({})))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert!(env.sim.issued_passes().is_empty());
    assert!(env.sim.write_log().is_empty());
}

#[tokio::test]
async fn the_policy_shows_the_portal_defaults() {
    let env = env().await;
    for path in [
        POLICY.to_string(),
        POLICY.replace("/TemporaryAccessPass", "/temporaryAccessPass"),
        POLICY.replace("/v1.0/", "/beta/"),
        "/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations('TemporaryAccessPass')".into(),
    ] {
        let (status, mut body) = env.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let context = body
            .as_object_mut()
            .and_then(|o| o.remove("@odata.context"))
            .expect("@odata.context");
        assert!(context
            .as_str()
            .unwrap_or("")
            .ends_with("$metadata#authenticationMethodConfigurations/$entity"));
        assert_eq!(
            body,
            json!({
                "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration",
                "id": "TemporaryAccessPass",
                "state": "enabled",
                "defaultLifetimeInMinutes": 60,
                "defaultLength": 8,
                "minimumLifetimeInMinutes": 60,
                "maximumLifetimeInMinutes": 480,
                "isUsableOnce": false,
                "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": false}],
                "excludeTargets": [],
            }),
            "{path}"
        );
    }
    let (status, _) = env.call(Method::PATCH, POLICY, Some(json!({}))).await;
    assert_eq!(status, 405);
    // A longer defaultLength makes longer passes.
    env.sim.set_tap_policy(TapPolicy {
        default_length: 24,
        ..TapPolicy::default()
    });
    let (_, created) = env.call(Method::POST, &taps(ADA), Some(json!({}))).await;
    assert_eq!(
        created["temporaryAccessPass"]
            .as_str()
            .map(|v| v.chars().count()),
        Some(24)
    );
}

#[tokio::test]
async fn tap_routes_check_the_tokens_roles() {
    let env = env().await;
    let (_, seeded) = env.call(Method::POST, &taps(BOB), Some(json!({}))).await;
    let bob_pass = tap(BOB, seeded["id"].as_str().expect("id"));

    // Phone and email permissions do not cover passes or the policy.
    let other = token_with(
        &env,
        &[
            "UserAuthMethod-Phone.ReadWrite.All",
            "UserAuthMethod-Email.ReadWrite.All",
            "User.Read.All",
        ],
    )
    .await;
    for (method, path, body) in [
        (Method::GET, taps(ADA), None),
        (Method::POST, taps(ADA), Some(json!({}))),
        (Method::GET, bob_pass.clone(), None),
        (Method::DELETE, bob_pass.clone(), None),
        (Method::GET, POLICY.to_string(), None),
    ] {
        let (status, body) = call_as(&env, &other, method.clone(), &path, body).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "accessDenied");
        assert_eq!(message(&body), "Request Authorization failed");
    }
    assert_eq!(env.sim.issued_passes().len(), 1);
    assert!(env.sim.tap_state(BOB).is_some());

    // The TAP permission alone is enough for the passes, not for the policy.
    let tap_only = token_with(&env, &["UserAuthMethod-TAP.ReadWrite.All"]).await;
    let (status, body) = call_as(&env, &tap_only, Method::POST, &taps(ADA), Some(json!({}))).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = call_as(&env, &tap_only, Method::GET, &taps(ADA), None).await;
    assert_eq!(status, 200);
    let (status, _) = call_as(&env, &tap_only, Method::DELETE, &bob_pass, None).await;
    assert_eq!(status, 204);
    let (status, _) = call_as(&env, &tap_only, Method::GET, POLICY, None).await;
    assert_eq!(status, 403);

    // Reading passes does not allow creating them.
    let read_only = token_with(&env, &["UserAuthMethod-TAP.Read.All"]).await;
    let (status, _) = call_as(&env, &read_only, Method::GET, &taps(ADA), None).await;
    assert_eq!(status, 200);
    let (status, _) = call_as(&env, &read_only, Method::POST, &taps(ADA), Some(json!({}))).await;
    assert_eq!(status, 403);

    // The policy's permissions read the policy only.
    for role in [
        "Policy.Read.AuthenticationMethod",
        "Policy.Read.All",
        "Policy.ReadWrite.AuthenticationMethod",
    ] {
        let token = token_with(&env, &[role]).await;
        let (status, body) = call_as(&env, &token, Method::GET, POLICY, None).await;
        assert_eq!(status, 200, "{role}: {body}");
        let (status, _) = call_as(&env, &token, Method::GET, &taps(ADA), None).await;
        assert_eq!(status, 403, "{role} does not read passes");
    }
    assert_eq!(env.sim.issued_passes().len(), 2);
}
