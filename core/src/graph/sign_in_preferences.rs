//! `/beta/users/{id}/authentication/signInPreferences`: the user's default MFA method.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::graph::client::{Api, GraphClient, Target};
use crate::graph::error::GraphError;
use crate::message::DefaultMethod;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInPreferences {
    #[serde(default)]
    pub user_preferred_method_for_secondary_authentication: Option<String>,
    #[serde(default)]
    pub system_preferred_authentication_method: Option<String>,
    #[serde(default)]
    pub is_system_preferred_authentication_method_enabled: Option<bool>,
}

impl GraphClient {
    pub async fn get_sign_in_preferences(
        &self,
        user: &str,
    ) -> Result<SignInPreferences, GraphError> {
        let path = format!("{}/signInPreferences", GraphClient::auth_path(user)?);
        let body = self
            .send(Method::GET, Api::Beta, path, None, Target::User)
            .await?;
        match body {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| GraphError::InvalidResponse(format!("signInPreferences: {e}"))),
            None => Ok(SignInPreferences::default()),
        }
    }

    /// Sets `userPreferredMethodForSecondaryAuthentication`.
    pub async fn set_default_method(
        &self,
        user: &str,
        method: DefaultMethod,
    ) -> Result<(), GraphError> {
        let path = format!("{}/signInPreferences", GraphClient::auth_path(user)?);
        self.send(
            Method::PATCH,
            Api::Beta,
            path,
            Some(json!({ "userPreferredMethodForSecondaryAuthentication": method.as_str() })),
            Target::User,
        )
        .await
        .map(|_| ())
    }
}
