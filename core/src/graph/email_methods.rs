//! `/users/{id}/authentication/emailMethods` (v1.0, the SSPR email; one per user).

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::graph::client::{Api, GraphClient, Target};
use crate::graph::error::GraphError;
use crate::graph::phone_methods::parse_collection;
use percent_encoding::utf8_percent_encode;

/// The fixed id of the email method.
pub const EMAIL_METHOD_ID: &str = "3ddfcfc8-9383-446f-83cc-3ab9be4be18f";

/// One `emailAuthenticationMethod`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailMethod {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub email_address: Option<String>,
}

fn method_segment(id: &str) -> String {
    let id = if id.trim().is_empty() {
        EMAIL_METHOD_ID
    } else {
        id
    };
    utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl GraphClient {
    pub async fn list_email_methods(&self, user: &str) -> Result<Vec<EmailMethod>, GraphError> {
        let path = format!("{}/emailMethods", GraphClient::auth_path(user)?);
        let body = self
            .send(Method::GET, Api::V1, path, None, Target::User)
            .await?;
        parse_collection(body, "emailMethods")
    }

    pub async fn create_email_method(
        &self,
        user: &str,
        address: &str,
    ) -> Result<EmailMethod, GraphError> {
        let path = format!("{}/emailMethods", GraphClient::auth_path(user)?);
        let resp = self
            .send(
                Method::POST,
                Api::V1,
                path,
                Some(json!({ "emailAddress": address })),
                Target::User,
            )
            .await?;
        Ok(resp
            .and_then(|v| serde_json::from_value::<EmailMethod>(v).ok())
            .unwrap_or_else(|| EmailMethod {
                id: EMAIL_METHOD_ID.to_string(),
                email_address: Some(address.to_string()),
            }))
    }

    /// PATCH of the method `id` (the listed id; empty = the fixed one).
    pub async fn update_email_method(
        &self,
        user: &str,
        id: &str,
        address: &str,
    ) -> Result<(), GraphError> {
        let path = format!(
            "{}/emailMethods/{}",
            GraphClient::auth_path(user)?,
            method_segment(id)
        );
        self.send(
            Method::PATCH,
            Api::V1,
            path,
            Some(json!({ "emailAddress": address })),
            Target::Method,
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_email_method(&self, user: &str, id: &str) -> Result<(), GraphError> {
        let path = format!(
            "{}/emailMethods/{}",
            GraphClient::auth_path(user)?,
            method_segment(id)
        );
        self.send(Method::DELETE, Api::V1, path, None, Target::Method)
            .await
            .map(|_| ())
    }
}
