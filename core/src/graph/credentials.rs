//! App credentials: the secret JSON (README, "Configuration"), in its PEM or PFX form, checked
//! field by field, the certificate's dates, and the signed client assertion the token endpoint
//! takes instead of a client secret.
//!
//! Nothing here ever prints a private key, a PFX or its password: [`Credentials`] implements
//! `Debug` by hand and errors name fields, never values.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::graph::error::TokenError;

/// A certificate expiring within this many days is warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// Lifetime of a client assertion.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// A malformed secret. Names the field and what is wrong, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("the credentials secret is not a JSON object ({0})")]
    NotJson(String),
    #[error("the credentials secret has no '{0}' field")]
    MissingField(&'static str),
    #[error("the credentials secret field '{field}' is not usable: {why}")]
    InvalidField { field: &'static str, why: String },
    #[error(
        "the credentials secret must hold either 'certificatePem' and 'privateKeyPem', or 'pfxBase64' and 'pfxPassword'{0}"
    )]
    WhichForm(&'static str),
}

fn invalid(field: &'static str, why: impl Into<String>) -> CredentialsError {
    CredentialsError::InvalidField {
        field,
        why: why.into(),
    }
}

/// How soon the certificate expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateExpiry {
    Valid { days_left: i64 },
    ExpiringSoon { days_left: i64 },
    Expired { days_ago: i64 },
}

/// The app's identity: tenant, client id, certificate and private key.
#[derive(Clone)]
pub struct Credentials {
    tenant_id: String,
    client_id: String,
    certificate_der: Vec<u8>,
    key: EncodingKey,
    x5t_s256: String,
    not_after: i64,
    not_before: i64,
    subject: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("certificate_subject", &self.subject)
            .field("x5t_s256", &self.x5t_s256)
            .field("not_after", &self.not_after)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct AssertionClaims {
    aud: String,
    iss: String,
    sub: String,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

/// Now, in whole seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Secrets pasted through some consoles keep `\n` as two characters; turn them back into newlines
/// when the text has no real line break.
fn unescape_pem(s: &str) -> String {
    if !s.contains('\n') && s.contains("\\n") {
        s.replace("\\r\\n", "\n").replace("\\n", "\n")
    } else {
        s.to_string()
    }
}

fn get_string<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    field: &'static str,
) -> Result<Option<&'a str>, CredentialsError> {
    match obj.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn required<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    field: &'static str,
) -> Result<&'a str, CredentialsError> {
    match get_string(obj, field)? {
        Some(s) if !s.trim().is_empty() => Ok(s.trim()),
        Some(_) => Err(invalid(field, "is empty")),
        None => Err(CredentialsError::MissingField(field)),
    }
}

fn check_tenant(tenant: &str) -> Result<(), CredentialsError> {
    // A GUID or a domain: it goes into the token URL path.
    let ok = tenant.len() <= 256
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !tenant.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "tenantId",
            "must be the directory (tenant) id GUID or a domain name",
        ))
    }
}

fn check_client(client: &str) -> Result<(), CredentialsError> {
    let ok = client.len() <= 256 && client.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "clientId",
            "must be the application (client) id, without spaces",
        ))
    }
}

/// DER of the first `CERTIFICATE` block of `pem`.
fn certificate_der_from_pem(pem: &str) -> Result<Vec<u8>, CredentialsError> {
    let pem = unescape_pem(pem);
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        match block {
            Ok(b) if b.label == "CERTIFICATE" => return Ok(b.contents),
            Ok(_) => continue,
            Err(_) => {
                return Err(invalid(
                    "certificatePem",
                    "is not PEM text (-----BEGIN CERTIFICATE----- ...)",
                ))
            }
        }
    }
    Err(invalid(
        "certificatePem",
        "holds no -----BEGIN CERTIFICATE----- block",
    ))
}

fn key_from_pem(pem: &str) -> Result<EncodingKey, CredentialsError> {
    let pem = unescape_pem(pem);
    if pem.contains("ENCRYPTED PRIVATE KEY") {
        return Err(invalid(
            "privateKeyPem",
            "is an encrypted key; store it unencrypted (PKCS#8 'BEGIN PRIVATE KEY') in the secret, or use pfxBase64 + pfxPassword",
        ));
    }
    if !pem.contains("-----BEGIN") {
        return Err(invalid(
            "privateKeyPem",
            "is not PEM text (-----BEGIN PRIVATE KEY----- ...)",
        ));
    }
    EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| {
        invalid(
            "privateKeyPem",
            "is not an RSA private key in PKCS#8 ('BEGIN PRIVATE KEY') or PKCS#1 ('BEGIN RSA PRIVATE KEY') form",
        )
    })
}

fn pkcs8_der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

impl Credentials {
    /// Parses the secret JSON (either form in README, "Configuration") and warns when the certificate
    /// is expired or expires within [`EXPIRY_WARNING_DAYS`].
    pub fn from_secret_json(secret: &str) -> Result<Credentials, CredentialsError> {
        let value: serde_json::Value = serde_json::from_str(secret).map_err(|e| {
            // serde_json's syntax errors do not quote the input; only the position is kept.
            CredentialsError::NotJson(format!(
                "invalid JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        let obj = value
            .as_object()
            .ok_or_else(|| CredentialsError::NotJson("the top level is not an object".into()))?;
        let tenant = required(obj, "tenantId")?;
        let client = required(obj, "clientId")?;
        let has_pem = obj.contains_key("certificatePem") || obj.contains_key("privateKeyPem");
        let has_pfx = obj.contains_key("pfxBase64");
        match (has_pem, has_pfx) {
            (true, true) => Err(CredentialsError::WhichForm(", not both")),
            (false, false) => Err(CredentialsError::WhichForm("")),
            (true, false) => Credentials::from_pem(
                tenant,
                client,
                required(obj, "certificatePem")?,
                required(obj, "privateKeyPem")?,
            ),
            (false, true) => {
                let pfx_b64 = required(obj, "pfxBase64")?;
                // An absent password is an empty one (PFX files exported without a password).
                let password = get_string(obj, "pfxPassword")?.unwrap_or("");
                let cleaned: String = pfx_b64.chars().filter(|c| !c.is_whitespace()).collect();
                let der = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
                    .decode(cleaned.as_bytes())
                    .map_err(|_| invalid("pfxBase64", "is not base64"))?;
                Credentials::from_pfx(tenant, client, &der, password)
            }
        }
    }

    /// From a PEM certificate and its PEM private key.
    pub fn from_pem(
        tenant_id: &str,
        client_id: &str,
        certificate_pem: &str,
        private_key_pem: &str,
    ) -> Result<Credentials, CredentialsError> {
        let der = certificate_der_from_pem(certificate_pem)?;
        let key = key_from_pem(private_key_pem)?;
        Credentials::build(
            tenant_id,
            client_id,
            der,
            key,
            "certificatePem",
            "privateKeyPem",
        )
    }

    /// From PKCS#12 bytes and their password (PBES2/AES as modern tooling writes, or legacy
    /// PBES1).
    pub fn from_pfx(
        tenant_id: &str,
        client_id: &str,
        pfx: &[u8],
        password: &str,
    ) -> Result<Credentials, CredentialsError> {
        use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
        let open = |policy| KeyStore::from_pkcs12(pfx, password, policy);
        let store = open(Pkcs12ImportPolicy::Strict).map_err(|_| {
            invalid(
                "pfxBase64",
                "cannot be opened with pfxPassword (wrong password, or not a PKCS#12 file)",
            )
        })?;
        let relaxed;
        let chain = match store.private_key_chain() {
            Some((_, chain)) => chain,
            None => {
                relaxed = open(Pkcs12ImportPolicy::Relaxed)
                    .map_err(|_| invalid("pfxBase64", "cannot be opened with pfxPassword"))?;
                relaxed.private_key_chain().map(|(_, c)| c).ok_or_else(|| {
                    invalid("pfxBase64", "holds no private key with a certificate")
                })?
            }
        };
        let cert = chain
            .certs()
            .first()
            .ok_or_else(|| invalid("pfxBase64", "holds a private key without its certificate"))?;
        let key_pem = pkcs8_der_to_pem(chain.key().as_der());
        let key = EncodingKey::from_rsa_pem(key_pem.as_bytes())
            .map_err(|_| invalid("pfxBase64", "holds a private key that is not RSA"))?;
        Credentials::build(
            tenant_id,
            client_id,
            cert.as_der().to_vec(),
            key,
            "pfxBase64",
            "pfxBase64",
        )
    }

    fn build(
        tenant_id: &str,
        client_id: &str,
        certificate_der: Vec<u8>,
        key: EncodingKey,
        cert_field: &'static str,
        key_field: &'static str,
    ) -> Result<Credentials, CredentialsError> {
        let tenant_id = tenant_id.trim();
        let client_id = client_id.trim();
        if tenant_id.is_empty() {
            return Err(CredentialsError::MissingField("tenantId"));
        }
        if client_id.is_empty() {
            return Err(CredentialsError::MissingField("clientId"));
        }
        check_tenant(tenant_id)?;
        check_client(client_id)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&certificate_der)
            .map_err(|_| invalid(cert_field, "is not an X.509 certificate"))?;
        let not_after = cert.validity().not_after.timestamp();
        let not_before = cert.validity().not_before.timestamp();
        let subject = cert.subject().to_string();
        // The key must sign, and its signature must verify with the certificate's public key:
        // a mismatched pair would only show up as an opaque AADSTS error at token time.
        let probe = b"mfa-preload key check";
        let signature = jsonwebtoken::crypto::sign(probe, &key, Algorithm::PS256)
            .map_err(|_| invalid(key_field, "cannot sign with PS256 (not a usable RSA key)"))?;
        let public = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
        let matches = jsonwebtoken::crypto::verify(&signature, probe, &public, Algorithm::PS256)
            .unwrap_or(false);
        if !matches {
            return Err(invalid(
                key_field,
                "does not belong to the certificate (or the certificate's key is not RSA)",
            ));
        }
        let x5t_s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(&certificate_der));
        let creds = Credentials {
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            certificate_der,
            key,
            x5t_s256,
            not_after,
            not_before,
            subject,
        };
        creds.warn_if_expiring();
        Ok(creds)
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// base64url (no padding) SHA-256 of the DER certificate: the `x5t#S256` header.
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The certificate's `notBefore`, Unix seconds.
    pub fn certificate_not_before(&self) -> i64 {
        self.not_before
    }

    /// The certificate's subject (e.g. `CN=mfa-preload`).
    pub fn certificate_subject(&self) -> &str {
        &self.subject
    }

    /// The certificate's `notAfter`, Unix seconds.
    pub fn certificate_not_after(&self) -> i64 {
        self.not_after
    }

    /// Expiry status at `now` (Unix seconds).
    pub fn expiry_at(&self, now: i64) -> CertificateExpiry {
        let left = self.not_after - now;
        if left <= 0 {
            CertificateExpiry::Expired {
                days_ago: (-left) / 86_400,
            }
        } else if left < EXPIRY_WARNING_DAYS * 86_400 {
            CertificateExpiry::ExpiringSoon {
                days_left: left / 86_400,
            }
        } else {
            CertificateExpiry::Valid {
                days_left: left / 86_400,
            }
        }
    }

    /// Logs a warning when the certificate is expired or expires soon; returns the status.
    pub fn warn_if_expiring(&self) -> CertificateExpiry {
        self.warn_if_expiring_at(i64::try_from(unix_now()).unwrap_or(i64::MAX))
    }

    /// [`Credentials::warn_if_expiring`] at `now` (Unix seconds).
    pub fn warn_if_expiring_at(&self, now: i64) -> CertificateExpiry {
        let status = self.expiry_at(now);
        match status {
            CertificateExpiry::Expired { days_ago } => tracing::warn!(
                client_id = %self.client_id,
                x5t_s256 = %self.x5t_s256,
                not_after = self.not_after,
                days_ago,
                "the app certificate has EXPIRED: token requests will fail; upload a new certificate to the app registration and the secret"
            ),
            CertificateExpiry::ExpiringSoon { days_left } => tracing::warn!(
                client_id = %self.client_id,
                x5t_s256 = %self.x5t_s256,
                not_after = self.not_after,
                days_left,
                "the app certificate expires soon: renew it in the app registration and the secret"
            ),
            CertificateExpiry::Valid { .. } => {}
        }
        status
    }

    /// A signed client assertion for `token_url` (PS256, `x5t#S256`, 10 minutes, fresh `jti`).
    pub fn client_assertion(&self, token_url: &str) -> Result<String, TokenError> {
        let now = unix_now();
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(self.x5t_s256.clone());
        let claims = AssertionClaims {
            aud: token_url.to_string(),
            iss: self.client_id.clone(),
            sub: self.client_id.clone(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| TokenError::Assertion(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    fn fixture(name: &str) -> String {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn pfx_b64() -> String {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/test-app.pfx");
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap())
    }

    const TENANT: &str = "11111111-2222-3333-4444-555555555555";
    const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

    fn pem_secret() -> serde_json::Value {
        serde_json::json!({
            "tenantId": TENANT,
            "clientId": CLIENT,
            "certificatePem": fixture("test-app.crt.pem"),
            "privateKeyPem": fixture("test-app.key.pem"),
        })
    }

    fn expected_x5t() -> String {
        let pem = fixture("test-app.crt.pem");
        let der = certificate_der_from_pem(&pem).unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&der))
    }

    #[test]
    fn parses_the_pem_form() {
        let c = Credentials::from_secret_json(&pem_secret().to_string()).unwrap();
        assert_eq!(c.tenant_id(), TENANT);
        assert_eq!(c.client_id(), CLIENT);
        assert_eq!(c.x5t_s256(), expected_x5t());
        assert!(!c.x5t_s256().contains('=') && !c.x5t_s256().contains('+'));
        assert!(matches!(
            c.warn_if_expiring(),
            CertificateExpiry::Valid { .. }
        ));
    }

    #[test]
    fn parses_the_pfx_form_and_matches_the_pem_certificate() {
        let secret = serde_json::json!({
            "tenantId": TENANT, "clientId": CLIENT,
            "pfxBase64": pfx_b64(), "pfxPassword": "test-pfx-password",
        });
        let c = Credentials::from_secret_json(&secret.to_string()).unwrap();
        assert_eq!(c.x5t_s256(), expected_x5t());
        let wrong = serde_json::json!({
            "tenantId": TENANT, "clientId": CLIENT,
            "pfxBase64": pfx_b64(), "pfxPassword": "not-the-password",
        });
        let err = Credentials::from_secret_json(&wrong.to_string()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("pfxBase64") && msg.contains("pfxPassword"),
            "{msg}"
        );
        assert!(!msg.contains("not-the-password"));
    }

    #[test]
    fn escaped_newlines_in_pem_are_accepted() {
        let mut s = pem_secret();
        let flat = fixture("test-app.crt.pem").replace('\n', "\\n");
        s["certificatePem"] = serde_json::Value::String(flat);
        assert!(Credentials::from_secret_json(&s.to_string()).is_ok());
    }

    #[test]
    fn malformed_secrets_name_the_field_not_the_value() {
        let key = fixture("test-app.key.pem");
        let key_body_line = key.lines().nth(1).unwrap().to_string();
        let mut cases: Vec<(serde_json::Value, &str)> = Vec::new();
        let mut s = pem_secret();
        s.as_object_mut().unwrap().remove("tenantId");
        cases.push((s, "tenantId"));
        let mut s = pem_secret();
        s["clientId"] = serde_json::json!(42);
        cases.push((s, "clientId"));
        let mut s = pem_secret();
        s["tenantId"] = serde_json::json!("evil/../path secret-tenant");
        cases.push((s, "tenantId"));
        let mut s = pem_secret();
        s["privateKeyPem"] = serde_json::json!("MIIEv-SECRET-KEY-MATERIAL");
        cases.push((s, "privateKeyPem"));
        let mut s = pem_secret();
        s["certificatePem"] =
            serde_json::json!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        cases.push((s, "certificatePem"));
        let mut s = pem_secret();
        // The key of another certificate.
        s["privateKeyPem"] = serde_json::json!(fixture("other-app.key.pem"));
        cases.push((s, "privateKeyPem"));
        let mut s = pem_secret();
        s.as_object_mut().unwrap().remove("privateKeyPem");
        cases.push((s, "privateKeyPem"));
        let s = serde_json::json!({"tenantId": TENANT, "clientId": CLIENT, "pfxBase64": "%%%not-base64%%%", "pfxPassword": "pw-SECRET"});
        cases.push((s, "pfxBase64"));
        let s = serde_json::json!({"tenantId": TENANT, "clientId": CLIENT});
        cases.push((s, "certificatePem"));
        for (secret, field) in cases {
            let text = secret.to_string();
            let err = Credentials::from_secret_json(&text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(field), "{field}: {msg}");
            for forbidden in ["SECRET", "evil", key_body_line.as_str(), "%%%"] {
                assert!(
                    !msg.contains(forbidden),
                    "{field}: leaked {forbidden}: {msg}"
                );
            }
        }
        let err = Credentials::from_secret_json("{\"tenantId\": \"x\", SECRET").unwrap_err();
        assert!(matches!(err, CredentialsError::NotJson(_)));
        assert!(!err.to_string().contains("SECRET"));
    }

    #[test]
    fn debug_never_prints_the_key() {
        let c = Credentials::from_secret_json(&pem_secret().to_string()).unwrap();
        let dbg = format!("{c:?}");
        let key = fixture("test-app.key.pem");
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!dbg.contains(line));
        }
        assert!(dbg.contains("<redacted>"));
        assert!(dbg.contains(CLIENT));
        assert_eq!(
            format!("{:?}", crate::graph::AccessToken::new("tok-123")),
            "AccessToken(<redacted>)"
        );
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `f` logs.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (out, logs)
    }

    #[test]
    fn expiring_certificate_is_warned_about() {
        // The clock is set against the certificate's own dates, so the test does not age.
        let c = Credentials::from_pem(
            TENANT,
            CLIENT,
            &fixture("other-app.crt.pem"),
            &fixture("other-app.key.pem"),
        )
        .unwrap();
        let not_after = c.certificate_not_after();
        let (status, logs) = logged(|| c.warn_if_expiring_at(not_after - 86_400 * 10 + 60));
        assert_eq!(status, CertificateExpiry::ExpiringSoon { days_left: 9 });
        assert!(
            logs.contains("WARN") && logs.contains("expires soon"),
            "{logs}"
        );
        let (status, logs) = logged(|| c.warn_if_expiring_at(not_after + 86_400 * 2));
        assert_eq!(status, CertificateExpiry::Expired { days_ago: 2 });
        assert!(logs.contains("WARN") && logs.contains("EXPIRED"), "{logs}");
        let (status, logs) = logged(|| c.warn_if_expiring_at(not_after - 86_400 * 31));
        assert_eq!(status, CertificateExpiry::Valid { days_left: 31 });
        assert!(logs.is_empty(), "{logs}");

        // The long-lived certificate logs nothing when it is loaded.
        let (_, logs) =
            logged(|| Credentials::from_secret_json(&pem_secret().to_string()).unwrap());
        assert!(logs.is_empty(), "{logs}");
    }

    #[test]
    fn assertion_has_the_right_header_and_claims() {
        let c = Credentials::from_secret_json(&pem_secret().to_string()).unwrap();
        let url = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
        let a = c.client_assertion(&url).unwrap();
        let b = c.client_assertion(&url).unwrap();
        let header = jsonwebtoken::decode_header(&a).unwrap();
        assert_eq!(header.alg, Algorithm::PS256);
        assert_eq!(header.x5t_s256.as_deref(), Some(c.x5t_s256()));
        // Verify the signature with the certificate's public key.
        let pem = fixture("test-app.crt.pem");
        let der = certificate_der_from_pem(&pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let key = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
        let mut v = jsonwebtoken::Validation::new(Algorithm::PS256);
        v.set_audience(&[url.as_str()]);
        v.set_issuer(&[CLIENT]);
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<AssertionClaims>(&a, &key, &v).unwrap();
        let cl = data.claims;
        assert_eq!(cl.aud, url);
        assert_eq!(cl.iss, CLIENT);
        assert_eq!(cl.sub, CLIENT);
        assert_eq!(cl.exp - cl.iat, 600);
        assert!(cl.nbf <= cl.iat);
        assert!(uuid::Uuid::parse_str(&cl.jti).is_ok());
        let other: AssertionClaims = jsonwebtoken::dangerous::insecure_decode_claims(&b).unwrap();
        assert_ne!(other.jti, cl.jti);
    }
}
