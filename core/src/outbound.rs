//! A message to send to a queue, as the engines build it: SQS-legal text (every body and string
//! attribute goes through [`crate::sqs_text`]) and sized as SQS counts toward its limits, so the
//! engines hold no AWS code and the adapter ([`crate::aws::sqs::SqsSender`]) only sends.

use crate::dlq::{DlqEntry, MAX_DETAIL_ATTRIBUTE_CHARS};
use crate::sqs_text::sqs_escape;

/// SQS allows at most 10 entries per `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Keep a batch's total payload under SQS's limit (256 KiB, the conservative historical value).
pub const MAX_BATCH_BYTES: usize = 256 * 1024 - 4 * 1024;
/// Largest message sent (as [`OutMessage::size`] counts it): one fits in a batch.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES;

/// One message to send.
#[derive(Debug, Clone)]
pub struct OutMessage {
    pub body: String,
    /// String message attributes.
    pub attributes: Vec<(String, String)>,
}

impl OutMessage {
    /// A message whose body and attribute values are SQS-legal ([`sqs_escape`]: in a JSON body
    /// the escapes are JSON's, so the body keeps its exact meaning).
    pub fn new(mut body: String, mut attributes: Vec<(String, String)>) -> OutMessage {
        if let std::borrow::Cow::Owned(escaped) = sqs_escape(&body) {
            body = escaped;
        }
        for (_, v) in attributes.iter_mut() {
            if let std::borrow::Cow::Owned(escaped) = sqs_escape(v) {
                *v = escaped;
            }
        }
        OutMessage { body, attributes }
    }

    /// What the message counts toward SQS's size limits: the body, and each attribute's name,
    /// type and value (with room to spare).
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + 16)
                .sum::<usize>()
    }

    /// A DLQ message: the entry as JSON body, `reason`, `detail`, `stage` (and `row`) as
    /// attributes. An entry too large for SQS (a huge row copied into `request`) is sent without
    /// the copy: the job and the row say where the row is.
    pub fn dlq(entry: &DlqEntry) -> Result<OutMessage, serde_json::Error> {
        let msg = OutMessage::dlq_as_is(entry)?;
        if msg.size() <= MAX_MESSAGE_BYTES {
            return Ok(msg);
        }
        let mut small = entry.clone();
        small.request = serde_json::Value::Null;
        small.detail = format!(
            "{} (the row is too large to be copied into this message; see the row in the file)",
            entry
                .detail
                .chars()
                .take(MAX_DETAIL_ATTRIBUTE_CHARS)
                .collect::<String>()
        );
        OutMessage::dlq_as_is(&small)
    }

    fn dlq_as_is(entry: &DlqEntry) -> Result<OutMessage, serde_json::Error> {
        let body = serde_json::to_string(entry)?;
        Ok(OutMessage::new(body, crate::dlq::attributes(entry)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::Reason;
    use crate::sqs_text::is_sqs_text;

    fn entry(detail: &str, request: serde_json::Value) -> DlqEntry {
        DlqEntry {
            v: 1,
            reason: Reason::InvalidRow,
            detail: detail.into(),
            job: None,
            row: Some(3),
            column: Some("Note".into()),
            request,
            stage: "ingest".into(),
            user: None,
        }
    }

    #[test]
    fn dlq_messages_are_sqs_legal_and_keep_the_row_exactly() {
        let cell = "a\u{1}b\u{FFFE}c\u{FFFF}\u{7F}";
        let e = entry(
            &format!("the cell '{cell}' is bad"),
            serde_json::json!({ "Note": cell }),
        );
        let m = OutMessage::dlq(&e).unwrap();
        assert!(is_sqs_text(&m.body), "{:?}", m.body);
        for (k, v) in &m.attributes {
            assert!(is_sqs_text(k) && is_sqs_text(v), "{k}: {v:?}");
        }
        let back: DlqEntry = serde_json::from_str(&m.body).unwrap();
        assert_eq!(back.request["Note"], cell, "the body means what it meant");
        // The worker's attributes of the same entry: the one escaping function.
        for (k, v) in crate::dlq::attributes(&e) {
            assert!(is_sqs_text(&k) && is_sqs_text(&v), "{k}: {v:?}");
        }
    }

    #[test]
    fn a_dlq_entry_too_large_for_sqs_is_sent_without_its_copy_of_the_row() {
        let huge = "\u{1}".repeat(60_000);
        let e = entry("bad", serde_json::json!({ "Note": huge }));
        let m = OutMessage::dlq(&e).unwrap();
        assert!(m.size() <= MAX_MESSAGE_BYTES, "{}", m.size());
        let back: DlqEntry = serde_json::from_str(&m.body).unwrap();
        assert!(back.request.is_null());
        assert!(back.detail.contains("too large"), "{}", back.detail);
        assert_eq!(back.row, Some(3));
    }
}
