//! The CSV reader, phone normalisation, user/email validation and row validation, on the sample
//! files of real exports and on a catalogue of bad inputs.

use mfa_preload_core::csv::{ColumnMapping, CsvReader, HeaderError, RawRow, RowError};
use mfa_preload_core::dedupe::Bloom;
use mfa_preload_core::ingest::{run_to_end, BytesSource, Dest, MemorySink};
use mfa_preload_core::message::{Job, Request, SmsSignIn};
use mfa_preload_core::phone::{normalise, parse_country};
use mfa_preload_core::reason::Reason;
use mfa_preload_core::validate::{validate, Settings, ValidRow};
use std::path::PathBuf;
use std::sync::Arc;

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/samples")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn settings(country: Option<&str>) -> Settings {
    Settings {
        default_country: country.map(|c| parse_country(c).expect("country")),
    }
}

async fn read_all(
    bytes: &[u8],
    mapping: &ColumnMapping,
) -> Result<
    (
        CsvReader<std::io::Cursor<Vec<u8>>>,
        Vec<Result<RawRow, RowError>>,
    ),
    HeaderError,
> {
    let mut r = CsvReader::open(std::io::Cursor::new(bytes.to_vec()), mapping).await?;
    let mut rows = Vec::new();
    while let Some(x) = r.next().await {
        rows.push(x);
    }
    assert!(r.io_error().is_none());
    Ok((r, rows))
}

/// Every row validated: Ok(valid) or the error.
async fn validate_file(
    bytes: &[u8],
    mapping: &ColumnMapping,
    s: &Settings,
) -> Vec<Result<ValidRow, RowError>> {
    let (r, rows) = read_all(bytes, mapping).await.expect("header");
    rows.into_iter()
        .map(|x| x.and_then(|raw| validate(&raw, r.layout(), s)))
        .collect()
}

fn legacy_mapping() -> ColumnMapping {
    let pairs: Vec<String> = [
        "Username=user",
        "Phone=mobile",
        "Backup Phone=alternateMobile",
        "Desk Phone=office",
        "Status=ignore",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ColumnMapping::parse(&pairs).expect("mapping")
}

fn some(s: &str) -> Option<Option<String>> {
    Some(Some(s.to_string()))
}

#[tokio::test]
async fn community_script_file_is_accepted_as_is() {
    let rows = validate_file(
        &sample("community-format.csv"),
        &ColumnMapping::default(),
        &Settings::default(),
    )
    .await;
    assert_eq!(rows.len(), 5);
    let first = rows[0].as_ref().expect("row 2 valid");
    assert_eq!(first.row, 2);
    assert_eq!(first.user, "johnny.bravo@contoso.com");
    // The community script's habit: the trunk 0 kept after +31.
    assert_eq!(first.methods.mobile, some("+31 612345526"));
    assert_eq!(first.methods.office, some("+31 101234018"));
    assert_eq!(first.methods.alternate_mobile, some("+31 612345159"));
    assert!(!first.policy.forced_update && !first.policy.forced_removal);
    let donald = rows[1].as_ref().expect("row 3 valid");
    assert_eq!(
        donald.methods.alternate_mobile,
        Some(None),
        "an empty cell is 'present, empty'"
    );
    assert!(donald.policy.forced_update && donald.policy.forced_removal);
    assert!(rows.iter().all(|r| r.is_ok()), "{rows:?}");
    assert_eq!(
        first.methods.email, None,
        "no email column: email not managed"
    );
}

#[test]
fn the_spec_sample_number_comes_out_in_graph_form() {
    assert_eq!(
        normalise("+310612345678", None).as_deref(),
        Ok("+31 612345678")
    );
}

#[tokio::test]
async fn german_excel_export_with_default_country() {
    let bytes = sample("excel-de-semicolon.csv");
    assert!(
        bytes.starts_with(&[0xEF, 0xBB, 0xBF]),
        "the sample has a BOM"
    );
    let (r, _) = read_all(&bytes, &ColumnMapping::default())
        .await
        .expect("header");
    assert_eq!(r.layout().delimiter, b';');
    assert_eq!(
        r.layout().headers[0],
        "UserPrincipalName",
        "BOM stripped from the first header"
    );
    let rows = validate_file(&bytes, &ColumnMapping::default(), &settings(Some("DE"))).await;
    let anna = rows[0].as_ref().expect("anna");
    assert_eq!(anna.methods.mobile, some("+49 15123456993"));
    assert_eq!(anna.methods.office, some("+49 30123518"));
    assert_eq!(anna.methods.email, some("anna@gmail.com"));
    assert!(!anna.policy.forced_update, "nein = false");
    // Entra allows no non-ASCII letter before the @.
    let jonas = rows[1].as_ref().expect_err("jonas.müller");
    assert_eq!(
        (jonas.row, jonas.reason, jonas.column.as_deref()),
        (3, Reason::InvalidUser, Some("UserPrincipalName"))
    );
    assert!(jonas.detail.contains('ü'), "{}", jonas.detail);
    // 'Durchwahl' is an extension.
    let mia = rows[4].as_ref().expect("mia");
    assert_eq!(mia.methods.office, some("+49 30123757x46"));
    let ben = rows[5].as_ref().expect("ben");
    assert!(ben.policy.forced_update, "ja = true");
    // Without a default country the national numbers are refused, never guessed.
    let rows = validate_file(&bytes, &ColumnMapping::default(), &Settings::default()).await;
    let e = rows[0].as_ref().expect_err("national without country");
    assert_eq!(
        (e.row, e.reason, e.column.as_deref()),
        (2, Reason::InvalidPhoneNumber, Some("Mobile Phone"))
    );
}

#[tokio::test]
async fn legacy_export_with_a_column_mapping() {
    let bytes = sample("legacy-sms-mfa-export.csv");
    let err = read_all(&bytes, &ColumnMapping::default())
        .await
        .err()
        .expect("unknown columns without a mapping");
    match err {
        HeaderError::UnknownColumns(cols) => assert_eq!(
            cols,
            vec!["Username", "Phone", "Backup Phone", "Desk Phone", "Status"]
        ),
        e => panic!("{e}"),
    }
    let rows = validate_file(&bytes, &legacy_mapping(), &Settings::default()).await;
    let u0 = rows[0].as_ref().expect("user00");
    assert_eq!(u0.methods.mobile, some("+1 2015550527"));
    assert_eq!(u0.methods.alternate_mobile, some("+1 2015550601"));
    assert_eq!(u0.methods.office, some("+1 2015550895x448"));
    assert_eq!(
        rows[1].as_ref().expect("user01").methods.mobile,
        some("+44 7400123597")
    );
    assert_eq!(
        rows[2].as_ref().expect("user02 (00 prefix)").methods.mobile,
        some("+91 8123456971")
    );
    let n = rows.len();
    let call_me = rows[n - 2].as_ref().expect_err("letters");
    assert_eq!(
        (call_me.reason, call_me.column.as_deref()),
        (Reason::InvalidPhoneNumber, Some("Phone"))
    );
    assert_eq!(
        call_me.row, n as u64,
        "rows are numbered as lines, header = 1"
    );
}

#[tokio::test]
async fn legacy_duplicate_user_is_caught_by_the_ingest_core() {
    let bytes = sample("legacy-sms-mfa-export.csv");
    let job = Job::S3 {
        bucket: "b".into(),
        key: "k".into(),
        etag: "e".into(),
        run: None,
    };
    let (counts, sink) = run_to_end(
        BytesSource(Arc::new(bytes)),
        MemorySink::keeping(),
        &legacy_mapping(),
        Settings::default(),
        job,
        Bloom::with_bits(1 << 16, 8),
    )
    .await
    .expect("run");
    assert_eq!(counts.rows_read, 14);
    assert_eq!(counts.rejected.get(&Reason::DuplicateUserInFile), Some(&1));
    let details: Vec<String> = sink
        .messages
        .iter()
        .filter(|m| m.1 == Dest::Dlq)
        .map(|m| m.2.body.clone())
        .collect();
    assert_eq!(
        counts.rejected.get(&Reason::InvalidPhoneNumber),
        Some(&1),
        "{details:#?}"
    );
    assert_eq!(counts.enqueued, 12);
    assert_eq!(counts.rows_read, counts.enqueued + counts.rejected_total());
    let last = sink
        .messages
        .iter()
        .find(|(t, d, _)| *d == Dest::Dlq && t.row == 15)
        .expect("row 15 rejected");
    let entry: serde_json::Value = serde_json::from_str(&last.2.body).expect("json");
    assert_eq!(entry["reason"], "duplicate_user_in_file");
    assert!(
        entry["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("row 5"),
        "{entry}"
    );
    assert_eq!(entry["column"], "Username");
}

#[tokio::test]
async fn an_sms_sign_in_number_is_used_by_one_row_only() {
    // Row 4 repeats row 2's number for SMS sign-in; row 3 has it too, but not for sign-in.
    let csv = "UPN,Mobile,SmsSignIn\n\
               a@contoso.com,+31 612345678,Enabled\n\
               b@contoso.com,+31 612345678,disable\n\
               c@contoso.com,+31 6 1234 5678,enable\n";
    let job = Job::S3 {
        bucket: "b".into(),
        key: "k".into(),
        etag: "e".into(),
        run: None,
    };
    let (counts, sink) = run_to_end(
        BytesSource(Arc::new(csv.as_bytes().to_vec())),
        MemorySink::keeping(),
        &ColumnMapping::default(),
        Settings::default(),
        job,
        Bloom::with_bits(1 << 16, 8),
    )
    .await
    .expect("run");
    assert_eq!(counts.rows_read, 3);
    assert_eq!(counts.enqueued, 2);
    assert_eq!(
        counts.rejected.get(&Reason::SmsSigninNumberNotUnique),
        Some(&1)
    );
    let (tag, _, msg) = sink
        .messages
        .iter()
        .find(|m| m.1 == Dest::Dlq)
        .expect("a rejected row");
    assert_eq!(tag.row, 4);
    let entry: serde_json::Value = serde_json::from_str(&msg.body).expect("json");
    assert_eq!(entry["column"], "SmsSignIn");
    assert!(
        entry["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("row 2"),
        "{entry}"
    );
}

/// The first open of the file serves it whole; later opens (the confirm pass) serve the first
/// `good` bytes and then fail.
#[derive(Clone)]
struct FailsLateSource {
    data: Arc<Vec<u8>>,
    good: usize,
    opens: Arc<std::sync::atomic::AtomicUsize>,
}

struct Broken;

impl tokio::io::AsyncRead for Broken {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Err(std::io::Error::other("the file is unreadable here")))
    }
}

impl mfa_preload_core::ingest::Source for FailsLateSource {
    async fn open_at(
        &self,
        offset: u64,
    ) -> Result<mfa_preload_core::ingest::Opened, mfa_preload_core::ingest::SourceError> {
        use tokio::io::AsyncReadExt;
        let first = self.opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        let start = offset as usize;
        let size = self.data.len() as u64;
        if first {
            let whole = std::io::Cursor::new(self.data[start..].to_vec());
            return Ok(mfa_preload_core::ingest::Opened {
                stream: Box::new(whole),
                size,
            });
        }
        let head = std::io::Cursor::new(self.data[start.min(self.good)..self.good].to_vec());
        Ok(mfa_preload_core::ingest::Opened {
            stream: Box::new(head.chain(Broken)),
            size,
        })
    }
}

#[tokio::test]
async fn the_confirm_pass_ends_with_the_last_suspect() {
    // A duplicate near the top of a long file: the confirm pass needs only the rows up to it.
    let mut csv = String::from(
        "UPN,Mobile\nfirst@contoso.com,+31612345678\nfirst@contoso.com,+31612345679\n",
    );
    let good = csv.len();
    for i in 0..20_000 {
        csv.push_str(&format!("user{i}@contoso.com,+316{:08}\n", 10_000_000 + i));
    }
    let opens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let source = FailsLateSource {
        data: Arc::new(csv.into_bytes()),
        good,
        opens: opens.clone(),
    };
    let job = Job::S3 {
        bucket: "b".into(),
        key: "k".into(),
        etag: "e".into(),
        run: None,
    };
    let (counts, _) = run_to_end(
        source,
        MemorySink::default(),
        &ColumnMapping::default(),
        Settings::default(),
        job,
        Bloom::with_bits(1 << 20, 8),
    )
    .await
    .expect("the confirm pass stops before the unreadable part");
    assert_eq!(
        opens.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "two passes"
    );
    assert_eq!(counts.rows_read, 20_002);
    assert_eq!(counts.rejected.get(&Reason::DuplicateUserInFile), Some(&1));
    assert_eq!(counts.enqueued, 20_001);
}

#[test]
fn messy_numbers_from_many_countries() {
    // (default country, input, Graph form). Expectations follow the national numbering plans.
    let table: &[(Option<&str>, &str, &str)] = &[
        (None, "+31 6 1234 5678", "+31 612345678"),
        (None, "+310612345678", "+31 612345678"),
        (None, "0031 6 1234 5678", "+31 612345678"),
        (None, "+31 (0)6-12345678", "+31 612345678"),
        (Some("NL"), "06-12345678", "+31 612345678"),
        (Some("NL"), "020 123 4567", "+31 201234567"),
        (None, "+49 1512 3456789", "+49 15123456789"),
        (Some("DE"), "01512 3456789", "+49 15123456789"),
        (Some("DE"), "030 123456", "+49 30123456"),
        (Some("DE"), "030 123456 Durchwahl 46", "+49 30123456x46"),
        (None, "+49 (0)30 123456", "+49 30123456"),
        (Some("US"), "(201) 555-0123", "+1 2015550123"),
        (Some("US"), "201.555.0123", "+1 2015550123"),
        (Some("US"), "201-555-0123 ext. 12", "+1 2015550123x12"),
        (None, "+1 201 555 0123 x123", "+1 2015550123x123"),
        (None, "+1-201-555-0123 extension 7", "+1 2015550123x7"),
        (Some("US"), "011 44 7400 123456", "+44 7400123456"),
        (Some("CA"), "506-234-5678", "+1 5062345678"),
        (Some("GB"), "07400 123456", "+44 7400123456"),
        (Some("GB"), "0121 234 5678", "+44 1212345678"),
        (None, "+44 (0)7400 123456", "+44 7400123456"),
        (None, "0044 7400 123456", "+44 7400123456"),
        (Some("FR"), "06 12 34 56 78", "+33 612345678"),
        (Some("FR"), "01.23.45.67.89", "+33 123456789"),
        (None, "+33 6 12 34 56 78", "+33 612345678"),
        (Some("IT"), "02 1234 5678", "+39 0212345678"),
        (Some("IT"), "312 345 6789", "+39 3123456789"),
        (None, "+39 02 1234 5678", "+39 0212345678"),
        (Some("ES"), "612 34 56 78", "+34 612345678"),
        (Some("AU"), "0412 345 678", "+61 412345678"),
        (None, "+61 412 345 678", "+61 412345678"),
        (Some("IN"), "081234 56789", "+91 8123456789"),
        (None, "0091 81234 56789", "+91 8123456789"),
        (Some("JP"), "090-1234-5678", "+81 9012345678"),
        (Some("BR"), "(11) 96123-4567", "+55 11961234567"),
        (Some("CH"), "078 123 45 67", "+41 781234567"),
        (Some("BE"), "0470 12 34 56", "+32 470123456"),
        (Some("SE"), "070-123 45 67", "+46 701234567"),
        (Some("PL"), "512 345 678", "+48 512345678"),
        (Some("ZA"), "071 123 4567", "+27 711234567"),
        (None, "  +27 71 123 4567  ", "+27 711234567"),
        (Some("NL"), "+49 30 123456", "+49 30123456"),
        (None, "+1 (201) 555-0123 #45", "+1 2015550123x45"),
        (None, "(61) 412 345 678", "+61 412345678"),
        (None, "(1) 201-555-0123", "+1 2015550123"),
    ];
    assert!(table.len() >= 40);
    let countries: std::collections::HashSet<&str> = table
        .iter()
        .map(|(_, _, g)| g.split(' ').next().unwrap_or_default())
        .collect();
    assert!(countries.len() >= 10, "{countries:?}");
    let mut wrong = Vec::new();
    for (country, input, want) in table {
        let got = normalise(input, country.map(|c| parse_country(c).expect("country")));
        if got.as_deref() != Ok(*want) {
            wrong.push(format!("{country:?} {input:?}: got {got:?}, want {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn letters_that_change_length_in_lower_case_are_refused_not_a_panic() {
    // 'Ⱥ' (2 bytes) is 'ⱥ' (3 bytes) in lower case: positions found in the lowered text must
    // still be positions in the cell.
    for cell in [
        "\u{23A}6#",
        "6\u{23A}#",
        "\u{23A}1 ext 2",
        "1\u{23A}\u{23A}\u{23A}x",
        "+31 6\u{23A} 12345678 #1",
    ] {
        assert!(normalise(cell, None).is_err(), "{cell}");
    }
    assert_eq!(
        normalise("+1 201 555 0123 EXT 12", None).as_deref(),
        Ok("+1 2015550123x12")
    );
}

/// One bad input: a file, the settings, and the exact rejection expected.
struct Bad {
    name: &'static str,
    csv: Vec<u8>,
    country: Option<&'static str>,
    row: u64,
    reason: Reason,
    column: Option<&'static str>,
}

fn bad(
    name: &'static str,
    csv: &str,
    row: u64,
    reason: Reason,
    column: Option<&'static str>,
) -> Bad {
    Bad {
        name,
        csv: csv.as_bytes().to_vec(),
        country: None,
        row,
        reason,
        column,
    }
}

#[tokio::test]
async fn bad_rows_name_the_row_the_column_and_the_reason() {
    let mut long = b"UPN,Mobile\nok@contoso.com,+31 612345678\nlong@contoso.com,".to_vec();
    long.extend(std::iter::repeat_n(b'9', 1 << 20));
    long.extend_from_slice(b"\nafter@contoso.com,+31 612345679\n");
    let cases = vec![
        bad(
            "bad boolean",
            "UPN,Mobile,ForcedUpdate\na@contoso.com,+31 612345678,maybe\n",
            2,
            Reason::InvalidRow,
            Some("ForcedUpdate"),
        ),
        bad(
            "bad boolean 2",
            "UPN,ForcedRemoval\na@contoso.com,2\n",
            2,
            Reason::InvalidRow,
            Some("ForcedRemoval"),
        ),
        Bad {
            name: "non-UTF-8 row",
            csv: b"UPN,Mobile\nok@contoso.com,+31 612345678\nb\xe4d@contoso.com,+31 612345679\n"
                .to_vec(),
            country: None,
            row: 3,
            reason: Reason::InvalidRow,
            column: Some("UPN"),
        },
        Bad {
            name: "1 MB line",
            csv: long,
            country: None,
            row: 3,
            reason: Reason::InvalidRow,
            column: None,
        },
        bad(
            "formula in user",
            "UPN,Mobile\n=HYPERLINK(\"http://x\"),+31 612345678\n",
            2,
            Reason::InvalidRow,
            Some("UPN"),
        ),
        bad(
            "formula in email",
            "UPN,Email\na@contoso.com,@SUM(A1)\n",
            2,
            Reason::InvalidRow,
            Some("Email"),
        ),
        bad(
            "formula minus in phone",
            "UPN,Mobile\na@contoso.com,-2+3+cmd\n",
            2,
            Reason::InvalidRow,
            Some("Mobile"),
        ),
        bad(
            "formula plus in email",
            "UPN,Email\na@contoso.com,+cmd|' /C calc'!A0\n",
            2,
            Reason::InvalidRow,
            Some("Email"),
        ),
        bad(
            "slash in UPN",
            "UPN\na/b@contoso.com\n",
            2,
            Reason::InvalidUser,
            Some("UPN"),
        ),
        bad(
            "question mark in UPN",
            "UPN\na?b@contoso.com\n",
            2,
            Reason::InvalidUser,
            Some("UPN"),
        ),
        bad(
            "hash in UPN",
            "UPN\na#EXT#@contoso.com\n",
            2,
            Reason::InvalidUser,
            Some("UPN"),
        ),
        bad(
            "percent in UPN",
            "UPN\na%2Fb@contoso.com\n",
            2,
            Reason::InvalidUser,
            Some("UPN"),
        ),
        bad(
            "dot dot in UPN",
            "UPN\n..@contoso.com\n",
            2,
            Reason::InvalidUser,
            Some("UPN"),
        ),
        bad(
            "space in UPN",
            "UPN\n\"a b@contoso.com\"\n",
            2,
            Reason::InvalidUser,
            Some("UPN"),
        ),
        bad(
            "control char in UPN",
            "UPN\na\u{7}b@contoso.com\n",
            2,
            Reason::InvalidRow,
            Some("UPN"),
        ),
        bad(
            "not a UPN",
            "UPN\njust-a-name\n",
            2,
            Reason::InvalidUser,
            Some("UPN"),
        ),
        bad(
            "empty user",
            "UPN,Mobile\n,+31 612345678\n",
            2,
            Reason::InvalidUser,
            Some("UPN"),
        ),
        bad(
            "letters in number",
            "UPN,Mobile\na@contoso.com,call me\n",
            2,
            Reason::InvalidPhoneNumber,
            Some("Mobile"),
        ),
        bad(
            "letters mixed in number",
            "UPN,Mobile\na@contoso.com,+31 6 12AB5678\n",
            2,
            Reason::InvalidPhoneNumber,
            Some("Mobile"),
        ),
        bad(
            "too short",
            "UPN,Mobile\na@contoso.com,+1 202 555 01\n",
            2,
            Reason::InvalidPhoneNumber,
            Some("Mobile"),
        ),
        bad(
            "too long",
            "UPN,OfficePhone\na@contoso.com,+49 151 2345 6789 1234 5678\n",
            2,
            Reason::InvalidPhoneNumber,
            Some("OfficePhone"),
        ),
        bad(
            "unknown country code",
            "UPN,Mobile\na@contoso.com,+999 1234567\n",
            2,
            Reason::InvalidPhoneNumber,
            Some("Mobile"),
        ),
        bad(
            "national without country",
            "UPN,Mobile\na@contoso.com,06 12345678\n",
            2,
            Reason::InvalidPhoneNumber,
            Some("Mobile"),
        ),
        Bad {
            name: "invalid for the country",
            csv: b"UPN,Mobile\na@contoso.com,0612\n".to_vec(),
            country: Some("NL"),
            row: 2,
            reason: Reason::InvalidPhoneNumber,
            column: Some("Mobile"),
        },
        bad(
            "bad extension",
            "UPN,Mobile\na@contoso.com,+1 201 555 0123 ext. abc\n",
            2,
            Reason::InvalidPhoneNumber,
            Some("Mobile"),
        ),
        bad(
            "bad email",
            "UPN,Email\na@contoso.com,anna@\n",
            2,
            Reason::InvalidEmail,
            Some("Email"),
        ),
        bad(
            "email without domain dot",
            "UPN,Email\na@contoso.com,anna@localhost\n",
            2,
            Reason::InvalidEmail,
            Some("Email"),
        ),
        bad(
            "bad smsSignIn",
            "UPN,Mobile,SmsSignIn\na@contoso.com,+31 612345678,on\n",
            2,
            Reason::InvalidRow,
            Some("SmsSignIn"),
        ),
        bad(
            "bad default method",
            "UPN,DefaultMethod\na@contoso.com,fax\n",
            2,
            Reason::InvalidRow,
            Some("DefaultMethod"),
        ),
        bad(
            "too many fields",
            "UPN,Mobile\na@contoso.com,+31 612345678,extra\n",
            2,
            Reason::InvalidRow,
            None,
        ),
        bad(
            "later row after blank lines",
            "UPN,Mobile\n\nok@contoso.com,+31 612345678\n\n\nb/c@contoso.com,\n",
            6,
            Reason::InvalidUser,
            Some("UPN"),
        ),
    ];
    assert!(cases.len() >= 25);
    let mut wrong = Vec::new();
    for case in &cases {
        let (r, rows) = read_all(&case.csv, &ColumnMapping::default())
            .await
            .unwrap_or_else(|e| panic!("{}: header {e}", case.name));
        let s = settings(case.country);
        let errs: Vec<RowError> = rows
            .iter()
            .filter_map(|x| {
                x.clone()
                    .and_then(|raw| validate(&raw, r.layout(), &s))
                    .err()
            })
            .collect();
        match errs.as_slice() {
            [e] if e.row == case.row
                && e.reason == case.reason
                && e.column.as_deref() == case.column
                && !e.detail.is_empty() => {}
            other => wrong.push(format!("{}: got {other:?}", case.name)),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_number_quoted_in_a_reject_is_masked() {
    // Columns swapped by hand: the numbers land in the user column, and the details that quote
    // the cell carry them masked (they go to the DLQ's `detail` attribute, logs and rejects).
    let csv = "UPN,Mobile\n0031612345678,a@contoso.com\n0612345678,b@contoso.com\n";
    let rows = validate_file(csv.as_bytes(), &ColumnMapping::default(), &settings(None)).await;
    assert_eq!(rows.len(), 2);
    for r in rows {
        let e = r.expect_err("a number is not a user");
        assert_eq!(
            (e.reason, e.column.as_deref()),
            (Reason::InvalidUser, Some("UPN"))
        );
        assert!(!e.detail.contains("612345678"), "unmasked: {}", e.detail);
        assert!(e.detail.contains('*'), "{}", e.detail);
    }
}

#[tokio::test]
async fn a_huge_line_is_skipped_and_reading_goes_on() {
    let mut csv = b"UPN,Mobile\nlong@contoso.com,".to_vec();
    csv.extend(std::iter::repeat_n(b'9', 3 << 20));
    csv.extend_from_slice(b"\nafter@contoso.com,+31 612345679\n");
    let (_, rows) = read_all(&csv, &ColumnMapping::default())
        .await
        .expect("header");
    assert_eq!(rows.len(), 2);
    assert!(matches!(&rows[0], Err(e) if e.row == 2 && e.reason == Reason::InvalidRow));
    assert!(matches!(&rows[1], Ok(r) if r.row == 3 && r.cell(0) == Some("after@contoso.com")));
}

#[tokio::test]
async fn unusable_headers_reject_the_file() {
    let m = ColumnMapping::default();
    assert!(matches!(
        read_all(b"", &m).await.err(),
        Some(HeaderError::Empty)
    ));
    assert!(matches!(
        read_all(b"\n\n  \n", &m).await.err(),
        Some(HeaderError::Empty)
    ));
    assert!(matches!(
        read_all(b"Mobile,OfficePhone\n+31 612345678,\n", &m)
            .await
            .err(),
        Some(HeaderError::MissingUser)
    ));
    match read_all(b"UPN,Mobil,Fax\n", &m).await.err() {
        Some(HeaderError::UnknownColumns(c)) => assert_eq!(c, vec!["Mobil", "Fax"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_all(b"UPN,UserPrincipalName\n", &m).await.err(),
        Some(HeaderError::DuplicateColumn { .. })
    ));
    assert!(matches!(
        read_all(b"UPN,M\xf6bile\n", &m).await.err(),
        Some(HeaderError::NotUtf8)
    ));
    // Header only: a valid file with no rows.
    let (_, rows) = read_all(b"UPN,Mobile\r\n", &m)
        .await
        .expect("header only is fine");
    assert!(rows.is_empty());
    // Aliases match ignoring case, spaces, '_' and '-'.
    let (r, _) = read_all(b"user_principal-name , MOBILE phone,alternate mobile PHONE,Authentication Email,sms-sign-in\n", &m).await.expect("aliases");
    assert_eq!(r.layout().fields.iter().flatten().count(), 5);
}

#[tokio::test]
async fn booleans_quotes_crlf_and_sms_sign_in() {
    let csv = "UPN,Mobile,ForcedUpdate,ForcedRemoval,SmsSignIn\r\n\
               a@contoso.com,\"+31 6 1234 5678\",TRUE,no,Enable\r\n\
               b@contoso.com,+31 612345679,Yes,1,disable\r\n\
               c@contoso.com,,0,False,\r\n";
    let rows = validate_file(
        csv.as_bytes(),
        &ColumnMapping::default(),
        &Settings::default(),
    )
    .await;
    let a = rows[0].as_ref().expect("a");
    assert!(a.policy.forced_update && !a.policy.forced_removal);
    assert_eq!(a.sms_sign_in, Some(SmsSignIn::Enable));
    assert_eq!(a.sms_key().as_deref(), Some("+31 612345678"));
    let b = rows[1].as_ref().expect("b");
    assert!(b.policy.forced_update && b.policy.forced_removal);
    assert_eq!(b.sms_key(), None);
    let c = rows[2].as_ref().expect("c");
    assert_eq!(c.methods.mobile, Some(None));
    let req: Request = c.clone().into_request(Job::Producer {
        producer: "t".into(),
        id: None,
    });
    assert_eq!(req.row, Some(4));
}

/// Reading a file in one go and reading it in two parts (resumed at a record boundary with
/// the offset and row the first reader gave) yields the same rows, bad ones included, with the same
/// offsets; UTF-16 files too (their offsets are the file's bytes).
#[tokio::test]
async fn resuming_at_any_record_boundary_gives_identical_rows() {
    let unicode = "UPN\tMobile\tEmail\r\na@x.com\t+31 612345678\t\"x@y.com\"\r\n\r\nb\u{fc}@x.com\t\"+31 6123\r\n45679\"\t\r\nc@x.com\t\t\u{1F600}\r\n";
    let files: Vec<Vec<u8>> = vec![
        b"UPN,Mobile,Email\r\na@x.com,+31 612345678,\"x@y.com\"\r\nb@x.com,\"+31 6123\r\n45679\",\r\n\r\nc@x.com,,\r\n".to_vec(),
        sample("excel-de-semicolon.csv"),
        sample("community-format.csv"),
        sample("powershell-graph-users.csv"),
        sample("excel-unicode-text.csv"),
        sample("excel-sep-line.csv"),
        b"UPN;Mobile\n\"q@x.com\";\"+31 \"\"6\"\" 12345678\"\nz@x.com;+31 612345670".to_vec(),
        b"UPN,Mobile,ForcedRemoval\na@x.com,+31 612345678,\rTrue\nb@x.com,\"+31,\n\nc@x.com,,\r\n".to_vec(),
        utf16(unicode, false, true),
        utf16(unicode, true, false),
        utf16(unicode, false, false),
    ];
    for bytes in files {
        let m = ColumnMapping::default();
        let (r, all) = read_all(&bytes, &m).await.expect("header");
        let layout = r.layout().clone();
        assert!(!all.is_empty());
        for k in 0..=all.len() {
            let mut first = CsvReader::open(std::io::Cursor::new(bytes.clone()), &m)
                .await
                .expect("header");
            let mut got = Vec::new();
            for _ in 0..k {
                got.push(first.next().await.expect("row"));
            }
            let (offset, next_row) = (first.offset(), first.next_row());
            let mut second = CsvReader::resume(
                std::io::Cursor::new(bytes[offset as usize..].to_vec()),
                layout.clone(),
                offset,
                next_row,
            );
            while let Some(x) = second.next().await {
                got.push(x);
            }
            assert_eq!(got, all, "split after {k} rows");
        }
    }
}

/// `text` as UTF-16 (with a byte order mark or without).
fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for u in std::iter::once(0xFEFF)
        .filter(|_| bom)
        .chain(text.encode_utf16())
    {
        out.extend_from_slice(&if big_endian {
            u.to_be_bytes()
        } else {
            u.to_le_bytes()
        });
    }
    out
}

#[tokio::test]
async fn semicolon_files_and_quoted_delimiters() {
    let csv = "UPN;Mobile;Email\na@contoso.com;+31 612345678;\"x,y\"@contoso.com\n";
    let (r, rows) = read_all(csv.as_bytes(), &ColumnMapping::default())
        .await
        .expect("header");
    assert_eq!(r.layout().delimiter, b';');
    let row = rows[0].as_ref().expect("row");
    assert_eq!(row.cell_count(), 3);
}

#[test]
fn mapping_and_country_errors_are_clear() {
    assert!(ColumnMapping::parse(&["Phone".to_string()]).is_err());
    let e = ColumnMapping::parse(&["Phone=fax".to_string()]).expect_err("unknown target");
    assert!(e.to_string().contains("fax"));
    assert!(ColumnMapping::from_env_value("Username=user, Status=ignore").is_ok());
    assert!(parse_country("Netherlands").is_err());
    assert!(parse_country("nl").is_ok());
    // An area code in brackets is national: no country is guessed.
    assert!(normalise("(425) 555-0100", None).is_err());
    assert_eq!(
        normalise("(425) 555-0100", Some(parse_country("US").expect("US"))).as_deref(),
        Ok("+1 4255550100")
    );
}

/// The whole file through the ingest core into a sink that keeps the messages.
async fn core_run(
    bytes: Vec<u8>,
    mapping: &ColumnMapping,
    s: Settings,
) -> (mfa_preload_core::ingest::Counts, MemorySink) {
    let job = Job::S3 {
        bucket: "b".into(),
        key: "k".into(),
        etag: "e".into(),
        run: None,
    };
    run_to_end(
        BytesSource(Arc::new(bytes)),
        MemorySink::keeping(),
        mapping,
        s,
        job,
        Bloom::with_bits(1 << 16, 8),
    )
    .await
    .expect("run")
}

/// The DLQ entries a run produced, as JSON, by row.
fn dlq_entries(sink: &MemorySink) -> Vec<(u64, serde_json::Value)> {
    sink.messages
        .iter()
        .filter(|m| m.1 == Dest::Dlq)
        .map(|m| (m.0.row, serde_json::from_str(&m.2.body).expect("DLQ JSON")))
        .collect()
}

#[tokio::test]
async fn a_stray_quote_rejects_its_line_alone() {
    let mut csv = String::from("UPN,Mobile,Email\n");
    csv.push_str("stray@contoso.com,\"+31 612345600,stray@example.org\n");
    for i in 0..1000 {
        csv.push_str(&format!(
            "user{i}@contoso.com,+31 6{:08},\n",
            20_000_000 + i
        ));
    }
    let (_, rows) = read_all(csv.as_bytes(), &ColumnMapping::default())
        .await
        .expect("header");
    assert_eq!(rows.len(), 1001);
    match &rows[0] {
        Err(e) => {
            assert_eq!(
                (e.row, e.reason, e.column.as_deref()),
                (2, Reason::InvalidRow, Some("Mobile"))
            );
            assert!(e.detail.contains("not closed"), "{}", e.detail);
        }
        Ok(r) => panic!("row 2 read as {r:?}"),
    }
    assert!(matches!(&rows[1], Ok(r) if r.row == 3 && r.cell(0) == Some("user0@contoso.com")));
    let (counts, sink) = core_run(
        csv.into_bytes(),
        &ColumnMapping::default(),
        Settings::default(),
    )
    .await;
    assert_eq!((counts.enqueued, counts.rejected_total()), (1000, 1));
    assert_eq!(counts.rejected.get(&Reason::InvalidRow), Some(&1));
    let dlq = dlq_entries(&sink);
    assert_eq!(dlq.len(), 1);
    assert_eq!((dlq[0].0, dlq[0].1["column"].as_str()), (2, Some("Mobile")));
    // Windows line ends, the quote in a later column, and the last line of the file.
    let csv = "UPN,Mobile,Email\r\na@contoso.com,+31 612345678,\"a@example.org\r\nb@contoso.com,+31 612345679,\r\nc@contoso.com,,\"open";
    let (_, rows) = read_all(csv.as_bytes(), &ColumnMapping::default())
        .await
        .expect("header");
    let got: Vec<(u64, Option<String>)> = rows
        .iter()
        .map(|r| match r {
            Ok(r) => (r.row, None),
            Err(e) => (e.row, e.column.clone()),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, Some("Email".into())),
            (3, None),
            (4, Some("Email".into()))
        ]
    );
}

#[tokio::test]
async fn a_carriage_return_inside_a_row_rejects_it_whole() {
    let csv = "UPN,Mobile,ForcedUpdate,ForcedRemoval\n\
               a@contoso.com,+31 612345678,no,\rTrue\n\
               b@contoso.com,+31 612345679,no,\"x\ry\"\n\
               c@contoso.com,+31 612345670,no,True\n";
    let rows = validate_file(
        csv.as_bytes(),
        &ColumnMapping::default(),
        &Settings::default(),
    )
    .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (i, r) in rows[..2].iter().enumerate() {
        let e = r.as_ref().expect_err("a CR inside the row");
        assert_eq!(
            (e.row, e.reason, e.column.as_deref()),
            (i as u64 + 2, Reason::InvalidRow, Some("ForcedRemoval"))
        );
        assert!(e.detail.contains("carriage return"), "{}", e.detail);
    }
    assert!(rows[2].as_ref().expect("c").policy.forced_removal);
    // The DLQ entry keeps the row whole, the cell after the CR included.
    let (counts, sink) = core_run(
        csv.as_bytes().to_vec(),
        &ColumnMapping::default(),
        Settings::default(),
    )
    .await;
    assert_eq!((counts.enqueued, counts.rejected_total()), (1, 2));
    let dlq = dlq_entries(&sink);
    assert_eq!(dlq[0].1["request"]["ForcedRemoval"], "\rTrue");
    assert_eq!(dlq[0].1["request"]["Mobile"], "+31 612345678");
}

#[tokio::test]
async fn control_characters_and_noncharacters_reject_the_row_naming_the_column() {
    let mapping = ColumnMapping::parse(&["Note=ignore".to_string()]).expect("mapping");
    let cells = [
        ("\u{0}", "U+0000"),
        ("\u{8}", "U+0008"),
        ("\u{1B}[31m", "U+001B"),
        ("\u{7F}", "U+007F"),
        ("\u{85}", "U+0085"),
        ("\u{FFFE}", "U+FFFE"),
        ("\u{FFFF}", "U+FFFF"),
        ("\u{FDD0}", "U+FDD0"),
        ("\u{10FFFF}", "U+10FFFF"),
    ];
    for column in ["UPN", "Mobile", "Note"] {
        for (bad, code) in cells {
            let cell = |c: &str, v: &str| {
                if c == column {
                    format!("x{bad}{v}")
                } else {
                    v.to_string()
                }
            };
            let csv = format!(
                "UPN,Mobile,Note\nok@contoso.com,+31 612345670,fine\n{},{},{}\n",
                cell("UPN", "a@contoso.com"),
                cell("Mobile", "+31 612345678"),
                cell("Note", "note")
            );
            let rows = validate_file(csv.as_bytes(), &mapping, &Settings::default()).await;
            assert!(rows[0].is_ok(), "{column} {code}");
            let e = rows[1].as_ref().expect_err("bad character");
            assert_eq!(
                (e.row, e.reason, e.column.as_deref()),
                (3, Reason::InvalidRow, Some(column)),
                "{code} in {column}: {e}"
            );
            assert!(e.detail.contains(code), "{}", e.detail);
            assert!(e.detail.contains("character 2"), "{}", e.detail);
        }
    }
    // Tabs, letters of every script, and characters outside the BMP are fine.
    let csv =
        "UPN,Mobile,Note\na@contoso.com,+31 612345678,Zo\u{eb} \u{1F600}\tok \u{4e2d}\u{FFFD}\n";
    let rows = validate_file(csv.as_bytes(), &mapping, &Settings::default()).await;
    assert!(rows[0].is_ok(), "{rows:?}");
}

#[tokio::test]
async fn a_file_without_a_header_is_refused_without_echoing_its_numbers() {
    let m = ColumnMapping::default();
    for csv in [
        "someone@contoso.com,+31 612345678,+31 201234567\nother@contoso.com,+31 612345679,\n",
        "\u{FEFF}someone@contoso.com;0612345678\n",
        "+31 612345678,someone@contoso.com\n",
    ] {
        let e = read_all(csv.as_bytes(), &m).await.err().expect("no header");
        assert!(matches!(e, HeaderError::NoHeader { line: 1, .. }), "{e:?}");
        let text = format!("{e} {e:?}");
        for number in ["612345678", "201234567", "0612345678"] {
            assert!(!text.contains(number), "{text}");
        }
        assert!(!text.contains("someone@"), "{text}");
        assert!(
            text.contains("header") || text.contains("name the columns"),
            "{text}"
        );
    }
    // A number among real headers is masked too.
    match read_all(b"UPN,+31 612345678\n", &m).await.err() {
        Some(HeaderError::UnknownColumns(c)) => assert_eq!(c, vec!["+31 6*****678"]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn excel_sep_lines_declare_the_separator() {
    let bytes = sample("excel-sep-line.csv");
    let (r, _) = read_all(&bytes, &ColumnMapping::default())
        .await
        .expect("header");
    assert_eq!(r.layout().delimiter, b';');
    assert_eq!(r.layout().headers[0], "UPN");
    let rows = validate_file(&bytes, &ColumnMapping::default(), &settings(Some("NL"))).await;
    let sanne = rows[0].as_ref().expect("sanne");
    assert_eq!(sanne.row, 3, "rows are lines of the file: sep= is line 1");
    assert_eq!(sanne.methods.mobile, some("+31 612345611"));
    assert!(sanne.policy.forced_update);
    assert!(rows.iter().all(Result::is_ok), "{rows:?}");
    // The declared separator wins over what the header would suggest, and may be a tab or '|'.
    let (r, rows) = read_all(
        b"SEP=|\r\nUPN|Email\r\na@contoso.com|x,y;z@example.org\r\n",
        &ColumnMapping::default(),
    )
    .await
    .expect("header");
    assert_eq!(r.layout().delimiter, b'|');
    assert_eq!(
        rows[0].as_ref().expect("row").cell(1),
        Some("x,y;z@example.org")
    );
    let (r, _) = read_all(b"sep=\t\nUPN\tMobile\n", &ColumnMapping::default())
        .await
        .expect("tab");
    assert_eq!(r.layout().delimiter, b'\t');
    for bad in [&b"sep=\nUPN\n"[..], b"sep=ab\nUPN\n", b"sep=\"\nUPN\n"] {
        assert!(
            matches!(
                read_all(bad, &ColumnMapping::default()).await.err(),
                Some(HeaderError::SeparatorLine(_))
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn powershell_export_csv_of_graph_users() {
    let bytes = sample("powershell-graph-users.csv");
    let (r, _) = read_all(&bytes, &ColumnMapping::default())
        .await
        .expect("header after the #TYPE line");
    assert_eq!(
        r.layout().headers,
        vec![
            "userPrincipalName",
            "mobilePhone",
            "businessPhones",
            "otherMails"
        ]
    );
    let rows = validate_file(&bytes, &ColumnMapping::default(), &Settings::default()).await;
    assert_eq!(rows.len(), 4);
    let megan = rows[0].as_ref().expect("megan");
    assert_eq!(megan.row, 3, "rows are lines of the file: #TYPE is line 1");
    assert_eq!(megan.methods.mobile, some("+31 612345601"));
    assert_eq!(megan.methods.office, some("+31 101234601"));
    assert_eq!(megan.methods.email, some("megan.private@example.org"));
    let lynne = rows[2].as_ref().expect_err("System.String[]");
    assert_eq!(
        (lynne.row, lynne.reason, lynne.column.as_deref()),
        (5, Reason::InvalidRow, Some("businessPhones"))
    );
    assert!(
        lynne.detail.contains("System.String[]") && lynne.detail.contains("-join"),
        "{}",
        lynne.detail
    );
    assert!(rows[3].is_ok(), "{:?}", rows[3]);
}

#[tokio::test]
async fn utf16_files_are_read_as_they_stream() {
    let bytes = sample("excel-unicode-text.csv");
    let (r, _) = read_all(&bytes, &ColumnMapping::default())
        .await
        .expect("header");
    assert_eq!(r.layout().delimiter, b'\t');
    assert_eq!(r.layout().headers[0], "UPN", "byte order mark dropped");
    let rows = validate_file(&bytes, &ColumnMapping::default(), &Settings::default()).await;
    assert_eq!(rows.len(), 5);
    let anna = rows[0].as_ref().expect("anna");
    assert_eq!(anna.methods.mobile, some("+49 15123456993"));
    assert_eq!(anna.methods.email, some("anna@gmail.com"));
    let jonas = rows[1].as_ref().expect_err("jonas.müller");
    assert_eq!((jonas.row, jonas.reason), (3, Reason::InvalidUser));
    assert!(jonas.detail.contains('\u{fc}'), "decoded: {}", jonas.detail);
    let paul = rows[3].as_ref().expect_err("short number");
    assert_eq!((paul.row, paul.reason), (5, Reason::InvalidPhoneNumber));
    // Big-endian and without a byte order mark: the same rows.
    let text = "UPN,Mobile\r\na@contoso.com,+31 612345678\r\n";
    for (be, bom) in [(true, true), (false, false), (true, false)] {
        let rows = validate_file(
            &utf16(text, be, bom),
            &ColumnMapping::default(),
            &Settings::default(),
        )
        .await;
        assert_eq!(
            rows[0].as_ref().expect("row").methods.mobile,
            some("+31 612345678")
        );
    }
    // Half a surrogate pair: that row is rejected, the next one read.
    let mut bad = utf16("UPN,Mobile\na@contoso.com,+31 612345678", false, true);
    bad.extend_from_slice(&0xD800u16.to_le_bytes());
    bad.extend(utf16("\nb@contoso.com,+31 612345679\n", false, false));
    let (_, rows) = read_all(&bad, &ColumnMapping::default())
        .await
        .expect("header");
    assert!(
        matches!(&rows[0], Err(e) if e.row == 2 && e.reason == Reason::InvalidRow && e.detail.contains("UTF-16")),
        "{rows:?}"
    );
    assert!(matches!(&rows[1], Ok(r) if r.cell(0) == Some("b@contoso.com")));
    // Memory stays bounded: a long UTF-16 file is read in chunks (the offsets add up).
    let mut long = String::from("UPN,Mobile\r\n");
    for i in 0..20_000 {
        long.push_str(&format!("u{i}@contoso.com,+31 6{:08}\r\n", 30_000_000 + i));
    }
    let bytes = utf16(&long, false, true);
    let (r, rows) = read_all(&bytes, &ColumnMapping::default())
        .await
        .expect("header");
    assert_eq!(rows.len(), 20_000);
    assert_eq!(r.offset(), bytes.len() as u64);
    let last = rows.last().expect("rows").as_ref().expect("ok");
    assert_eq!(last.end, bytes.len() as u64);
}
