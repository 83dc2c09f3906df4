//! `GET /reports/authenticationMethods/userRegistrationDetails` (v1.0): the registration report,
//! one row per user, paged with `@odata.nextLink`
//! (<https://learn.microsoft.com/en-us/graph/api/authenticationmethodsroot-list-userregistrationdetails>).
//! It needs `AuditLog.Read.All` and a tenant with Microsoft Entra ID P1 or P2, and the reports
//! service throttles it on a budget of its own (five requests per 10 s per app and tenant); the
//! client's separate admission for `reports/` paths keeps that apart from the method calls.

use serde::Deserialize;

use crate::graph::client::GraphClient;
use crate::graph::error::GraphError;

/// The page size asked for. Graph's page of the API states none; `$top=999` is what clients ask
/// and get (`-PageSize 999`, microsoftgraph/msgraph-sdk-powershell#1987), against 100 by default.
pub const REPORT_PAGE_SIZE: u32 = 999;

/// One row, with the properties of
/// <https://learn.microsoft.com/en-us/graph/api/resources/userregistrationdetails>. Every field
/// may be missing or null (rows of users Graph knows little about).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistrationDetails {
    pub id: String,
    pub user_principal_name: Option<String>,
    pub user_display_name: Option<String>,
    #[serde(deserialize_with = "strings_or_null")]
    pub methods_registered: Vec<String>,
    pub is_mfa_capable: Option<bool>,
    pub is_mfa_registered: Option<bool>,
    pub is_passwordless_capable: Option<bool>,
    pub is_sspr_registered: Option<bool>,
    pub is_system_preferred_authentication_method_enabled: Option<bool>,
    #[serde(deserialize_with = "strings_or_null")]
    pub system_preferred_authentication_methods: Vec<String>,
    /// The default second factor (`sms`, `voiceMobile`, `push`, ...; `""` or `none` for none).
    pub user_preferred_method_for_secondary_authentication: Option<String>,
    /// The default MFA method as `/beta` names it (`mobilePhone`, ...): v1.0 does not have it.
    pub default_mfa_method: Option<String>,
}

fn strings_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// One page and where the next one is (a path after `/v1.0/`, or `None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationPage {
    pub rows: Vec<RegistrationDetails>,
    pub next: Option<String>,
}

impl GraphClient {
    /// The first page of the report (`next = None`, [`REPORT_PAGE_SIZE`] rows asked for), or
    /// the page at `next` from an earlier [`RegistrationPage`].
    pub async fn registration_details_page(
        &self,
        next: Option<&str>,
    ) -> Result<RegistrationPage, GraphError> {
        let path = match next {
            Some(p) => p.to_string(),
            None => format!(
                "reports/authenticationMethods/userRegistrationDetails?$top={REPORT_PAGE_SIZE}"
            ),
        };
        let (rows, next) = self.get_page(path, "userRegistrationDetails").await?;
        Ok(RegistrationPage { rows, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_with_nulls_and_missing_fields_are_read() {
        let row: RegistrationDetails = serde_json::from_value(serde_json::json!({
            "id": "u1",
            "userPrincipalName": "a@contoso.com",
            "methodsRegistered": null,
            "systemPreferredAuthenticationMethods": ["push"],
            "userPreferredMethodForSecondaryAuthentication": "",
            "someFutureProperty": 1
        }))
        .expect("row");
        assert!(row.methods_registered.is_empty());
        assert_eq!(row.system_preferred_authentication_methods, vec!["push"]);
        assert_eq!(row.is_mfa_capable, None);
        assert_eq!(row.default_mfa_method, None);
    }
}
