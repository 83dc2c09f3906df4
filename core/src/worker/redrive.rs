//! Dead-letter entries moved back to the work queue.
//!
//! SQS's message move task (README, "Re-driving the DLQ") moves DLQ messages back to the work queue
//! as they are: the body is then a [`DlqEntry`](crate::dlq::DlqEntry), not a request. A
//! worker-stage entry holds the original request in `request`; the worker processes that request
//! again. An ingest-stage entry holds a CSV row, which only a corrected file can fix: it is
//! rejected again as `invalid_message`.

use serde_json::{Map, Value};

use crate::reason::Reason;
use crate::worker::STAGE;

/// How many DLQ entries wrapped in one another are unwrapped (an entry re-sent by hand as the
/// request of another); deeper nesting is rejected.
pub const MAX_NESTING: usize = 4;

/// What a queue message body turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Not a DLQ entry: the body is (meant to be) a request.
    Direct,
    /// A worker DLQ entry moved back: its original request, as JSON text.
    Redriven {
        /// The original request (the `request` object of the entry), as JSON text.
        request: String,
        /// The reason code the entry was dead-lettered with (when readable).
        previous_reason: Option<Reason>,
    },
    /// A DLQ entry that cannot be processed again by the worker. `detail` is safe to log.
    NotRedrivable { detail: String },
}

/// Whether `v` has the shape of a DLQ entry. Requests reject unknown fields, so a valid request
/// never has `stage` or `request`.
fn is_entry(v: &Map<String, Value>) -> bool {
    v.contains_key("stage") && v.contains_key("request") && v.contains_key("reason")
}

fn reason_of(v: &Map<String, Value>) -> Option<Reason> {
    v.get("reason")
        .and_then(Value::as_str)
        .and_then(Reason::parse)
}

/// Looks at a message body: a plain request, or a DLQ entry moved back to the work queue.
pub fn classify(body: &str) -> Inbound {
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(body) else {
        return Inbound::Direct;
    };
    if !is_entry(&obj) {
        return Inbound::Direct;
    }
    let mut previous_reason = reason_of(&obj);
    for _ in 0..MAX_NESTING {
        let stage = obj.get("stage").and_then(Value::as_str).unwrap_or_default();
        if stage != STAGE {
            let reason = reason_of(&obj).map_or("unknown", Reason::as_str);
            // The stage name is echoed only when it is one of ours: it is otherwise free text.
            let stage = if stage == "ingest" { stage } else { "unknown" };
            return Inbound::NotRedrivable {
                detail: format!(
                    "a dead-letter entry of the {stage} stage (reason {reason}) was sent to the work queue: \
                     ingest rejects are CSV rows, fix them in the file and upload it again"
                ),
            };
        }
        match obj.remove("request") {
            Some(Value::Object(inner)) if is_entry(&inner) => {
                obj = inner;
                previous_reason = reason_of(&obj).or(previous_reason);
            }
            Some(Value::Object(inner)) => {
                return Inbound::Redriven {
                    request: Value::Object(inner).to_string(),
                    previous_reason,
                };
            }
            _ => {
                let reason = previous_reason.map_or("unknown", Reason::as_str);
                return Inbound::NotRedrivable {
                    detail: format!(
                        "a re-driven dead-letter entry (reason {reason}) whose original message \
                         is not a JSON object: there is no request to process"
                    ),
                };
            }
        }
    }
    Inbound::NotRedrivable {
        detail: format!("dead-letter entries nested more than {MAX_NESTING} deep"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::DlqEntry;
    use crate::message::Job;
    use serde_json::json;

    fn request() -> Value {
        json!({"v": 1, "job": {"producer": "hr"}, "user": "a.b@contoso.com",
               "methods": {"mobile": "+1 5555551234"}})
    }

    fn entry(stage: &str, reason: Reason, request: Value) -> DlqEntry {
        DlqEntry {
            v: 1,
            reason,
            detail: "d".into(),
            job: Some(Job::Producer {
                producer: "hr".into(),
                id: None,
            }),
            row: Some(4),
            column: None,
            request,
            stage: stage.into(),
            user: None,
        }
    }

    #[test]
    fn a_plain_request_or_garbage_is_direct() {
        assert_eq!(classify(&request().to_string()), Inbound::Direct);
        assert_eq!(classify("not json"), Inbound::Direct);
        assert_eq!(classify("[1]"), Inbound::Direct);
        // A request with a stray `stage` is not an entry without `request` and `reason`.
        assert_eq!(classify(r#"{"v":1,"stage":"worker"}"#), Inbound::Direct);
    }

    #[test]
    fn a_worker_entry_gives_back_its_request() {
        let e = entry("worker", Reason::UserNotFound, request());
        match classify(&serde_json::to_string(&e).unwrap()) {
            Inbound::Redriven {
                request: r,
                previous_reason,
            } => {
                assert_eq!(serde_json::from_str::<Value>(&r).unwrap(), request());
                assert_eq!(previous_reason, Some(Reason::UserNotFound));
            }
            other => panic!("{other:?}"),
        }
        // An entry re-sent inside another one is unwrapped to the request too.
        let outer = entry(
            "worker",
            Reason::InvalidMessage,
            serde_json::to_value(&e).unwrap(),
        );
        match classify(&serde_json::to_string(&outer).unwrap()) {
            Inbound::Redriven {
                request: r,
                previous_reason,
            } => {
                assert_eq!(serde_json::from_str::<Value>(&r).unwrap(), request());
                assert_eq!(previous_reason, Some(Reason::UserNotFound));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ingest_entries_and_entries_without_a_request_object_are_not_redriven() {
        let e = entry(
            "ingest",
            Reason::InvalidPhoneNumber,
            json!({"UPN": "a@b.co", "Mobile": "call me"}),
        );
        match classify(&serde_json::to_string(&e).unwrap()) {
            Inbound::NotRedrivable { detail } => {
                assert!(detail.contains("ingest") && detail.contains("invalid_phone_number"))
            }
            other => panic!("{other:?}"),
        }
        let e = entry(
            "worker",
            Reason::InvalidMessage,
            Value::String("{not json".into()),
        );
        match classify(&serde_json::to_string(&e).unwrap()) {
            Inbound::NotRedrivable { detail } => {
                assert!(detail.contains("invalid_message") && detail.contains("not a JSON object"))
            }
            other => panic!("{other:?}"),
        }
        let e = entry("somewhere +1 5555551234", Reason::GraphRejected, request());
        match classify(&serde_json::to_string(&e).unwrap()) {
            Inbound::NotRedrivable { detail } => assert!(!detail.contains("5555551234")),
            other => panic!("{other:?}"),
        }
        // Nesting is bounded.
        let mut v = request();
        for _ in 0..=MAX_NESTING {
            v = serde_json::to_value(entry("worker", Reason::InvalidMessage, v)).unwrap();
        }
        assert!(matches!(
            classify(&v.to_string()),
            Inbound::NotRedrivable { .. }
        ));
    }
}
