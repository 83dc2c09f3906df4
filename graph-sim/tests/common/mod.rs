//! Shared helpers for the simulator's integration tests: fixture credentials, client
//! assertions, and a small Graph client.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use graph_sim::{GraphSim, SeedUser, SimConfig};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Client, Method, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn app_cert() -> String {
    fixture("test-app.crt.pem")
}

pub fn app_key() -> String {
    fixture("test-app.key.pem")
}

/// base64url(SHA-256(DER)) of a PEM certificate.
pub fn thumbprint_s256(cert_pem: &str) -> String {
    let b64: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(b64.trim()).expect("certificate base64");
    URL_SAFE_NO_PAD.encode(Sha256::digest(&der))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// What goes into a client assertion; `valid` builds a correct one for `base`.
pub struct Assertion {
    pub key_pem: String,
    pub x5t_s256: Option<String>,
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub jti: Option<String>,
    pub nbf: u64,
    pub iat: u64,
    pub exp: u64,
}

impl Assertion {
    pub fn valid(base: &str) -> Self {
        let now = now();
        Assertion {
            key_pem: app_key(),
            x5t_s256: Some(thumbprint_s256(&app_cert())),
            aud: format!("{base}/{TENANT}/oauth2/v2.0/token"),
            iss: CLIENT_ID.into(),
            sub: CLIENT_ID.into(),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            nbf: now,
            iat: now,
            exp: now + 600,
        }
    }

    pub fn sign(&self) -> String {
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = self.x5t_s256.clone();
        let mut claims = json!({
            "aud": self.aud, "iss": self.iss, "sub": self.sub,
            "nbf": self.nbf, "iat": self.iat, "exp": self.exp,
        });
        if let Some(jti) = &self.jti {
            claims["jti"] = json!(jti);
        }
        let key = EncodingKey::from_rsa_pem(self.key_pem.as_bytes()).expect("fixture key");
        jsonwebtoken::encode(&header, &claims, &key).expect("sign assertion")
    }
}

pub fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// Posts a token request with `assertion`; returns status and JSON body.
pub async fn token_request(client: &Client, base: &str, assertion: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("scope", &format!("{base}/.default")),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    let resp = client
        .post(format!("{base}/{TENANT}/oauth2/v2.0/token"))
        .form(&form)
        .send()
        .await
        .expect("token request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("token response json"))
}

/// A started simulator with the fixture app registered, plus a token and a client.
pub struct Env {
    pub sim: GraphSim,
    pub client: Client,
    pub token: String,
}

impl Env {
    pub async fn start(cfg: SimConfig) -> Env {
        let sim = GraphSim::start(cfg).await.expect("start simulator");
        sim.register_app(TENANT, CLIENT_ID, &app_cert());
        let token = sim.issue_token();
        Env {
            sim,
            client: http(),
            token,
        }
    }

    pub async fn with_users(cfg: SimConfig, users: Vec<SeedUser>) -> Env {
        let env = Env::start(cfg).await;
        env.sim.add_users(users);
        env
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// A token from the token endpoint for the fixture app (its roles as granted now).
    pub async fn fetch_token(&self) -> String {
        let base = self.sim.base_url();
        let (status, body) =
            token_request(&self.client, &base, &Assertion::valid(&base).sign()).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A request as a correct client sends it (`Content-Length: 0` on a bodyless POST).
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let is_post = method == Method::POST;
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        match body {
            Some(b) => req = req.json(&b),
            // reqwest sends no Content-Length for a bodyless POST; Graph wants one (411).
            None if is_post => req = req.header("content-length", "0"),
            None => {}
        }
        req.send().await.expect("graph request")
    }

    /// Sends and returns status and JSON body (`Value::Null` when empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let resp = self.send(method, path, body).await;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("json body")
        };
        (status, json)
    }
}

pub fn phones(upn: &str) -> String {
    format!("/v1.0/users/{upn}/authentication/phoneMethods")
}

pub fn phone(upn: &str, method_id: &str) -> String {
    format!("/v1.0/users/{upn}/authentication/phoneMethods/{method_id}")
}

pub fn phone_body(number: &str, phone_type: &str) -> Option<Value> {
    Some(json!({"phoneNumber": number, "phoneType": phone_type}))
}

/// Parses a `Retry-After` header as seconds.
pub fn retry_after(resp: &Response) -> Option<f64> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
}
