//! `/users/{id}/authentication/temporaryAccessPassMethods` (v1.0) and the tenant's Temporary
//! Access Pass policy.
//!
//! Graph keeps one pass per user: creating one while another is usable replaces it ("the
//! previous Temporary Access Pass will be deleted, and a new Temporary Access Pass will be
//! created", https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods).
//! So the engine lists first and decides (`tap_exists` unless `forcedUpdate`), and a retried
//! create is harmless: the last pass Graph answered with is the one that works.
//!
//! The pass value comes back once, in the create answer. It is read into a
//! [`crate::tap::PassValue`] here and nowhere else; parse errors of that answer never quote it.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::graph::client::{Api, GraphClient, Target};
use crate::graph::error::GraphError;
use crate::graph::phone_methods::parse_collection;
use crate::tap::{ExistingPass, IssuedPass, PassValue, TapPolicy, TapRequest};

/// One listed `temporaryAccessPassAuthenticationMethod` (the value is `null` when listed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TapMethod {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub start_date_time: Option<String>,
    #[serde(default)]
    pub lifetime_in_minutes: Option<u32>,
    #[serde(default)]
    pub is_usable: Option<bool>,
    /// `EnabledByPolicy`, `NotYetValid`, `Expired`, `OneTimeUsed`, ...
    #[serde(default)]
    pub method_usability_reason: Option<String>,
}

impl TapMethod {
    /// A pass that is over (expired, or used once) does not stop a new one: Graph keeps one
    /// pass "usable within its specified lifetime" per user.
    pub fn is_spent(&self) -> bool {
        self.method_usability_reason.as_deref().is_some_and(|r| {
            r.eq_ignore_ascii_case("Expired") || r.eq_ignore_ascii_case("OneTimeUsed")
        })
    }

    pub fn existing(&self) -> ExistingPass {
        ExistingPass {
            id: self.id.clone(),
            created: self
                .created_date_time
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// The issued pass out of a create answer. Nothing of the answer is quoted in an error.
fn issued(v: Option<Value>, req: &TapRequest) -> Result<IssuedPass, GraphError> {
    let v = v.ok_or_else(|| {
        GraphError::InvalidResponse("temporaryAccessPassMethods: empty create answer".into())
    })?;
    let value = v
        .get("temporaryAccessPass")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            GraphError::InvalidResponse(
                "temporaryAccessPassMethods: the create answer holds no temporaryAccessPass".into(),
            )
        })?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(IssuedPass {
        method_id: text("id").unwrap_or_default(),
        value: PassValue::new(value.to_string()),
        start: text("startDateTime").or_else(|| req.start_date_time.clone()),
        lifetime_in_minutes: v
            .get("lifetimeInMinutes")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(req.lifetime_in_minutes),
        is_usable_once: v
            .get("isUsableOnce")
            .and_then(Value::as_bool)
            .unwrap_or(req.is_usable_once),
        created: text("createdDateTime"),
    })
}

/// The policy's path (v1.0).
const POLICY_PATH: &str =
    "policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass";

impl GraphClient {
    /// The user's pass, if any (one GET).
    pub async fn list_tap_methods(&self, user: &str) -> Result<Vec<TapMethod>, GraphError> {
        let path = format!(
            "{}/temporaryAccessPassMethods",
            GraphClient::auth_path(user)?
        );
        let body = self
            .send(Method::GET, Api::V1, path, None, Target::User)
            .await?;
        parse_collection(body, "temporaryAccessPassMethods")
    }

    /// Creates a pass. Graph replaces a pass the user still has.
    pub async fn create_tap(&self, user: &str, req: &TapRequest) -> Result<IssuedPass, GraphError> {
        let path = format!(
            "{}/temporaryAccessPassMethods",
            GraphClient::auth_path(user)?
        );
        let mut body = json!({
            "lifetimeInMinutes": req.lifetime_in_minutes,
            "isUsableOnce": req.is_usable_once,
        });
        if let (Some(start), Some(o)) = (&req.start_date_time, body.as_object_mut()) {
            o.insert("startDateTime".into(), Value::String(start.clone()));
        }
        let resp = self
            .send(Method::POST, Api::V1, path, Some(body), Target::User)
            .await?;
        issued(resp, req)
    }

    pub async fn delete_tap(&self, user: &str, id: &str) -> Result<(), GraphError> {
        let path = format!(
            "{}/temporaryAccessPassMethods/{}",
            GraphClient::auth_path(user)?,
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        );
        self.send(Method::DELETE, Api::V1, path, None, Target::Method)
            .await
            .map(|_| ())
    }

    /// The tenant's Temporary Access Pass policy, read once per client. `Ok(None)` when the app
    /// may not read policies (`Policy.Read.AuthenticationMethod` is optional: Graph's answer
    /// for each user then says whether the policy allows a pass). A transient failure is not
    /// kept: the next call reads again.
    pub async fn tap_policy(&self) -> Result<Option<TapPolicy>, GraphError> {
        self.tap_policy
            .get_or_try_init(|| async {
                match self
                    .send(Method::GET, Api::V1, POLICY_PATH.to_string(), None, Target::Method)
                    .await
                {
                    Ok(Some(v)) => Ok(Some(TapPolicy::from_graph(&v))),
                    Ok(None) => Ok(None),
                    Err(GraphError::Configuration(c)) => {
                        tracing::warn!(
                            why = %c,
                            "cannot read the Temporary Access Pass policy; each user's pass is tried and Graph's answer says whether the policy allows it"
                        );
                        Ok(None)
                    }
                    Err(e) if e.is_transient() => Err(e),
                    Err(e) => {
                        tracing::warn!(error = %e, "unexpected answer to the Temporary Access Pass policy read; passes are tried user by user");
                        Ok(None)
                    }
                }
            })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_create_answer_gives_the_pass_and_errors_never_quote_it() {
        let req = TapRequest {
            lifetime_in_minutes: 60,
            start_date_time: None,
            is_usable_once: true,
        };
        let p = issued(
            Some(
                json!({"id": "m1", "temporaryAccessPass": "Xy#12345", "lifetimeInMinutes": 60,
                        "isUsableOnce": true, "startDateTime": "2027-01-04T07:00:00Z"}),
            ),
            &req,
        )
        .unwrap();
        assert_eq!(p.value.expose(), "Xy#12345");
        assert_eq!(p.start.as_deref(), Some("2027-01-04T07:00:00Z"));
        let e = issued(
            Some(json!({"id": "m1", "temporaryAccessPass": 12345678})),
            &req,
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("12345678"), "{e}");
        let spent = TapMethod {
            id: "m".into(),
            created_date_time: Some("2026-12-01T10:00:00Z".into()),
            start_date_time: None,
            lifetime_in_minutes: Some(60),
            is_usable: Some(false),
            method_usability_reason: Some("Expired".into()),
        };
        assert!(spent.is_spent());
        assert!(spent.existing().created.is_some());
    }
}
