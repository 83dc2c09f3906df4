//! The public, versioned queue message (`"v": 1`) and the DLQ entry.
//!
//! Other systems (onboarding workflows, HR events) send [`Request`]s straight to the work queue;
//! its JSON Schema is `schema/request.v1.schema.json` at the repository root. A method field that is
//! absent is not managed at all; `null` means "empty cell" (removed only with `forcedRemoval`).

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
        /// Which upload of the object (two uploads of the same content have the same ETag):
        /// the ingest's run, for the job ledger.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<String>,
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

/// Policy flags of one request (README, "CSV format").
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
    /// Issue a Temporary Access Pass (optional; README, "Temporary Access Pass").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_access_pass: Option<crate::tap::TapRequest>,
    /// Where the worker delivers the pass: an SQS queue ARN, one of the deployment's
    /// `PassDeliveryQueueArns` (onboarding producers). Without it, a pass of an uploaded file
    /// goes to `passes/` in the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// An SQS queue ARN (`arn:PARTITION:sqs:REGION:ACCOUNT:NAME`).
pub fn is_queue_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sqs"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && (1..=80).contains(&parts[5].len())
        && parts[5]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Parses and checks a message body against the v1 schema. The error text is safe to log
/// (numbers masked).
pub fn parse_request(body: &str) -> Result<Request, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "the body is not JSON (line {} column {})",
            e.line(),
            e.column()
        )
    })?;
    let obj = v.as_object().ok_or("the body is not a JSON object")?;
    match obj.get("v") {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(MESSAGE_VERSION)) => {}
        Some(other) => {
            return Err(format!(
                "unsupported message version {}: this worker understands v {MESSAGE_VERSION}",
                crate::mask::mask_numbers_in_text(&other.to_string())
            ))
        }
        None => return Err("the message has no 'v' (version) field".into()),
    }
    let req: Request = serde_json::from_value(v).map_err(|e| {
        format!(
            "not a valid v1 request: {}",
            crate::mask::mask_numbers_in_text(&e.to_string())
        )
    })?;
    validate_request(&req)?;
    Ok(req)
}

/// A user id as a message must carry it: the ingest's rules ([`crate::user::validate_user`]) on
/// the exact value, 3 to 113 characters (the schema's bounds).
pub fn is_user_id(u: &str) -> bool {
    (3..=113).contains(&u.len()) && crate::user::validate_user(u).as_deref() == Ok(u)
}

/// The schema's constraints that serde does not check.
pub fn validate_request(req: &Request) -> Result<(), String> {
    if !is_user_id(&req.user) {
        return Err("'user' is neither a user principal name nor an object id".into());
    }
    if req.row.is_some_and(|r| r < 2) {
        return Err("'row' must be 2 or more (row 1 is the header)".into());
    }
    match &req.job {
        Job::S3 {
            bucket, key, etag, ..
        } => {
            if bucket.len() < 3 || key.is_empty() || etag.is_empty() {
                return Err("'job' needs a bucket (3+ characters), a key and an etag".into());
            }
        }
        Job::Producer { producer, id } => {
            if producer.is_empty() || id.as_deref().is_some_and(str::is_empty) {
                return Err("'job.producer' (and 'job.id' when given) must not be empty".into());
            }
        }
    }
    let phones = [
        ("mobile", &req.methods.mobile),
        ("alternateMobile", &req.methods.alternate_mobile),
        ("office", &req.methods.office),
    ];
    for (name, value) in phones {
        if let Some(Some(p)) = value {
            if !crate::phone::is_graph_form(p) {
                return Err(format!(
                    "'methods.{name}' is not in Graph's form +CC NUMBER[xEXT] ({})",
                    crate::mask::mask_phone(p)
                ));
            }
        }
    }
    if let Some(Some(e)) = &req.methods.email {
        if crate::email::validate_email(e).as_deref() != Ok(e.as_str()) {
            return Err("'methods.email' is not an email address".into());
        }
    }
    if let Some(t) = &req.temporary_access_pass {
        t.validate()
            .map_err(|e| format!("'temporaryAccessPass': {e}"))?;
    }
    if let Some(q) = &req.reply_to {
        if !is_queue_arn(q) {
            return Err(
                "'replyTo' is not an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)".into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: serde_json::Value) -> String {
        let mut v =
            serde_json::json!({"v": 1, "job": {"producer": "hr"}, "user": "a.b@contoso.com"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v.to_string()
    }

    #[test]
    fn parses_valid_and_rejects_invalid_messages() {
        assert!(parse_request(&body(
            serde_json::json!({"methods": {"mobile": "+1 5555551234x12", "email": "x@y.org"}})
        ))
        .is_ok());
        assert!(parse_request(&body(
            serde_json::json!({"user": "2f1c3a4b-1234-4abc-9def-0123456789ab"})
        ))
        .is_ok());
        let tap = parse_request(&body(serde_json::json!({"temporaryAccessPass": {
            "lifetimeInMinutes": 480, "startDateTime": "2027-01-04T07:00:00Z"}})))
        .unwrap();
        assert_eq!(
            tap.temporary_access_pass
                .map(|t| (t.lifetime_in_minutes, t.is_usable_once)),
            Some((480, true))
        );
        let bad = [
            ("{not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"job":{"producer":"x"},"user":"a@b.co"}"#, "no 'v'"),
            (
                r#"{"v":2,"job":{"producer":"x"},"user":"a@b.co"}"#,
                "version 2",
            ),
            (&body(serde_json::json!({"mobil": "x"})), "unknown field"),
            (&body(serde_json::json!({"user": "a/b@c.com"})), "'user'"),
            (&body(serde_json::json!({"user": "nobody"})), "'user'"),
            // The ingest's rules: a '#' (guest #EXT# UPNs) would change the Graph path.
            (
                &body(serde_json::json!({"user": "anna_fabrikam.com#EXT#@contoso.com"})),
                "'user'",
            ),
            (
                &body(serde_json::json!({"user": " a.b@contoso.com"})),
                "'user'",
            ),
            (
                &body(serde_json::json!({"methods": {"email": " x@y.org"}})),
                "methods.email",
            ),
            (
                &body(serde_json::json!({"methods": {"mobile": "+310612345678"}})),
                "methods.mobile",
            ),
            (
                &body(serde_json::json!({"methods": {"office": "0612345678"}})),
                "methods.office",
            ),
            (
                &body(serde_json::json!({"methods": {"email": "not an email"}})),
                "methods.email",
            ),
            (&body(serde_json::json!({"row": 1})), "'row'"),
            (
                &body(serde_json::json!({"smsSignIn": "maybe"})),
                "not a valid v1 request",
            ),
            (
                &body(serde_json::json!({"temporaryAccessPass": {"lifetimeInMinutes": 5}})),
                "'temporaryAccessPass'",
            ),
            (
                &body(
                    serde_json::json!({"temporaryAccessPass": {"lifetimeInMinutes": 60, "startDateTime": "2027-01-04T08:00:00"}}),
                ),
                "time zone",
            ),
            (
                &body(
                    serde_json::json!({"temporaryAccessPass": {"lifetimeInMinutes": 60, "value": "x"}}),
                ),
                "not a valid v1 request",
            ),
            (
                &body(
                    serde_json::json!({"replyTo": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"}),
                ),
                "'replyTo'",
            ),
        ];
        for (b, needle) in bad {
            let err = parse_request(b).unwrap_err();
            assert!(err.contains(needle), "{b}: {err}");
        }
        // Numbers in errors are masked.
        let err = parse_request(&body(
            serde_json::json!({"methods": {"mobile": "+31 0612345678 9"}}),
        ))
        .unwrap_err();
        assert!(!err.contains("0612345678"), "{err}");
        let err = parse_request(&body(
            serde_json::json!({"methods": {"mobile": 31612345678u64}}),
        ))
        .unwrap_err();
        assert!(!err.contains("31612345678"), "{err}");
    }

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
            run: Some("e-1".into()),
        };
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(serde_json::from_value::<Job>(v).unwrap(), j);
        assert_eq!(
            DefaultMethod::parse("VOICEmobile"),
            Some(DefaultMethod::VoiceMobile)
        );
    }
}
