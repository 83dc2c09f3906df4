//! The public, versioned queue message (`"v": 1`) and the DLQ entry.
//!
//! Other systems (onboarding workflows, HR events) send [`Request`]s straight to the work queue;
//! its JSON Schema is `schema/request.v1.schema.json` at the repository root. A method field that is
//! absent is not managed at all; `null` means "empty cell" (removed only with `forcedRemoval`).

use crate::reason::Reason;
use serde::{Deserialize, Deserializer, Serialize};

/// The only message version this build understands.
pub const MESSAGE_VERSION: u32 = 1;

/// Where a request comes from: an ingested S3 object, or another producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Job {
    S3 {
        bucket: String,
        key: String,
        etag: String,
    },
    Producer {
        producer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

impl Job {
    /// A short human label for logs and reports.
    pub fn label(&self) -> String {
        match self {
            Job::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
            Job::Producer { producer, id } => match id {
                Some(id) => format!("{producer}/{id}"),
                None => producer.clone(),
            },
        }
    }
}

/// `enable` / `disable` SMS sign-in on the mobile method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsSignIn {
    Enable,
    Disable,
}

/// The user's preferred method for secondary authentication (beta `signInPreferences`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DefaultMethod {
    Sms,
    VoiceMobile,
    VoiceAlternateMobile,
    VoiceOffice,
    Push,
    Oath,
}

impl DefaultMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultMethod::Sms => "sms",
            DefaultMethod::VoiceMobile => "voiceMobile",
            DefaultMethod::VoiceAlternateMobile => "voiceAlternateMobile",
            DefaultMethod::VoiceOffice => "voiceOffice",
            DefaultMethod::Push => "push",
            DefaultMethod::Oath => "oath",
        }
    }

    /// Case-insensitive parse of a CSV cell.
    pub fn parse(s: &str) -> Option<DefaultMethod> {
        let all = [
            DefaultMethod::Sms,
            DefaultMethod::VoiceMobile,
            DefaultMethod::VoiceAlternateMobile,
            DefaultMethod::VoiceOffice,
            DefaultMethod::Push,
            DefaultMethod::Oath,
        ];
        all.into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// Desired state of one method: `None` = not managed (column absent), `Some(None)` = empty cell,
/// `Some(Some(v))` = this normalised value.
pub type Desired = Option<Option<String>>;

fn double_option<'de, D>(d: D) -> Result<Option<Option<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<String>::deserialize(d).map(Some)
}

/// Desired phone and email methods of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Methods {
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub mobile: Desired,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub alternate_mobile: Desired,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub office: Desired,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Desired,
}

/// Policy flags of one request (SPEC section 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Replace an existing, different value.
    #[serde(default)]
    pub forced_update: bool,
    /// An empty (`null`) method removes the existing one.
    #[serde(default)]
    pub forced_removal: bool,
}

/// One user's request: what the ingest sends per row and what other producers may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Request {
    /// Message version, always [`MESSAGE_VERSION`].
    pub v: u32,
    pub job: Job,
    /// 1-based data row number in the source file (the header is row 1, so data starts at 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// UPN or object id, already validated.
    pub user: String,
    #[serde(default)]
    pub methods: Methods,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_sign_in: Option<SmsSignIn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_method: Option<DefaultMethod>,
}

/// What goes into the DLQ (body JSON); `reason` and `detail` are also message attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DlqEntry {
    pub v: u32,
    pub reason: Reason,
    /// Human text; phone numbers in it are masked.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// The CSV column the reason is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The original request: the queue message body as received (worker), or the CSV row as a
    /// header -> cell object (ingest).
    pub request: serde_json::Value,
    /// Which function rejected it: `ingest` or `worker`.
    pub stage: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_null_and_value_are_three_states() {
        let r: Request = serde_json::from_str(
            r#"{"v":1,"job":{"producer":"hr"},"user":"a@b.c","methods":{"mobile":"+1 5555551234","office":null}}"#,
        )
        .unwrap();
        assert_eq!(r.methods.mobile, Some(Some("+1 5555551234".into())));
        assert_eq!(r.methods.office, Some(None));
        assert_eq!(r.methods.email, None);
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["methods"]["office"], serde_json::Value::Null);
        assert!(back["methods"].get("email").is_none());
        let again: Request = serde_json::from_value(back).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<Request>(
            r#"{"v":1,"job":{"producer":"hr"},"user":"a@b.c","mobil":"x"}"#,
        );
        assert!(err.is_err());
    }

    #[test]
    fn s3_job_round_trips() {
        let j = Job::S3 {
            bucket: "b".into(),
            key: "incoming/x.csv".into(),
            etag: "\"e\"".into(),
        };
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(serde_json::from_value::<Job>(v).unwrap(), j);
        assert_eq!(
            DefaultMethod::parse("VOICEmobile"),
            Some(DefaultMethod::VoiceMobile)
        );
    }
}
