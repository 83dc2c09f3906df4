//! `mfa-preload passes s3://BUCKET/KEY` against the moto server: the pass files the worker wrote
//! for an uploaded file's rows, gathered into one passes file readable by its owner only, in run
//! and row order; nothing of another file, no record object.

use std::process::Command;

use e2e_tests::lambda_rt::release_binary;
use e2e_tests::*;

const HEADER: &str = "UPN,TemporaryAccessPass,StartDateTime,LifetimeInMinutes,IsUsableOnce";

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: String) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into_bytes().into())
        .send()
        .await
        .expect("put a pass file");
}

fn pass_file(user: &str, pass: &str) -> String {
    format!("{HEADER}\n{user},{pass},2027-01-04T07:00:00Z,480,true\n")
}

fn passes(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(release_binary("mfa-preload"))
        .arg("passes")
        .args(args)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .output()
        .expect("run mfa-preload passes");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_pass_files_of_a_file_become_one_private_passes_file_in_row_order() {
    let cfg = sdk_config().await;
    let s3 = s3_client(&cfg);
    let bucket = unique("passes-cli");
    create_bucket(&s3, &bucket).await;
    let base = "passes/incoming/new hires.csv";
    put(
        &s3,
        &bucket,
        &format!("{base}/run-1/00000010.csv"),
        pass_file("c@contoso.com", "Pc10aaaa"),
    )
    .await;
    put(
        &s3,
        &bucket,
        &format!("{base}/run-1/00000003.csv"),
        pass_file("b@contoso.com", "'+Pb3bbbb"),
    )
    .await;
    put(
        &s3,
        &bucket,
        &format!("{base}/run-1/00000002.csv"),
        pass_file("a@contoso.com", "Pa2aaaaa"),
    )
    .await;
    put(
        &s3,
        &bucket,
        &format!("{base}/run-2/00000002.csv"),
        pass_file("a@contoso.com", "Pa2again"),
    )
    .await;
    // Another file whose key starts with this one's, and the records: none of them is taken.
    put(
        &s3,
        &bucket,
        "passes/incoming/new hires.csv.old/run-1/00000002.csv",
        pass_file("x@contoso.com", "OTHERxxx"),
    )
    .await;
    put(
        &s3,
        &bucket,
        "passes/.pending/0123456789abcdef0123456789abcdef",
        String::new(),
    )
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("s3://{bucket}/incoming/new hires.csv");
    let (code, out, err) = passes(&[&url, "--out", "handout.csv"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 Temporary Access Passes"), "{out}");
    let path = dir.path().join("handout.csv");
    let text = std::fs::read_to_string(&path).expect("the passes file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            HEADER,
            "a@contoso.com,Pa2aaaaa,2027-01-04T07:00:00Z,480,true",
            "b@contoso.com,'+Pb3bbbb,2027-01-04T07:00:00Z,480,true",
            "c@contoso.com,Pc10aaaa,2027-01-04T07:00:00Z,480,true",
            "a@contoso.com,Pa2again,2027-01-04T07:00:00Z,480,true",
        ]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // One run only; the default name is the file's stem.
    let (code, out, err) = passes(&[&url, "--run", "run-2"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    let text =
        std::fs::read_to_string(dir.path().join("new hires.passes.csv")).expect("default name");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("Pa2again") && !text.contains("Pa2aaaaa"),
        "{text}"
    );

    // An existing passes file is not overwritten; a file without passes says so.
    let (code, _, err) = passes(&[&url, "--out", "handout.csv"], dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("earlier run"), "{err}");
    let none = format!("s3://{bucket}/incoming/other.csv");
    let (code, _, err) = passes(&[&none, "--out", "none.csv"], dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("no pass files"), "{err}");
    assert!(!dir.path().join("none.csv").exists());
}
