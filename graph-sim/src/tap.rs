//! Temporary Access Pass: the pass a user holds, how Graph shows it, the request that creates
//! one, the policy that governs it, and Graph's refusals. Pure: the directory holds the state.
//!
//! Sources, besides those cited where they apply:
//! - the resource: https://learn.microsoft.com/en-us/graph/api/resources/temporaryaccesspassauthenticationmethod
//!   (`temporaryAccessPass`: "Returned only on creation of a new
//!   temporaryAccessPassAuthenticationMethod object; Hidden in subsequent read operations and
//!   returned as `null` with GET"; `methodUsabilityReason`: "`EnabledByPolicy`,
//!   `DisabledByPolicy`, `Expired`, `NotYetValid`, `OneTimeUsed`");
//! - the create: https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods
//!   (every property optional; "If not specified, the **defaultLifetimeInMinutes** setting in the
//!   Temporary Access Pass authentication method policy is applied"; without `startDateTime` "the
//!   Temporary Access Pass is available to use immediately after it's created"; the example
//!   answers a start three days ahead with `isUsable: false`, `NotYetValid`);
//! - the policy: https://learn.microsoft.com/en-us/graph/api/resources/temporaryaccesspassauthenticationmethodconfiguration
//!   and its get page (example object and include target `all_users`).

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use crate::config::TapPolicy;
use crate::model::TapState;
use crate::response::GraphError;

/// The id of the group the policy's include target names when [`TapPolicy::included`] lists
/// users (the simulator's own group: `GET /groups/{id}/members` lists those users).
pub const TAP_POLICY_GROUP_ID: &str = "5f0f9d1c-7a3e-4c62-9b1d-3e8a6c2f4b17";

/// The characters a pass is drawn from: letters, digits and punctuation, as Graph's values
/// mix them (`+drkzqAD` in the create page's example; `TAPRocks!` in the PowerShell example of
/// MicrosoftDocs/azure-docs articles/active-directory/authentication/howto-authentication-temporary-access-pass.md).
/// Which punctuation Graph draws from is not documented: this set is an assumption.
const PASS_CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%&*+=?@";

/// How far in the past a `startDateTime` may lie before it is refused. Graph refuses a start
/// in the past (see [`start_in_past`]) but no source says with what tolerance; a client that
/// sends "now" must not fail on a clock a little behind, so five minutes are allowed
/// (assumption).
pub(crate) const START_SKEW_SECS: i64 = 300;

/// When seeded passes ([`crate::MethodKind::TemporaryAccessPass`]) were created and started:
/// they are listed as expired ones, as the listing of every method showed them before passes
/// could be created.
const SEEDED_AT: &str = "2026-01-05T09:30:00Z";

/// A fresh random pass of `len` characters.
pub(crate) fn new_value(len: u32) -> String {
    (0..len.max(1))
        .map(|_| char::from(PASS_CHARS[rand::random_range(0..PASS_CHARS.len())]))
        .collect()
}

/// A pass a user holds.
#[derive(Debug, Clone)]
pub(crate) struct Tap {
    pub(crate) id: String,
    pub(crate) created: DateTime<Utc>,
    pub(crate) start: DateTime<Utc>,
    pub(crate) lifetime: u32,
    pub(crate) usable_once: bool,
}

fn to_system_time(t: DateTime<Utc>) -> std::time::SystemTime {
    std::time::SystemTime::from(t)
}

impl Tap {
    /// The pass a seed's [`crate::MethodKind::TemporaryAccessPass`] stands for: expired long ago.
    pub(crate) fn seeded(id: String) -> Tap {
        let at = DateTime::parse_from_rfc3339(SEEDED_AT)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        Tap {
            id,
            created: at,
            start: at,
            lifetime: 480,
            usable_once: true,
        }
    }

    /// `isUsable` and `methodUsabilityReason` at `now`. `allowed`: the policy is enabled and
    /// targets the user ("only those included in the policy can sign-in with it", the how-to
    /// page above); otherwise `DisabledByPolicy` (the reason's name; that Graph gives it to a pass
    /// whose user left the policy is an assumption). No sign-in is simulated, so never
    /// `OneTimeUsed`.
    pub(crate) fn usability(&self, now: DateTime<Utc>, allowed: bool) -> (bool, &'static str) {
        let end = self.start + chrono::Duration::minutes(i64::from(self.lifetime));
        if !allowed {
            (false, "DisabledByPolicy")
        } else if now < self.start {
            (false, "NotYetValid")
        } else if now >= end {
            (false, "Expired")
        } else {
            (true, "EnabledByPolicy")
        }
    }

    /// The temporaryAccessPassAuthenticationMethod object; `value` only in a create's answer
    /// (`null` otherwise). Times as Graph writes them: `createdDateTime` with a fraction
    /// (`2022-06-02T16:21:09.765173Z`), `startDateTime` as set (`2022-06-05T00:00:00Z`).
    pub(crate) fn json(&self, value: Option<&str>, now: DateTime<Utc>, allowed: bool) -> Value {
        let (usable, reason) = self.usability(now, allowed);
        json!({
            "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
            "id": self.id,
            "temporaryAccessPass": value,
            "createdDateTime": self.created.to_rfc3339_opts(SecondsFormat::Micros, true),
            "startDateTime": self.start.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "lifetimeInMinutes": self.lifetime,
            "isUsableOnce": self.usable_once,
            "isUsable": usable,
            "methodUsabilityReason": reason,
        })
    }

    pub(crate) fn state(&self) -> TapState {
        TapState {
            id: self.id.clone(),
            created: to_system_time(self.created),
            start: to_system_time(self.start),
            lifetime_in_minutes: self.lifetime,
            is_usable_once: self.usable_once,
        }
    }
}

/// What a create asks for; `None`: not in the body.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TapRequest {
    pub(crate) start: Option<DateTime<Utc>>,
    pub(crate) lifetime: Option<i64>,
    pub(crate) usable_once: Option<bool>,
}

/// An ISO 8601 date and time: RFC 3339 with an offset, or without one (taken as UTC, as the
/// how-to page's PowerShell example sends `'2021-03-11 06:00:00'` and is answered with a start
/// at 6:00).
pub(crate) fn parse_start(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s.trim(), f).ok())
        .map(|n| Utc.from_utc_datetime(&n))
}

/// Reads the create body: a JSON object whose `startDateTime`, `lifetimeInMinutes` and
/// `isUsableOnce` are all optional; a property of the wrong type is a 400, as on the other
/// routes. Other properties are ignored.
pub(crate) fn parse_request(body: &Value) -> Result<TapRequest, GraphError> {
    let mut req = TapRequest::default();
    match body.get("startDateTime") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            req.start = Some(parse_start(s).ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Invalid value '{s}' for property 'startDateTime': expected an ISO 8601 date and time."
                ))
            })?);
        }
        Some(_) => {
            return Err(GraphError::bad_request(
                "Property 'startDateTime' must be a string.",
            ))
        }
    }
    match body.get("lifetimeInMinutes") {
        None | Some(Value::Null) => {}
        // Int32 on the resource page.
        Some(v) => {
            let n = v
                .as_i64()
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or_else(|| {
                    GraphError::bad_request("Property 'lifetimeInMinutes' must be an integer.")
                })?;
            req.lifetime = Some(n);
        }
    }
    match body.get("isUsableOnce") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => req.usable_once = Some(*b),
        Some(_) => {
            return Err(GraphError::bad_request(
                "Property 'isUsableOnce' must be a boolean.",
            ))
        }
    }
    Ok(req)
}

/// Whether the policy's include targets hold the user (`id`, `upn`).
pub(crate) fn in_scope(policy: &TapPolicy, id: &str, upn: &str) -> bool {
    match &policy.included {
        None => true,
        Some(users) => users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(id) || u.eq_ignore_ascii_case(upn)),
    }
}

/// The policy disabled, or the user outside its include targets: "Unable to add Temporary
/// Access Pass. - Converged UserCredentialPolicy does not allow creating or updating this
/// authentication method. AuthMethodType [TemporaryAccessPass]." for a user outside the policy,
/// "Only adding the user to a group that is included in the policy remediates the problem"
/// (MicrosoftDocs/azure-docs#111778, the portal quoting Graph's text after "Unable to add
/// Temporary Access Pass. - "). A disabled method gets the same text here: it speaks of the
/// policy not allowing the method at all, and no source shows another one (assumption). No
/// source shows the status or code either: 400 `badRequest` is assumed, as Graph answers the
/// other policy refusals of this create (lifetime range, one-time use: below).
pub(crate) fn policy_refusal() -> GraphError {
    GraphError::bad_request(
        "Converged UserCredentialPolicy does not allow creating or updating this authentication method. AuthMethodType [TemporaryAccessPass].",
    )
}

/// A lifetime outside the policy's range: 400 `badRequest` "Invalid LifetimeInMinutes
/// specified. The valid range between 60 and 480." (microsoftgraph/microsoft-graph-docs PR
/// #12187, the full error body Graph answered for 481 minutes), with the policy's bounds.
pub(crate) fn lifetime_out_of_range(min: u32, max: u32) -> GraphError {
    GraphError::bad_request(format!(
        "Invalid LifetimeInMinutes specified. The valid range between {min} and {max}."
    ))
}

/// A reusable pass asked of a policy that allows only one-time ones: "HTTP 400 badRequest --
/// Invalid IsUsableOnce specified. Tenant Policy does not allow multiple use temporary access
/// pass method." (KnudsenMorten/PIM4EntraPS, its TAP request helper, "measured live ...
/// 2026-09-12", and engine/_shared/PIM-FailureCatalog.ps1, rule `TAP-TENANT-POLICY`).
pub(crate) fn reusable_refused() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "badRequest",
        "Invalid IsUsableOnce specified. Tenant Policy does not allow multiple use temporary access pass method.",
    )
}

/// A `startDateTime` in the past: "Invalid StartDateTime specified. It can not be a time in
/// the past." (microsoftgraph/msgraph-sdk-dotnet#2724, the text Graph answered). The issue
/// quotes the message only: 400 `badRequest` is assumed, as for the lifetime.
pub(crate) fn start_in_past() -> GraphError {
    GraphError::bad_request("Invalid StartDateTime specified. It can not be a time in the past.")
}

/// The temporaryAccessPassAuthenticationMethodConfiguration object (the get page's example
/// shape). `includeTargets`: the target `all_users`, or the group
/// [`TAP_POLICY_GROUP_ID`] of [`TapPolicy::included`]; `isRegistrationRequired` false as in the
/// example. No exclude targets are simulated.
pub(crate) fn policy_json(p: &TapPolicy) -> Value {
    let target = if p.included.is_some() {
        TAP_POLICY_GROUP_ID
    } else {
        "all_users"
    };
    json!({
        "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration",
        "id": "TemporaryAccessPass",
        "state": if p.enabled { "enabled" } else { "disabled" },
        "defaultLifetimeInMinutes": p.default_lifetime,
        "defaultLength": p.default_length,
        "minimumLifetimeInMinutes": p.min_lifetime,
        "maximumLifetimeInMinutes": p.max_lifetime,
        "isUsableOnce": p.is_usable_once,
        "includeTargets": [{
            "targetType": "group",
            "id": target,
            "isRegistrationRequired": false,
        }],
        "excludeTargets": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_random_and_of_the_policy_length() {
        let a = new_value(8);
        let b = new_value(8);
        assert_eq!(a.chars().count(), 8);
        assert_eq!(new_value(48).len(), 48);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| PASS_CHARS.contains(&c)));
    }

    #[test]
    fn usability_follows_time_and_policy() {
        let now = Utc::now();
        let mut t = Tap::seeded("x".into());
        assert_eq!(t.usability(now, true), (false, "Expired"));
        t.start = now + chrono::Duration::minutes(5);
        assert_eq!(t.usability(now, true), (false, "NotYetValid"));
        t.start = now - chrono::Duration::minutes(5);
        assert_eq!(t.usability(now, true), (true, "EnabledByPolicy"));
        assert_eq!(t.usability(now, false), (false, "DisabledByPolicy"));
        let v = t.json(None, now, true);
        assert_eq!(v["temporaryAccessPass"], Value::Null);
        assert_eq!(v["isUsable"], true);
    }

    #[test]
    fn starts_parse_with_or_without_an_offset() {
        let want = Utc.with_ymd_and_hms(2022, 6, 5, 0, 0, 0).unwrap();
        assert_eq!(parse_start("2022-06-05T00:00:00.000Z"), Some(want));
        assert_eq!(parse_start("2022-06-05T02:00:00+02:00"), Some(want));
        assert_eq!(parse_start("2022-06-05 00:00:00"), Some(want));
        assert_eq!(parse_start("tomorrow"), None);
    }

    #[test]
    fn requests_check_types() {
        let r = parse_request(&json!({"lifetimeInMinutes": 90, "isUsableOnce": true}))
            .expect("request");
        assert_eq!(
            (r.lifetime, r.usable_once, r.start),
            (Some(90), Some(true), None)
        );
        assert!(parse_request(&json!({"lifetimeInMinutes": "60"})).is_err());
        assert!(parse_request(&json!({"lifetimeInMinutes": 1.5})).is_err());
        assert!(parse_request(&json!({"isUsableOnce": "yes"})).is_err());
        assert!(parse_request(&json!({"startDateTime": 5})).is_err());
        assert!(parse_request(&json!({"startDateTime": "soon"})).is_err());
    }
}
