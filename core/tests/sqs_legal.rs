//! Whatever a file holds, every message the ingest makes is one SQS takes: each character of every
//! body and string attribute in SQS's set, no message over the batch limit, one message per row.
//! (moto does not enforce SQS's character rules, so this checks the characters itself.)

use mfa_preload_core::aws::sqs::{OutMessage, MAX_BATCH_BYTES};
use mfa_preload_core::csv::ColumnMapping;
use mfa_preload_core::dedupe::Bloom;
use mfa_preload_core::dlq::DlqEntry;
use mfa_preload_core::ingest::{run_to_end, BytesSource, Dest, MemorySink};
use mfa_preload_core::message::Job;
use mfa_preload_core::reason::Reason;
use mfa_preload_core::validate::Settings;
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;

/// SQS's set, as its documentation gives it:
/// `#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF`.
fn sqs_takes(c: char) -> bool {
    let u = c as u32;
    u == 0x9
        || u == 0xA
        || u == 0xD
        || (0x20..=0xD7FF).contains(&u)
        || (0xE000..=0xFFFD).contains(&u)
        || (0x10000..=0x10FFFF).contains(&u)
}

fn check_text(what: &str, text: &str) -> Result<(), TestCaseError> {
    if let Some(c) = text.chars().find(|c| !sqs_takes(*c)) {
        return Err(TestCaseError::fail(format!(
            "{what} holds U+{:04X}: {text:?}",
            c as u32
        )));
    }
    Ok(())
}

/// Every character of the message in SQS's set, and the message within the batch limit (the
/// size SQS counts: body, attribute names, types and values).
fn check_message(m: &OutMessage) -> Result<(), TestCaseError> {
    check_text("a body", &m.body)?;
    let mut size = m.body.len();
    for (k, v) in &m.attributes {
        check_text("an attribute name", k)?;
        check_text("an attribute value", v)?;
        size += k.len() + "String".len() + v.len();
    }
    prop_assert!(
        size <= 256 * 1024 && m.size() <= MAX_BATCH_BYTES,
        "{size} bytes"
    );
    prop_assert!(serde_json::from_str::<serde_json::Value>(&m.body).is_ok());
    Ok(())
}

/// Any text: every character can come up, controls and noncharacters too (proptest's own
/// `String` leaves control characters out).
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        3 => any::<char>(),
        1 => (0u32..0x20).prop_map(|u| char::from_u32(u).unwrap_or('\0')),
        1 => prop_oneof![Just('\u{7F}'), Just('\u{85}'), Just('\u{FFFE}'), Just('\u{FFFF}'), Just('\u{FDD0}'), Just('\u{1FFFF}')],
    ];
    proptest::collection::vec(c, 0..24).prop_map(|v| v.into_iter().collect())
}

/// A cell: what a hostile or broken export may hold, from plausible values to any characters.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a@contoso.com".to_string()),
        Just("+31 612345678".to_string()),
        Just("true".to_string()),
        Just("enable".to_string()),
        Just("System.String[]".to_string()),
        text(),
        proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just(','),
                Just(';'),
                Just('\r'),
                Just('\n'),
                Just('\t'),
                Just('\u{0}'),
                Just('\u{1B}'),
                Just('\u{7F}'),
                Just('\u{85}'),
                Just('\u{FFFE}'),
                Just('\u{FFFF}'),
                Just('\u{FDD0}'),
                Just('\u{1F600}'),
                Just('='),
                Just('@'),
                Just('1'),
                Just('a'),
            ],
            0..12,
        )
        .prop_map(|v| v.into_iter().collect()),
    ]
}

/// A file: a header of known columns (one ignored), then rows of cells, some lines raw bytes.
fn file() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        8 => proptest::collection::vec(cell(), 1..6).prop_map(|cells| cells.join(",").into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ];
    (proptest::collection::vec(line, 0..25), any::<bool>()).prop_map(|(lines, crlf)| {
        let end: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut out = b"UPN,Mobile,ForcedUpdate,SmsSignIn,Note".to_vec();
        out.extend_from_slice(end);
        for l in lines {
            out.extend_from_slice(&l);
            out.extend_from_slice(end);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_of_any_file_is_sqs_legal(bytes in file(), key in prop_oneof![Just("incoming/k.csv".to_string()), text()]) {
        let mapping = ColumnMapping::parse(&["Note=ignore".to_string()]).expect("mapping");
        // An S3 key may hold any character, and it is in every message of the file.
        let job = Job::S3 { bucket: "b".into(), key, etag: "e".into(), run: None };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let (counts, sink) = rt
            .block_on(run_to_end(
                BytesSource(Arc::new(bytes)),
                MemorySink::keeping(),
                &mapping,
                Settings::default(),
                job,
                Bloom::with_bits(1 << 16, 8),
            ))
            .expect("the header is fine: the run completes");
        prop_assert_eq!(counts.rows_read, counts.enqueued + counts.rejected_total());
        prop_assert_eq!(counts.deferred, 0);
        prop_assert_eq!(sink.messages.len() as u64, counts.rows_read);
        let mut rows = HashSet::new();
        for (tag, dest, m) in &sink.messages {
            check_message(m)?;
            prop_assert!(rows.insert(tag.row), "row {} twice", tag.row);
            if *dest == Dest::Dlq {
                let entry: DlqEntry = serde_json::from_str(&m.body).expect("a DLQ entry");
                prop_assert_eq!(entry.row, Some(tag.row));
                prop_assert!(!entry.detail.is_empty());
            }
        }
    }

    #[test]
    fn any_text_built_into_a_message_is_sqs_legal(
        body in text(),
        detail in text(),
        value in text(),
    ) {
        let m = OutMessage::new(
            serde_json::to_string(&body).expect("JSON"),
            vec![("detail".into(), detail.clone()), ("value".into(), value)],
        );
        check_message(&m)?;
        // In a JSON body the escapes are JSON's: the body means exactly what it meant.
        prop_assert_eq!(serde_json::from_str::<String>(&m.body).expect("JSON"), body);
        let entry = DlqEntry {
            v: 1,
            reason: Reason::GraphRejected,
            detail,
            job: None,
            row: Some(2),
            column: None,
            request: serde_json::Value::Null,
            stage: "worker".into(),
            user: None,
        };
        for (k, v) in mfa_preload_core::dlq::attributes(&entry) {
            check_text("a worker attribute name", &k)?;
            check_text("a worker attribute value", &v)?;
        }
        check_message(&OutMessage::dlq(&entry).expect("DLQ message"))?;
    }
}
