//! `GET /users/{id}/authentication/methods` (v1.0): every authentication method of a user, each
//! with its `@odata.type` (<https://learn.microsoft.com/en-us/graph/api/authentication-list-methods>;
//! least privileged application permission `UserAuthenticationMethod.Read.All`).

use reqwest::Method;
use serde::Deserialize;

use crate::graph::client::{Api, GraphClient, Target};
use crate::graph::error::GraphError;
use crate::graph::phone_methods::{parse_collection, SmsSignInState};

/// One method of the listing: its type and the few properties the readiness report reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthenticationMethod {
    /// `#microsoft.graph.fido2AuthenticationMethod`, ... Older examples of Graph's page name
    /// the key `odata.type` (without `@`), so both are read.
    #[serde(rename = "@odata.type", alias = "odata.type")]
    pub odata_type: String,
    pub id: String,
    /// Phones: `phoneType`, which older examples call `authenticationPhoneType`.
    #[serde(alias = "authenticationPhoneType")]
    pub phone_type: Option<String>,
    pub phone_number: Option<String>,
    pub sms_sign_in_state: Option<SmsSignInState>,
}

impl AuthenticationMethod {
    /// The type without its namespace: `fido2AuthenticationMethod`.
    pub fn type_name(&self) -> &str {
        let t = self.odata_type.trim_start_matches('#');
        t.rsplit('.').next().unwrap_or(t)
    }
}

impl GraphClient {
    /// Every method of `user` (one GET). 404 = [`GraphError::UserNotFound`].
    pub async fn list_authentication_methods(
        &self,
        user: &str,
    ) -> Result<Vec<AuthenticationMethod>, GraphError> {
        let path = format!("{}/methods", GraphClient::auth_path(user)?);
        let body = self
            .send(Method::GET, Api::V1, path, None, Target::User)
            .await?;
        parse_collection(body, "authentication/methods")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_the_type_key_are_read() {
        let m: Vec<AuthenticationMethod> = serde_json::from_value(serde_json::json!([
            {"@odata.type": "#microsoft.graph.fido2AuthenticationMethod", "id": "k"},
            {"odata.type": "#microsoft.graph.phoneAuthenticationMethod", "id": "p",
             "authenticationPhoneType": "mobile", "smsSignInState": "ready"}
        ]))
        .expect("methods");
        assert_eq!(m[0].type_name(), "fido2AuthenticationMethod");
        assert_eq!(m[1].type_name(), "phoneAuthenticationMethod");
        assert_eq!(m[1].phone_type.as_deref(), Some("mobile"));
        assert_eq!(m[1].sms_sign_in_state, Some(SmsSignInState::Ready));
    }
}
