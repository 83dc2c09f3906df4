//! Graph responses as plain data, so the same result serves an HTTP request or a `$batch` entry.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// A Graph answer: status, optional `Retry-After`, other headers (the throttling ones), optional
/// JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimResponse {
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<String>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<Value>,
    /// A `text/plain` body instead of JSON (`/users/$count`).
    pub(crate) plain: Option<String>,
}

impl SimResponse {
    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        SimResponse {
            status,
            retry_after: None,
            headers: Vec::new(),
            body: Some(body),
            plain: None,
        }
    }

    pub(crate) fn plain(status: StatusCode, text: String) -> Self {
        SimResponse {
            status,
            retry_after: None,
            headers: Vec::new(),
            body: None,
            plain: Some(text),
        }
    }

    pub(crate) fn no_content() -> Self {
        SimResponse {
            status: StatusCode::NO_CONTENT,
            retry_after: None,
            headers: Vec::new(),
            body: None,
            plain: None,
        }
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<String>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The `$batch` response entry for request `id`.
    pub(crate) fn to_batch_entry(&self, id: &Value) -> Value {
        let mut headers = serde_json::Map::new();
        if self.body.is_some() {
            headers.insert("Content-Type".into(), json!("application/json"));
        }
        if let Some(ra) = &self.retry_after {
            headers.insert("Retry-After".into(), json!(ra));
        }
        for (name, value) in &self.headers {
            headers.insert((*name).into(), json!(value));
        }
        let mut entry = json!({
            "id": id,
            "status": self.status.as_u16(),
            "headers": headers,
        });
        if let (Some(body), Some(obj)) = (&self.body, entry.as_object_mut()) {
            obj.insert("body".into(), body.clone());
        }
        if let (Some(text), Some(obj)) = (&self.plain, entry.as_object_mut()) {
            obj.insert("body".into(), json!(text));
        }
        entry
    }
}

impl IntoResponse for SimResponse {
    fn into_response(self) -> Response {
        let mut resp = match (self.body, self.plain) {
            (Some(body), _) => (self.status, axum::Json(body)).into_response(),
            (None, Some(text)) => (
                self.status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text,
            )
                .into_response(),
            (None, None) => self.status.into_response(),
        };
        if let Some(ra) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&ra) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            resp.headers_mut().insert("request-id", v);
        }
        resp
    }
}

/// A Graph error: `{"error":{"code","message","innerError":{...}}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl GraphError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        GraphError::new(StatusCode::BAD_REQUEST, "badRequest", message)
    }

    pub(crate) fn user_not_found(id: &str) -> Self {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub(crate) fn method_not_found(kind: &str, id: &str) -> Self {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            format!("The {kind} authentication method '{id}' was not found for this user."),
        )
    }

    pub(crate) fn segment_not_found(segment: &str) -> Self {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    pub(crate) fn method_not_allowed() -> Self {
        GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "The HTTP method is not allowed on this resource.",
        )
    }

    pub(crate) fn body(&self) -> Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "request-id": uuid::Uuid::new_v4().to_string(),
                    "client-request-id": uuid::Uuid::new_v4().to_string(),
                }
            }
        })
    }
}

impl From<GraphError> for SimResponse {
    fn from(e: GraphError) -> Self {
        SimResponse::json(e.status, e.body())
    }
}

/// 429 `TooManyRequests` with `Retry-After`.
pub(crate) fn too_many_requests(retry_after: String) -> SimResponse {
    SimResponse::from(GraphError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Too many requests.",
    ))
    .with_retry_after(Some(retry_after))
}

/// 401 `InvalidAuthenticationToken`.
pub(crate) fn unauthorized(message: &str) -> SimResponse {
    SimResponse::from(GraphError::new(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    ))
}
