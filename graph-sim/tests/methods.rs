//! Phone methods, email methods, sign-in preferences and users over HTTP, with Graph's rules.

mod common;

use common::*;
use std::time::Duration;

use graph_sim::{
    SeedUser, SimConfig, SmsConflictAnswer, ALTERNATE_MOBILE_METHOD_ID, EMAIL_METHOD_ID,
    MOBILE_METHOD_ID, OFFICE_METHOD_ID,
};
use reqwest::Method;
use serde_json::{json, Value};

const ADA: &str = "ada@contoso.com";

async fn env_with(users: Vec<SeedUser>) -> Env {
    Env::with_users(SimConfig::default(), users).await
}

#[tokio::test]
async fn phone_method_lifecycle() {
    let env = env_with(vec![SeedUser::new(ADA)]).await;
    let (status, body) = env.call(Method::GET, &phones(ADA), None).await;
    assert_eq!((status, body), (200, json!({"value": []})));

    let (status, body) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550100", "mobile"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"id": MOBILE_METHOD_ID, "phoneNumber": "+1 2065550100", "phoneType": "mobile", "smsSignInState": "notAllowedByPolicy"})
    );
    let (status, body) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550199x42", "office"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], OFFICE_METHOD_ID);
    assert_eq!(body["smsSignInState"], "notSupported");

    let (status, body) = env.call(Method::GET, &phones(ADA), None).await;
    assert_eq!(status, 200);
    let types: Vec<&str> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|m| m["phoneType"].as_str())
        .collect();
    assert_eq!(types, ["mobile", "office"]);

    let (status, _) = env
        .call(
            Method::PATCH,
            &phone(ADA, MOBILE_METHOD_ID),
            phone_body("+44 7700900123", "mobile"),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = env
        .call(Method::GET, &phone(ADA, MOBILE_METHOD_ID), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["phoneNumber"], "+44 7700900123");

    let (status, _) = env
        .call(Method::DELETE, &phone(ADA, OFFICE_METHOD_ID), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = env
        .call(Method::GET, &phone(ADA, OFFICE_METHOD_ID), None)
        .await;
    assert_eq!(status, 404, "{body}");

    let user = env.sim.user(ADA).expect("user");
    assert_eq!(user.mobile.as_deref(), Some("+44 7700900123"));
    assert_eq!(user.office, None);
    assert_eq!(user.sms_sign_in.as_deref(), Some("notAllowedByPolicy"));
}

#[tokio::test]
async fn invalid_phone_numbers_are_bad_requests() {
    let env = env_with(vec![SeedUser::new(ADA)]).await;
    for bad in [
        "2065550100",
        "+12065550100",
        "+1 (206) 555-0100",
        "+1 206 555 0100",
        "+1 2065550100x",
    ] {
        let (status, body) = env
            .call(Method::POST, &phones(ADA), phone_body(bad, "mobile"))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "badRequest");
        let msg = body["error"]["message"].as_str().unwrap_or("");
        assert!(msg.starts_with("invalidPhoneNumber"), "{msg}");
    }
    let (status, _) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550100", "pager"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(env.sim.user(ADA).expect("user").mobile, None);
    assert!(env.sim.write_log().is_empty());
}

#[tokio::test]
async fn one_method_per_type_and_phone_type_cannot_change() {
    let env = env_with(vec![SeedUser {
        mobile: Some("+1 2065550100".into()),
        ..SeedUser::new(ADA)
    }])
    .await;
    let (status, body) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550111", "mobile"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "badRequest");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("already exists"));

    let (status, body) = env
        .call(
            Method::PATCH,
            &phone(ADA, MOBILE_METHOD_ID),
            phone_body("+1 2065550100", "office"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        env.sim.user(ADA).expect("user").mobile.as_deref(),
        Some("+1 2065550100")
    );
    assert_eq!(env.sim.user(ADA).expect("user").office, None);
}

#[tokio::test]
async fn alternate_mobile_needs_a_mobile() {
    let env = env_with(vec![SeedUser::new(ADA)]).await;
    let (status, body) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550101", "alternateMobile"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "badRequest");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("requires a mobile"));

    env.call(
        Method::POST,
        &phones(ADA),
        phone_body("+1 2065550100", "mobile"),
    )
    .await;
    let (status, body) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550101", "alternateMobile"),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["id"], ALTERNATE_MOBILE_METHOD_ID);

    let (status, body) = env
        .call(Method::DELETE, &phone(ADA, MOBILE_METHOD_ID), None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(env.sim.user(ADA).expect("user").mobile.is_some());
}

#[tokio::test]
async fn default_method_blocks_deleting_its_phone() {
    let cases = [
        ("sms", MOBILE_METHOD_ID),
        ("voiceMobile", MOBILE_METHOD_ID),
        ("voiceAlternateMobile", ALTERNATE_MOBILE_METHOD_ID),
        ("voiceOffice", OFFICE_METHOD_ID),
    ];
    let users = cases
        .iter()
        .enumerate()
        .map(|(i, (default, _))| SeedUser {
            mobile: Some(format!("+1 20655501{i:02}")),
            office: Some("+1 2065550199".into()),
            default_method: Some((*default).into()),
            ..SeedUser::new(format!("u{i}@contoso.com"))
        })
        .collect();
    let env = env_with(users).await;
    for (i, (default, method_id)) in cases.iter().enumerate() {
        let upn = format!("u{i}@contoso.com");
        if *method_id == ALTERNATE_MOBILE_METHOD_ID {
            let (status, _) = env
                .call(
                    Method::POST,
                    &phones(&upn),
                    phone_body("+1 2065550177", "alternateMobile"),
                )
                .await;
            assert_eq!(status, 201);
        }
        let (status, body) = env
            .call(Method::DELETE, &phone(&upn, method_id), None)
            .await;
        assert_eq!(status, 400, "{default}: {body}");
        assert_eq!(body["error"]["code"], "badRequest");
        let msg = body["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains("default"), "{default}: {msg}");
    }
    // A default on another phone does not block: voiceOffice user may delete nothing but office;
    // the sms user may delete the office phone.
    let (status, _) = env
        .call(
            Method::DELETE,
            &phone("u0@contoso.com", OFFICE_METHOD_ID),
            None,
        )
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn sign_in_preferences_set_the_default_method() {
    let env = env_with(vec![SeedUser {
        mobile: Some("+1 2065550100".into()),
        ..SeedUser::new(ADA)
    }])
    .await;
    let prefs = format!("/beta/users/{ADA}/authentication/signInPreferences");
    let (status, _) = env
        .call(
            Method::PATCH,
            &prefs,
            Some(json!({"userPreferredMethodForSecondaryAuthentication": "sms"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = env.call(Method::GET, &prefs, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["userPreferredMethodForSecondaryAuthentication"], "sms");
    assert_eq!(
        env.sim.user(ADA).expect("user").default_method.as_deref(),
        Some("sms")
    );

    let (status, body) = env
        .call(Method::DELETE, &phone(ADA, MOBILE_METHOD_ID), None)
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("default"));

    // voiceOffice needs an office phone.
    let (status, _) = env
        .call(
            Method::PATCH,
            &prefs,
            Some(json!({"userPreferredMethodForSecondaryAuthentication": "voiceOffice"})),
        )
        .await;
    assert_eq!(status, 400);
    // Not on v1.0.
    let (status, _) = env
        .call(
            Method::GET,
            &format!("/v1.0/users/{ADA}/authentication/signInPreferences"),
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn sms_sign_in_uniqueness() {
    let shared = "+1 2065550100";
    let cfg = SimConfig {
        sms_sign_in_policy: true,
        ..SimConfig::default()
    };
    let env = Env::with_users(
        cfg,
        vec![
            SeedUser {
                mobile: Some(shared.into()),
                sms_sign_in_enabled: true,
                ..SeedUser::new("first@contoso.com")
            },
            SeedUser {
                mobile: Some(shared.into()),
                ..SeedUser::new("second@contoso.com")
            },
        ],
    )
    .await;
    assert_eq!(
        env.sim
            .user("second@contoso.com")
            .and_then(|u| u.sms_sign_in)
            .as_deref(),
        Some("notEnabled")
    );
    assert_eq!(
        env.sim
            .user("first@contoso.com")
            .and_then(|u| u.sms_sign_in)
            .as_deref(),
        Some("ready")
    );
    let enable = |upn: &str| {
        format!("/v1.0/users/{upn}/authentication/phoneMethods/{MOBILE_METHOD_ID}/enableSmsSignIn")
    };
    let (status, body) = env
        .call(Method::POST, &enable("second@contoso.com"), None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "phoneNumberNotUnique");

    let disable = format!(
        "/v1.0/users/first@contoso.com/authentication/phoneMethods/{MOBILE_METHOD_ID}/disableSmsSignIn"
    );
    let (status, _) = env.call(Method::POST, &disable, None).await;
    assert_eq!(status, 204);
    let (status, _) = env
        .call(Method::POST, &enable("second@contoso.com"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        env.sim
            .user("second@contoso.com")
            .and_then(|u| u.sms_sign_in)
            .as_deref(),
        Some("ready")
    );
    assert_eq!(
        env.sim
            .user("first@contoso.com")
            .and_then(|u| u.sms_sign_in)
            .as_deref(),
        Some("notEnabled")
    );
}

#[tokio::test]
async fn sms_sign_in_policy_enables_new_mobiles_unless_taken() {
    let cfg = SimConfig {
        sms_sign_in_policy: true,
        ..SimConfig::default()
    };
    let env = Env::with_users(
        cfg,
        vec![
            SeedUser::new("a@contoso.com"),
            SeedUser::new("b@contoso.com"),
        ],
    )
    .await;
    let (status, body) = env
        .call(
            Method::POST,
            &phones("a@contoso.com"),
            phone_body("+1 2065550100", "mobile"),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["smsSignInState"], "ready");
    let (status, body) = env
        .call(
            Method::POST,
            &phones("b@contoso.com"),
            phone_body("+1 2065550100", "mobile"),
        )
        .await;
    // 409, and the method is written anyway.
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "phoneNumberNotUnique");
    let b = env.sim.user("b@contoso.com").expect("b");
    assert_eq!(b.mobile.as_deref(), Some("+1 2065550100"));
    assert_eq!(b.sms_sign_in.as_deref(), Some("phoneNumberNotUnique"));
    // The other reported shape: 201 carrying the state.
    env.sim.set_sms_conflict_answer(SmsConflictAnswer::Accepted);
    env.sim.add_user(SeedUser::new("c@contoso.com"));
    let (status, body) = env
        .call(
            Method::POST,
            &phones("c@contoso.com"),
            phone_body("+1 2065550100", "mobile"),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["smsSignInState"], "phoneNumberNotUnique");
}

#[tokio::test]
async fn a_bodyless_post_needs_a_content_length() {
    let cfg = SimConfig {
        sms_sign_in_policy: true,
        ..SimConfig::default()
    };
    let env = Env::with_users(
        cfg,
        vec![SeedUser {
            mobile: Some("+1 2065550100".into()),
            ..SeedUser::new(ADA)
        }],
    )
    .await;
    let enable =
        format!("/v1.0/users/{ADA}/authentication/phoneMethods/{MOBILE_METHOD_ID}/enableSmsSignIn");
    // What reqwest sends for `.post(url)` without a body: no Content-Length at all.
    let resp = env
        .client
        .post(env.url(&enable))
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 411);
    assert!(resp.text().await.expect("body").contains("HTTP Error 411"));
    assert_eq!(env.sim.stats().length_required, 1);
    assert_eq!(
        env.sim.user(ADA).and_then(|u| u.sms_sign_in).as_deref(),
        Some("notEnabled"),
        "nothing applied"
    );
    // With `Content-Length: 0` it goes through.
    let (status, _) = env.call(Method::POST, &enable, None).await;
    assert_eq!(status, 204);
    assert_eq!(
        env.sim.user(ADA).and_then(|u| u.sms_sign_in).as_deref(),
        Some("ready")
    );
}

#[tokio::test]
async fn routes_check_the_tokens_roles() {
    let env = env_with(vec![SeedUser::new(ADA)]).await;
    assert!(env
        .sim
        .set_app_roles(TENANT, CLIENT_ID, &["UserAuthMethod-Email.ReadWrite.All"]));
    // Tokens keep the roles they were issued with: the next token has only the email role.
    let token = env.fetch_token().await;
    let get = |path: String| {
        let env = &env;
        let token = token.clone();
        async move {
            let resp = env
                .client
                .get(env.url(&path))
                .bearer_auth(&token)
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };
    let (status, body) = get(phones(ADA)).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "accessDenied");
    assert_eq!(body["error"]["message"], "Request Authorization failed");
    let (status, body) = get("/v1.0/users".into()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    let (status, _) = get(format!("/v1.0/users/{ADA}/authentication/emailMethods")).await;
    assert_eq!(status, 200);
    assert_eq!(env.sim.stats().forbidden, 2);
    // Consent granted: a new token sees it, the old one does not.
    env.sim
        .set_app_roles(TENANT, CLIENT_ID, &["UserAuthMethod-Phone.ReadWrite.All"]);
    let (status, _) = get(phones(ADA)).await;
    assert_eq!(status, 403);
    let fresh = env.fetch_token().await;
    let resp = env
        .client
        .get(env.url(&phones(ADA)))
        .bearer_auth(&fresh)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn a_new_user_answers_404_until_replicated() {
    let env = env_with(vec![SeedUser::new(ADA)]).await;
    assert!(env.sim.hide_user_for(ADA, Duration::from_millis(300)));
    let (status, body) = env.call(Method::GET, &phones(ADA), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (status, _) = env.call(Method::GET, &phones(ADA), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn error_texts_quote_the_number_when_asked_to() {
    let env = env_with(vec![SeedUser::new(ADA)]).await;
    let (status, body) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 555-555-1234", "mobile"),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("555-555-1234"),
        "{body}"
    );
    env.sim.set_echo_numbers_in_errors(true);
    let (status, body) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 555-555-1234", "mobile"),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("+1 555-555-1234"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_user_is_404_and_ids_resolve_by_upn_or_object_id() {
    let env = env_with(vec![SeedUser {
        id: Some("0f0e0d0c-0000-4000-8000-000000000001".into()),
        ..SeedUser::new("o'neil#EXT#@contoso.com")
    }])
    .await;
    let (status, body) = env
        .call(Method::GET, &phones("nobody@contoso.com"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("nobody@contoso.com"));

    let (status, _) = env
        .call(Method::GET, &phones("O'Neil%23EXT%23%40Contoso.com"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = env
        .call(
            Method::GET,
            &phones("0F0E0D0C-0000-4000-8000-000000000001"),
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn auto_created_users() {
    let cfg = SimConfig {
        auto_create_users: true,
        ..SimConfig::default()
    };
    let env = Env::start(cfg).await;
    let (status, _) = env
        .call(
            Method::POST,
            &phones("new@contoso.com"),
            phone_body("+1 2065550100", "mobile"),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(env.sim.user_count(), 1);
    assert_eq!(
        env.sim
            .user("new@contoso.com")
            .and_then(|u| u.mobile)
            .as_deref(),
        Some("+1 2065550100")
    );
}

#[tokio::test]
async fn email_method_lifecycle() {
    let env = env_with(vec![SeedUser::new(ADA)]).await;
    let emails = format!("/v1.0/users/{ADA}/authentication/emailMethods");
    let email = format!("{emails}/{EMAIL_METHOD_ID}");
    let (status, body) = env
        .call(
            Method::POST,
            &emails,
            Some(json!({"emailAddress": "ada@example.org"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        body,
        json!({"id": EMAIL_METHOD_ID, "emailAddress": "ada@example.org"})
    );
    let (status, _) = env
        .call(
            Method::POST,
            &emails,
            Some(json!({"emailAddress": "other@example.org"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = env
        .call(
            Method::PATCH,
            &email,
            Some(json!({"emailAddress": "not-an-email"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = env
        .call(
            Method::PATCH,
            &email,
            Some(json!({"emailAddress": "ada2@example.org"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = env.call(Method::GET, &emails, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"][0]["emailAddress"], "ada2@example.org");
    let (status, _) = env.call(Method::DELETE, &email, None).await;
    assert_eq!(status, 204);
    let (status, _) = env.call(Method::GET, &email, None).await;
    assert_eq!(status, 404);
    assert_eq!(env.sim.user(ADA).expect("user").email, None);
}

#[tokio::test]
async fn users_are_listed_in_pages() {
    let users: Vec<SeedUser> = (0..5)
        .map(|i| SeedUser::new(format!("u{i}@contoso.com")))
        .collect();
    let env = env_with(users).await;
    let mut url = env.url("/v1.0/users?$select=id,userPrincipalName&$top=2");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let resp = env
            .client
            .get(&url)
            .bearer_auth(&env.token)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200);
        let body: serde_json::Value = resp.json().await.expect("json");
        let page = body["value"].as_array().expect("value");
        assert!(page.len() <= 2);
        seen.extend(
            page.iter()
                .filter_map(|u| u["userPrincipalName"].as_str().map(String::from)),
        );
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    let want: Vec<String> = (0..5).map(|i| format!("u{i}@contoso.com")).collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn batch_runs_each_request() {
    let env = env_with(vec![SeedUser::new(ADA)]).await;
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": format!("/users/{ADA}/authentication/phoneMethods"),
         "headers": {"Content-Type": "application/json"},
         "body": {"phoneNumber": "+1 2065550100", "phoneType": "mobile"}},
        {"id": "2", "method": "POST", "url": format!("/users/{ADA}/authentication/phoneMethods"),
         "headers": {"Content-Type": "application/json"},
         "body": {"phoneNumber": "+1 2065550101", "phoneType": "alternateMobile"}},
        {"id": "3", "method": "GET", "url": "/users/nobody@contoso.com/authentication/phoneMethods"},
    ]});
    let (status, body) = env.call(Method::POST, "/v1.0/$batch", Some(batch)).await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<(String, u64)> = body["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_string(),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("1".into(), 201), ("2".into(), 201), ("3".into(), 404)]
    );
    let user = env.sim.user(ADA).expect("user");
    assert_eq!(user.alternate_mobile.as_deref(), Some("+1 2065550101"));
    assert_eq!(env.sim.stats().batches, 1);
    assert_eq!(env.sim.stats().requests, 3);

    let too_many: Vec<_> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{ADA}/authentication/phoneMethods")}))
        .collect();
    let (status, _) = env
        .call(
            Method::POST,
            "/v1.0/$batch",
            Some(json!({"requests": too_many})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_snapshot_seeds_a_new_simulator_with_the_same_users() {
    let env = env_with(vec![
        SeedUser {
            id: Some("00000000-0000-0000-0000-00000000000a".into()),
            mobile: Some("+31 612345678".into()),
            alternate_mobile: Some("+31 612345679".into()),
            office: Some("+31 201234567x12".into()),
            email: Some("ada@example.org".into()),
            default_method: Some("sms".into()),
            sms_sign_in_enabled: true,
            ..SeedUser::new(ADA)
        },
        SeedUser {
            mobile: Some("+1 2065550100".into()),
            ..SeedUser::new("plain@contoso.com")
        },
        SeedUser::new("empty@contoso.com"),
    ])
    .await;
    let before = env.sim.users();
    assert_eq!(
        before
            .iter()
            .find(|u| u.upn == ADA)
            .and_then(|u| u.sms_sign_in.as_deref()),
        Some("ready")
    );
    // Through JSON, as the command-line tool keeps it between runs.
    let saved = serde_json::to_string(&before).expect("serialise");
    let restored: Vec<graph_sim::UserState> = serde_json::from_str(&saved).expect("deserialise");
    let again = env_with(restored.into_iter().map(SeedUser::from).collect()).await;
    let mut after = again.sim.users();
    let mut before = before;
    before.sort_by(|a, b| a.upn.cmp(&b.upn));
    after.sort_by(|a, b| a.upn.cmp(&b.upn));
    assert_eq!(after, before);
}
