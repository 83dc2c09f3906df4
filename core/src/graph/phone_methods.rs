//! `/users/{id}/authentication/phoneMethods` (v1.0).

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::graph::client::{Api, GraphClient, Target};
use crate::graph::error::GraphError;

pub const MOBILE_METHOD_ID: &str = "3179e48a-750b-4051-897c-87b9720928f7";
pub const ALTERNATE_MOBILE_METHOD_ID: &str = "b6332ec1-7057-4abe-9331-3d72feddfe41";
pub const OFFICE_METHOD_ID: &str = "e37fc753-ff3b-4958-9484-eaa9425c82bc";

/// Graph's phone types; each has a fixed method id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhoneType {
    Mobile,
    AlternateMobile,
    Office,
}

impl PhoneType {
    pub const ALL: [PhoneType; 3] = [
        PhoneType::Mobile,
        PhoneType::AlternateMobile,
        PhoneType::Office,
    ];

    /// Graph's `phoneType` value (and the product's method name).
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneType::Mobile => "mobile",
            PhoneType::AlternateMobile => "alternateMobile",
            PhoneType::Office => "office",
        }
    }

    pub fn method_id(self) -> &'static str {
        match self {
            PhoneType::Mobile => MOBILE_METHOD_ID,
            PhoneType::AlternateMobile => ALTERNATE_MOBILE_METHOD_ID,
            PhoneType::Office => OFFICE_METHOD_ID,
        }
    }

    /// Case-insensitive `phoneType`.
    pub fn parse(s: &str) -> Option<PhoneType> {
        PhoneType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }

    pub fn from_method_id(id: &str) -> Option<PhoneType> {
        PhoneType::ALL
            .into_iter()
            .find(|t| t.method_id().eq_ignore_ascii_case(id.trim()))
    }
}

/// One `phoneAuthenticationMethod`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneMethod {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub phone_type: Option<String>,
    #[serde(default)]
    pub sms_sign_in_state: Option<SmsSignInState>,
}

/// A mobile method's `smsSignInState`, as Graph's `phoneAuthenticationMethod` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum SmsSignInState {
    /// SMS sign-in is on.
    Ready,
    /// On, but another user holds the number for SMS sign-in, so it does not work for this one.
    PhoneNumberNotUnique,
    /// Off.
    NotEnabled,
    /// The tenant's SMS sign-in policy does not include the user.
    NotAllowedByPolicy,
    /// The method type cannot do SMS sign-in (alternate mobile, office).
    NotSupported,
    /// The user's SMS sign-in is not configured.
    NotConfigured,
    /// A value this client does not know (Graph's `unknownFutureValue` and later ones).
    Other(String),
}

impl SmsSignInState {
    pub fn parse(s: &str) -> SmsSignInState {
        let known = [
            ("ready", SmsSignInState::Ready),
            ("phoneNumberNotUnique", SmsSignInState::PhoneNumberNotUnique),
            ("notEnabled", SmsSignInState::NotEnabled),
            ("notAllowedByPolicy", SmsSignInState::NotAllowedByPolicy),
            ("notSupported", SmsSignInState::NotSupported),
            ("notConfigured", SmsSignInState::NotConfigured),
        ];
        known
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(s.trim()))
            .map_or_else(|| SmsSignInState::Other(s.to_string()), |(_, v)| v)
    }

    /// SMS sign-in works for the user.
    pub fn is_ready(&self) -> bool {
        *self == SmsSignInState::Ready
    }

    /// SMS sign-in is switched on (`ready`, or `phoneNumberNotUnique`, which Graph reports for
    /// an enabled number that another user also has): disabling it is a write.
    pub fn is_enabled(&self) -> bool {
        matches!(
            self,
            SmsSignInState::Ready | SmsSignInState::PhoneNumberNotUnique
        )
    }
}

impl From<String> for SmsSignInState {
    fn from(s: String) -> SmsSignInState {
        SmsSignInState::parse(&s)
    }
}

impl PhoneMethod {
    /// The type, from `phoneType`, else from the fixed id.
    pub fn kind(&self) -> Option<PhoneType> {
        self.phone_type
            .as_deref()
            .and_then(PhoneType::parse)
            .or_else(|| PhoneType::from_method_id(&self.id))
    }
}

#[derive(Deserialize)]
struct Collection<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
}

pub(crate) fn parse_collection<T: serde::de::DeserializeOwned>(
    v: Option<serde_json::Value>,
    what: &str,
) -> Result<Vec<T>, GraphError> {
    let v = v.ok_or_else(|| GraphError::InvalidResponse(format!("{what}: empty body")))?;
    serde_json::from_value::<Collection<T>>(v)
        .map(|c| c.value)
        .map_err(|e| GraphError::InvalidResponse(format!("{what}: {e}")))
}

impl GraphClient {
    /// All phone methods of `user` (one GET). 404 = [`GraphError::UserNotFound`].
    pub async fn list_phone_methods(&self, user: &str) -> Result<Vec<PhoneMethod>, GraphError> {
        let path = format!("{}/phoneMethods", GraphClient::auth_path(user)?);
        let body = self
            .send(Method::GET, Api::V1, path, None, Target::User)
            .await?;
        parse_collection(body, "phoneMethods")
    }

    /// Creates a method of type `kind` (201). The answer's `smsSignInState` tells whether
    /// policy enabled SMS sign-in for a new mobile.
    pub async fn create_phone_method(
        &self,
        user: &str,
        kind: PhoneType,
        number: &str,
    ) -> Result<PhoneMethod, GraphError> {
        let path = format!("{}/phoneMethods", GraphClient::auth_path(user)?);
        let body = json!({ "phoneNumber": number, "phoneType": kind.as_str() });
        let resp = self
            .send(Method::POST, Api::V1, path, Some(body), Target::User)
            .await?;
        Ok(resp
            .and_then(|v| serde_json::from_value::<PhoneMethod>(v).ok())
            .unwrap_or_else(|| PhoneMethod {
                id: kind.method_id().to_string(),
                phone_number: Some(number.to_string()),
                phone_type: Some(kind.as_str().to_string()),
                sms_sign_in_state: None,
            }))
    }

    /// Changes the number of an existing method (PATCH, 204).
    pub async fn update_phone_method(
        &self,
        user: &str,
        kind: PhoneType,
        number: &str,
    ) -> Result<(), GraphError> {
        let path = format!(
            "{}/phoneMethods/{}",
            GraphClient::auth_path(user)?,
            kind.method_id()
        );
        let body = json!({ "phoneNumber": number, "phoneType": kind.as_str() });
        self.send(Method::PATCH, Api::V1, path, Some(body), Target::Method)
            .await
            .map(|_| ())
    }

    /// Deletes a method (204). The default method cannot be deleted:
    /// [`GraphError::DefaultMethodConflict`].
    pub async fn delete_phone_method(&self, user: &str, kind: PhoneType) -> Result<(), GraphError> {
        let path = format!(
            "{}/phoneMethods/{}",
            GraphClient::auth_path(user)?,
            kind.method_id()
        );
        self.send(Method::DELETE, Api::V1, path, None, Target::Method)
            .await
            .map(|_| ())
    }

    /// `enableSmsSignIn` / `disableSmsSignIn` on the mobile method (204).
    pub async fn set_sms_sign_in(&self, user: &str, enable: bool) -> Result<(), GraphError> {
        let action = if enable {
            "enableSmsSignIn"
        } else {
            "disableSmsSignIn"
        };
        let path = format!(
            "{}/phoneMethods/{MOBILE_METHOD_ID}/{action}",
            GraphClient::auth_path(user)?
        );
        self.send(Method::POST, Api::V1, path, None, Target::Method)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_sign_in_states_are_read_from_graph_json() {
        let m: PhoneMethod = serde_json::from_str(
            r#"{"id":"3179e48a-750b-4051-897c-87b9720928f7","phoneNumber":"+31 612345678","phoneType":"mobile","smsSignInState":"phoneNumberNotUnique"}"#,
        )
        .unwrap();
        let state = m.sms_sign_in_state.unwrap();
        assert_eq!(state, SmsSignInState::PhoneNumberNotUnique);
        assert!(state.is_enabled() && !state.is_ready());
        assert!(SmsSignInState::parse("READY").is_ready());
        for off in [
            "notEnabled",
            "notAllowedByPolicy",
            "notSupported",
            "notConfigured",
        ] {
            let s = SmsSignInState::parse(off);
            assert!(
                !s.is_enabled() && !matches!(s, SmsSignInState::Other(_)),
                "{off}"
            );
        }
        assert_eq!(
            SmsSignInState::parse("unknownFutureValue"),
            SmsSignInState::Other("unknownFutureValue".into())
        );
    }
}
