//! A pass-through in front of the simulator's token endpoint that remembers every access token
//! it hands out and every client assertion it forwards, so the tests can prove that none of them
//! reaches a log. Point `LOGIN_BASE_URL` at [`TokenProxy::base_url`]; `GRAPH_BASE_URL` stays on
//! the simulator. The `Host` header is passed on, so the simulator accepts assertions whose
//! audience is the proxy's token URL.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Recorded {
    access_tokens: Vec<String>,
    assertions: Vec<String>,
    requests: u64,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    recorded: Mutex<Recorded>,
}

pub struct TokenProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    task: JoinHandle<()>,
}

async fn token(
    State(s): State<Arc<ProxyState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    {
        let mut r = s.recorded.lock().unwrap_or_else(|e| e.into_inner());
        r.requests += 1;
        if let Some((_, a)) = form.iter().find(|(k, _)| k == "client_assertion") {
            r.assertions.push(a.clone());
        }
    }
    let mut req = s
        .client
        .post(format!("{}/{tenant}/oauth2/v2.0/token", s.upstream))
        .body(body.to_vec());
    for name in [header::HOST, header::CONTENT_TYPE] {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v);
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let bytes = resp.bytes().await.unwrap_or_default();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        if let Some(t) = v.get("access_token").and_then(|t| t.as_str()) {
            s.recorded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .access_tokens
                .push(t.to_string());
        }
    }
    (status, [(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

impl TokenProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` (the simulator's base URL).
    pub async fn start(upstream: &str) -> std::io::Result<TokenProxy> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            recorded: Mutex::new(Recorded::default()),
        });
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(TokenProxy { addr, state, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Access tokens handed out so far.
    pub fn access_tokens(&self) -> Vec<String> {
        self.state
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .access_tokens
            .clone()
    }

    /// Client assertions (signed JWTs) forwarded so far.
    pub fn assertions(&self) -> Vec<String> {
        self.state
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .assertions
            .clone()
    }

    pub fn requests(&self) -> u64 {
        self.state
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
    }
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
