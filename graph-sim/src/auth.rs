//! The token endpoint's logic: registered apps (certificate and granted application permissions
//! per tenant and client id), client assertion verification (PS256, `x5t#S256`, `aud`,
//! `iss`/`sub`, lifetime, `jti` replay), and the bearer tokens Graph endpoints accept.
//!
//! Issued access tokens have the JWT shape of Entra's app-only tokens (`header.payload.signature`,
//! base64url): the payload carries `aud`, `iss`, `tid`, `appid`, `iat`, `nbf`, `exp` and `roles`,
//! the application permissions granted to the app *when the token was issued*. Entra puts the
//! granted app roles in the `roles` claim of an app-only token
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference>,
//! "roles: The set of permissions exposed by the resource that the requesting application has been
//! given permission to call"), and a permission granted later is only seen in tokens issued after
//! it, so a client must fetch a new token once consent is granted. The signature is random bytes:
//! Graph's clients must not validate Graph's tokens, and the simulator checks tokens by lookup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use x509_parser::public_key::PublicKey;

/// Lifetime of an issued access token, as AAD reports it.
pub const TOKEN_LIFETIME_SECS: u64 = 3599;
/// Longest accepted client assertion lifetime (`exp` minus `nbf`/`iat`): 10 min plus a minute of
/// slack.
pub const MAX_ASSERTION_LIFETIME_SECS: u64 = 660;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A certificate that cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate is not PEM: {0}")]
    Pem(String),
    #[error("the PEM block is '{0}', expected CERTIFICATE")]
    Label(String),
    #[error("the certificate is not valid X.509: {0}")]
    X509(String),
    #[error("the certificate's public key is not RSA")]
    NotRsa,
}

/// Application permissions an app gets when registered without a list: everything the product
/// uses (the broad authentication-methods permission, reading users, the registration report's
/// AuditLog.Read.All, and reading the authentication methods policy, for the Temporary Access
/// Pass policy).
pub const DEFAULT_ROLES: [&str; 4] = [
    "UserAuthenticationMethod.ReadWrite.All",
    "User.Read.All",
    "AuditLog.Read.All",
    "Policy.Read.AuthenticationMethod",
];

/// The registered credential of one app and the application permissions granted to it.
#[derive(Clone)]
struct RegisteredApp {
    key: DecodingKey,
    thumbprint_s256: String,
    roles: Vec<String>,
}

/// What an issued access token stands for.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    expires: Instant,
    pub(crate) roles: Arc<[String]>,
    /// The token's `tid` and `appid`: what a 429's `x-ms-throttle-scope` names.
    pub(crate) tenant: Arc<str>,
    pub(crate) client_id: Arc<str>,
}

/// Parses a PEM certificate into its RSA verification key and its `x5t#S256` thumbprint.
fn parse_certificate(pem: &str) -> Result<RegisteredApp, CertificateError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| CertificateError::Pem(e.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(CertificateError::Label(pem.label));
    }
    let cert = pem
        .parse_x509()
        .map_err(|e| CertificateError::X509(e.to_string()))?;
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(_)) => {}
        _ => return Err(CertificateError::NotRsa),
    }
    // The SubjectPublicKeyInfo's bit string holds the PKCS#1 RSAPublicKey DER.
    let key = DecodingKey::from_rsa_der(&spki.subject_public_key.data);
    let thumbprint_s256 = URL_SAFE_NO_PAD.encode(Sha256::digest(&pem.contents));
    Ok(RegisteredApp {
        key,
        thumbprint_s256,
        roles: DEFAULT_ROLES.iter().map(|r| r.to_string()).collect(),
    })
}

/// An AAD error: `{"error","error_description","error_codes"}` with 400 or 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) code: u32,
    pub(crate) description: String,
}

impl TokenError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: String) -> Self {
        TokenError {
            status,
            error,
            code,
            description,
        }
    }

    fn invalid_client(code: u32, description: impl Into<String>) -> Self {
        TokenError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            description.into(),
        )
    }

    fn bad_request(error: &'static str, code: u32, description: impl Into<String>) -> Self {
        TokenError::new(StatusCode::BAD_REQUEST, error, code, description.into())
    }

    pub(crate) fn body(&self) -> Value {
        json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {}", self.code, self.description),
            "error_codes": [self.code],
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        })
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    jti: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a token request must match, derived from how the simulator is addressed.
pub(crate) struct TokenRequestContext<'a> {
    pub(crate) tenant: &'a str,
    /// Acceptable `aud` values (the full token URL under each accepted base URL).
    pub(crate) audiences: Vec<String>,
    /// Acceptable `scope` values (`{base}/.default`).
    pub(crate) scopes: Vec<String>,
}

/// Apps, issued tokens and seen assertion ids.
#[derive(Default)]
pub(crate) struct Auth {
    apps: RwLock<HashMap<(String, String), RegisteredApp>>,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    seen_jti: Mutex<HashMap<String, u64>>,
    /// Issue opaque tokens (no readable claims), as Microsoft reserves the right to.
    pub(crate) opaque: std::sync::atomic::AtomicBool,
}

impl Auth {
    pub(crate) fn register_app(
        &self,
        tenant: &str,
        client_id: &str,
        certificate_pem: &str,
    ) -> Result<(), CertificateError> {
        let mut app = parse_certificate(certificate_pem)?;
        let mut apps = self.apps.write();
        let key = (tenant.to_lowercase(), client_id.to_lowercase());
        // A new certificate for a known app keeps the permissions granted to it.
        if let Some(old) = apps.get(&key) {
            app.roles = old.roles.clone();
        }
        apps.insert(key, app);
        Ok(())
    }

    fn tenant_known(&self, tenant: &str) -> bool {
        let tenant = tenant.to_lowercase();
        self.apps.read().keys().any(|(t, _)| *t == tenant)
    }

    /// Replaces the application permissions granted to a registered app (an admin granting or
    /// revoking consent). Tokens already issued keep the roles they were issued with. Returns
    /// false when no such app is registered.
    pub(crate) fn set_roles(&self, tenant: &str, client_id: &str, roles: &[&str]) -> bool {
        let mut apps = self.apps.write();
        match apps.get_mut(&(tenant.to_lowercase(), client_id.to_lowercase())) {
            Some(app) => {
                app.roles = roles.iter().map(|r| r.to_string()).collect();
                true
            }
            None => false,
        }
    }

    /// Issues a fresh access token with the default roles ([`DEFAULT_ROLES`]).
    pub(crate) fn issue_token(&self) -> String {
        let roles: Vec<String> = DEFAULT_ROLES.iter().map(|r| r.to_string()).collect();
        self.issue_token_for("sim-tenant", "sim-client", &roles)
    }

    /// Issues a fresh access token for `client_id` in `tenant` carrying `roles`.
    pub(crate) fn issue_token_for(
        &self,
        tenant: &str,
        client_id: &str,
        roles: &[String],
    ) -> String {
        let now = unix_now();
        let header = json!({"typ": "JWT", "alg": "RS256", "x5t": "sim", "kid": "sim"});
        let payload = json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "tid": tenant,
            "appid": client_id,
            "azp": client_id,
            "idtyp": "app",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "roles": roles,
            "uti": uuid::Uuid::new_v4().to_string(),
        });
        let signature: [u8; 32] = rand::random();
        // "Access tokens are opaque to clients ... Don't try to validate or read tokens for any
        // API you don't own" (access-tokens overview); Graph's are JWTs today, so both shapes.
        let token = if self.opaque.load(std::sync::atomic::Ordering::Relaxed) {
            URL_SAFE_NO_PAD.encode(signature)
        } else {
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(payload.to_string()),
                URL_SAFE_NO_PAD.encode(signature)
            )
        };
        let now = Instant::now();
        let mut tokens = self.tokens.lock();
        tokens.retain(|_, t| t.expires > now);
        tokens.insert(
            token.clone(),
            IssuedToken {
                expires: now + Duration::from_secs(TOKEN_LIFETIME_SECS),
                roles: roles.to_vec().into(),
                tenant: tenant.into(),
                client_id: client_id.into(),
            },
        );
        token
    }

    /// The token's grant, when it was issued here and has not expired or been revoked.
    pub(crate) fn token_info(&self, token: &str) -> Option<IssuedToken> {
        self.tokens
            .lock()
            .get(token)
            .filter(|t| t.expires > Instant::now())
            .cloned()
    }

    #[cfg(test)]
    pub(crate) fn token_valid(&self, token: &str) -> bool {
        self.token_info(token).is_some()
    }

    pub(crate) fn revoke_tokens(&self) {
        self.tokens.lock().clear();
    }

    /// Handles a client-credentials token request with a certificate assertion; returns the
    /// success body.
    pub(crate) fn token_request(
        &self,
        ctx: &TokenRequestContext<'_>,
        form: &HashMap<String, String>,
    ) -> Result<Value, TokenError> {
        let param = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
        match param("grant_type") {
            Some("client_credentials") => {}
            Some(other) => {
                return Err(TokenError::bad_request(
                    "unsupported_grant_type",
                    70003,
                    format!("The app requested an unsupported grant type '{other}'."),
                ));
            }
            None => {
                return Err(TokenError::bad_request(
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'grant_type'.",
                ));
            }
        }
        if !self.tenant_known(ctx.tenant) {
            return Err(TokenError::bad_request(
                "invalid_request",
                90002,
                format!("Tenant '{}' not found.", ctx.tenant),
            ));
        }
        let scope = param("scope").ok_or_else(|| {
            TokenError::bad_request(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        })?;
        if !ctx.scopes.iter().any(|s| s == scope) {
            return Err(TokenError::bad_request(
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope '{scope}' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier."
                ),
            ));
        }
        let assertion = param("client_assertion").ok_or_else(|| {
            TokenError::bad_request(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        })?;
        if param("client_assertion_type") != Some(JWT_BEARER) {
            return Err(TokenError::bad_request(
                "invalid_request",
                50027,
                format!("client_assertion_type must be '{JWT_BEARER}'."),
            ));
        }
        let client_id = self.verify_assertion(ctx, param("client_id"), assertion)?;
        let roles = self
            .apps
            .read()
            .get(&(ctx.tenant.to_lowercase(), client_id.to_lowercase()))
            .map(|a| a.roles.clone())
            .unwrap_or_default();
        tracing::debug!(tenant = ctx.tenant, client_id, ?roles, "token issued");
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "ext_expires_in": TOKEN_LIFETIME_SECS,
            "access_token": self.issue_token_for(ctx.tenant, &client_id, &roles),
        }))
    }

    /// Verifies the client assertion; returns the client id it authenticates.
    fn verify_assertion(
        &self,
        ctx: &TokenRequestContext<'_>,
        client_id_param: Option<&str>,
        assertion: &str,
    ) -> Result<String, TokenError> {
        let malformed = |why: String| {
            TokenError::invalid_client(50027, format!("JWT token is invalid or malformed: {why}."))
        };
        let header =
            jsonwebtoken::decode_header(assertion).map_err(|e| malformed(e.to_string()))?;
        if header.alg != Algorithm::PS256 {
            return Err(TokenError::invalid_client(
                5002738,
                format!(
                    "Invalid JWT token. '{:?}' is not a supported signature algorithm; use PS256.",
                    header.alg
                ),
            ));
        }
        let unverified = jsonwebtoken::dangerous::insecure_decode::<AssertionClaims>(assertion)
            .map_err(|e| malformed(e.to_string()))?
            .claims;
        let iss = unverified
            .iss
            .clone()
            .ok_or_else(|| malformed("the 'iss' claim is missing".into()))?;
        let client_id = client_id_param.unwrap_or(&iss).to_string();
        if !client_id.eq_ignore_ascii_case(&iss) {
            return Err(TokenError::invalid_client(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            ));
        }
        let app = self
            .apps
            .read()
            .get(&(ctx.tenant.to_lowercase(), client_id.to_lowercase()))
            .cloned()
            .ok_or_else(|| {
                TokenError::bad_request(
                    "unauthorized_client",
                    700016,
                    format!(
                        "Application with identifier '{client_id}' was not found in the directory '{}'.",
                        ctx.tenant
                    ),
                )
            })?;
        match &header.x5t_s256 {
            Some(t) if *t == app.thumbprint_s256 => {}
            other => {
                return Err(TokenError::invalid_client(
                    700027,
                    format!(
                        "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{}']",
                        other.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
        }

        let mut validation = Validation::new(Algorithm::PS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.set_audience(&ctx.audiences);
        validation.set_issuer(&[iss.as_str()]);
        validation.sub = Some(iss.clone());
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &app.key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::invalid_client(
                    700027,
                    "Client assertion failed signature validation.",
                ),
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => {
                    TokenError::invalid_client(
                        700024,
                        "Client assertion is not within its valid time range.",
                    )
                }
                ErrorKind::InvalidAudience => TokenError::invalid_client(
                    700212,
                    format!(
                        "The audience claim of the client assertion must be the token endpoint URL ({}).",
                        ctx.audiences.first().map(String::as_str).unwrap_or("")
                    ),
                ),
                ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => TokenError::invalid_client(
                    700023,
                    "Client assertion 'iss' and 'sub' must both be the client id.",
                ),
                _ => malformed(e.to_string()),
            })?
            .claims;

        let exp = claims
            .exp
            .ok_or_else(|| malformed("the 'exp' claim is missing".into()))?;
        let start = claims
            .nbf
            .or(claims.iat)
            .ok_or_else(|| malformed("the 'nbf' or 'iat' claim is required".into()))?;
        if exp <= start || exp - start > MAX_ASSERTION_LIFETIME_SECS {
            return Err(TokenError::invalid_client(
                700024,
                format!(
                    "Client assertion is not within its valid time range: its lifetime must be at most {MAX_ASSERTION_LIFETIME_SECS} seconds."
                ),
            ));
        }
        if claims.iat.is_some_and(|iat| iat > unix_now() + LEEWAY_SECS) {
            return Err(TokenError::invalid_client(
                700024,
                "Client assertion is not within its valid time range: 'iat' is in the future.",
            ));
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty())
            .ok_or_else(|| malformed("the 'jti' claim is missing".into()))?;
        let now = unix_now();
        let mut seen = self.seen_jti.lock();
        seen.retain(|_, e| *e + LEEWAY_SECS >= now);
        if seen.contains_key(&jti) {
            return Err(TokenError::invalid_client(
                700025,
                "Client assertion has already been used (replayed 'jti').",
            ));
        }
        seen.insert(jti, exp);
        Ok(client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../../tests/fixtures/test-app.crt.pem");

    #[test]
    fn parses_the_fixture_certificate() {
        let app = parse_certificate(CERT).expect("fixture certificate");
        assert_eq!(app.thumbprint_s256.len(), 43);
    }

    #[test]
    fn rejects_non_certificates() {
        assert!(matches!(
            parse_certificate("not a pem"),
            Err(CertificateError::Pem(_))
        ));
        let key = include_str!("../../tests/fixtures/test-app.key.pem");
        assert!(matches!(
            parse_certificate(key),
            Err(CertificateError::Label(_))
        ));
    }

    #[test]
    fn tokens_are_unique_and_revocable() {
        let auth = Auth::default();
        let a = auth.issue_token();
        let b = auth.issue_token();
        assert_ne!(a, b);
        assert!(auth.token_valid(&a));
        assert!(!auth.token_valid("nope"));
        auth.revoke_tokens();
        assert!(!auth.token_valid(&a));
    }

    #[test]
    fn tokens_carry_the_roles_granted_when_issued() {
        let auth = Auth::default();
        auth.register_app("t", "c", CERT).expect("register");
        assert!(auth.set_roles("t", "c", &["UserAuthMethod-Phone.ReadWrite.All"]));
        assert!(!auth.set_roles("t", "other", &[]));
        let token = auth.issue_token_for("t", "c", &["A.B".to_string()]);
        let payload = token.split('.').nth(1).expect("three parts");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
                .expect("json");
        assert_eq!(claims["roles"], json!(["A.B"]));
        assert_eq!(claims["tid"], "t");
        let info = auth.token_info(&token).expect("issued");
        assert_eq!(&*info.roles, &["A.B".to_string()]);
    }
}
