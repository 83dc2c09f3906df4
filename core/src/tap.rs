//! Temporary Access Pass (README, "Temporary Access Pass"): what a row or message asks for, the
//! tenant's policy, and the pass Graph issued.
//!
//! The pass value is a secret that Graph returns once, on creation. It lives in a [`PassValue`],
//! which has no `Display` and no `Serialize`, and whose `Debug` is redacted: no log line, DLQ
//! detail, ledger item or results row can print it by accident. Only a delivery (the CLI's
//! passes file, the AWS pass delivery) reads it, through [`PassValue::expose`].

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Shortest lifetime Graph accepts, in minutes (the policy may narrow it).
pub const MIN_LIFETIME_MINUTES: u32 = 10;
/// Longest lifetime Graph accepts, in minutes (30 days; the policy may narrow it).
pub const MAX_LIFETIME_MINUTES: u32 = 43_200;
/// The lifetimes a row or message may ask for.
pub const LIFETIME_MINUTES: std::ops::RangeInclusive<u32> =
    MIN_LIFETIME_MINUTES..=MAX_LIFETIME_MINUTES;

fn usable_once_default() -> bool {
    true
}

/// The pass a row asks for: the v1 message's optional `temporaryAccessPass`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TapRequest {
    /// 10-43200 minutes (the tenant's policy may allow less).
    pub lifetime_in_minutes: u32,
    /// When the pass becomes usable, RFC 3339 in UTC (`2027-01-04T07:00:00Z`); absent: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<String>,
    /// One sign-in only (default true).
    #[serde(default = "usable_once_default")]
    pub is_usable_once: bool,
}

impl TapRequest {
    /// The schema's constraints that serde does not check.
    pub fn validate(&self) -> Result<(), String> {
        check_lifetime(self.lifetime_in_minutes)?;
        if let Some(s) = &self.start_date_time {
            parse_start(s)?;
        }
        Ok(())
    }

    /// `temporaryAccessPass:create(480 min, once)`: safe for logs.
    pub fn label(&self) -> String {
        format!(
            "temporaryAccessPass:create({} min{}{})",
            self.lifetime_in_minutes,
            if self.is_usable_once { ", once" } else { "" },
            self.start_date_time
                .as_deref()
                .map(|s| format!(", from {s}"))
                .unwrap_or_default()
        )
    }
}

fn check_lifetime(m: u32) -> Result<u32, String> {
    if LIFETIME_MINUTES.contains(&m) {
        Ok(m)
    } else {
        Err(format!(
            "a Temporary Access Pass lifetime is {MIN_LIFETIME_MINUTES} to {MAX_LIFETIME_MINUTES} minutes (30 days), not {m}"
        ))
    }
}

/// A `TapLifetimeMinutes` cell: whole minutes, 10-43200.
pub fn parse_lifetime(cell: &str) -> Result<u32, String> {
    let m: u32 = cell.trim().parse().map_err(|_| {
        format!(
            "'{}' is not a whole number of minutes (10-43200)",
            cell.trim()
        )
    })?;
    check_lifetime(m)
}

/// A `TapStart` cell or `startDateTime`: ISO 8601 / RFC 3339 with a time zone
/// (`2027-01-04T08:00:00+01:00`, `2027-01-04 07:00Z`), normalised to UTC. A time without a zone is
/// refused: the product never guesses one.
pub fn parse_start(cell: &str) -> Result<String, String> {
    let s = cell.trim();
    let parsed = DateTime::parse_from_rfc3339(s).or_else(|e| {
        // `2027-01-04T08:00+01:00`: the seconds left out, as spreadsheets write it.
        let b = s.as_bytes();
        if b.len() > 16 && s.is_char_boundary(16) && b[13] == b':' && b[16] != b':' {
            DateTime::parse_from_rfc3339(&format!("{}:00{}", &s[..16], &s[16..]))
        } else {
            Err(e)
        }
    });
    match parsed {
        Ok(t) => Ok(t
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Secs, true)),
        Err(_) => Err(format!(
            "'{}' is not a date and time with a time zone (ISO 8601, e.g. 2027-01-04T08:00:00+01:00 or 2027-01-04T07:00:00Z)",
            cell.trim()
        )),
    }
}

/// A pass value: a secret. No `Display`, no `Serialize`, a redacted `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PassValue(String);

impl PassValue {
    pub fn new(value: String) -> PassValue {
        PassValue(value)
    }

    /// The value itself, for the one place it is delivered to.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PassValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PassValue(<redacted>)")
    }
}

/// A pass Graph created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedPass {
    /// The method id (for a later delete; not a secret).
    pub method_id: String,
    pub value: PassValue,
    /// When it becomes usable (Graph's `startDateTime`), RFC 3339.
    pub start: Option<String>,
    pub lifetime_in_minutes: u32,
    pub is_usable_once: bool,
    /// Graph's `createdDateTime`.
    pub created: Option<String>,
}

/// The columns of a passes file (the CLI's, and each pass file of the AWS delivery).
pub const PASS_FILE_HEADER: [&str; 5] = [
    "UPN",
    "TemporaryAccessPass",
    "StartDateTime",
    "LifetimeInMinutes",
    "IsUsableOnce",
];

impl IssuedPass {
    /// The pass as a row of [`PASS_FILE_HEADER`] (the value in clear: for a delivery only).
    pub fn file_row(&self, user: &str) -> [String; 5] {
        [
            user.to_string(),
            self.value.expose().to_string(),
            self.start.clone().unwrap_or_default(),
            self.lifetime_in_minutes.to_string(),
            self.is_usable_once.to_string(),
        ]
    }
}

/// A pass the user already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingPass {
    pub id: String,
    pub created: Option<DateTime<Utc>>,
}

/// The tenant's Temporary Access Pass policy (`authenticationMethodConfigurations/TemporaryAccessPass`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPolicy {
    pub enabled: bool,
    pub minimum_lifetime: Option<u32>,
    pub maximum_lifetime: Option<u32>,
    pub default_lifetime: Option<u32>,
    /// Every pass of the tenant is one-time.
    pub usable_once_only: bool,
}

impl TapPolicy {
    /// `state` and the lifetimes of Graph's `temporaryAccessPassAuthenticationMethodConfiguration`.
    pub fn from_graph(v: &serde_json::Value) -> TapPolicy {
        let num = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        TapPolicy {
            enabled: v
                .get("state")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("enabled")),
            minimum_lifetime: num("minimumLifetimeInMinutes"),
            maximum_lifetime: num("maximumLifetimeInMinutes"),
            default_lifetime: num("defaultLifetimeInMinutes"),
            usable_once_only: v
                .get("isUsableOnce")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// `60-480 minutes` for messages.
    pub fn range(&self) -> String {
        match (self.minimum_lifetime, self.maximum_lifetime) {
            (Some(a), Some(b)) => format!("{a}-{b} minutes"),
            _ => "unknown".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_and_starts() {
        assert_eq!(parse_lifetime(" 480 "), Ok(480));
        assert!(parse_lifetime("9").unwrap_err().contains("not 9"));
        assert!(parse_lifetime("43201").is_err());
        assert!(parse_lifetime("8h").unwrap_err().contains("whole number"));
        assert_eq!(
            parse_start("2027-01-04T08:00:00+01:00").as_deref(),
            Ok("2027-01-04T07:00:00Z")
        );
        assert_eq!(
            parse_start("2027-01-04 07:30Z").as_deref(),
            Ok("2027-01-04T07:30:00Z")
        );
        assert_eq!(
            parse_start("2027-01-04T08:00+01:00").as_deref(),
            Ok("2027-01-04T07:00:00Z")
        );
        assert!(parse_start("2027-01-04T08:00:00")
            .unwrap_err()
            .contains("time zone"));
        assert!(parse_start("2027-01-04").is_err());
        assert!(parse_start("tomorrow").is_err());
    }

    #[test]
    fn pass_values_do_not_print() {
        let p = IssuedPass {
            method_id: "m".into(),
            value: PassValue::new("Secret-Pass-1".into()),
            start: None,
            lifetime_in_minutes: 60,
            is_usable_once: true,
            created: None,
        };
        let shown = format!("{p:?} {:?}", p.value);
        assert!(!shown.contains("Secret-Pass-1"), "{shown}");
        assert_eq!(p.value.expose(), "Secret-Pass-1");
    }

    #[test]
    fn message_field_defaults_to_one_use() {
        let t: TapRequest = serde_json::from_str(r#"{"lifetimeInMinutes": 60}"#).unwrap();
        assert!(t.is_usable_once);
        assert!(t.validate().is_ok());
        let t: TapRequest =
            serde_json::from_str(r#"{"lifetimeInMinutes": 5, "startDateTime": "x"}"#).unwrap();
        assert!(t.validate().is_err());
        assert!(
            serde_json::from_str::<TapRequest>(r#"{"lifetimeInMinutes": 60, "pass": "x"}"#)
                .is_err()
        );
    }
}
