//! What the common `AADSTS` codes of the token endpoint mean for whoever runs this product, in
//! one table used by the worker's log line, the CLI's error and `mfa-preload doctor`.
//!
//! Codes and meanings are those of Microsoft's error code reference
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes>).

/// What to fix for an `AADSTS` code, when it is one of the common ones.
pub fn hint(code: u32) -> Option<&'static str> {
    Some(match code {
        90002 | 900023 | 90013 => {
            "the tenant is not found: check 'tenantId' in the credentials secret (the directory (tenant) id GUID or a verified domain) and GRAPH_CLOUD"
        }
        700016 => {
            "the application is not found in this tenant: check 'clientId' (the application (client) id) and 'tenantId' in the credentials secret; the app must be registered in, or consented to, this tenant"
        }
        700027 | 700023 | 5002738 => {
            "the certificate is not the app's: upload the secret's certificate (public part, .cer/.pem) under Certificates & secrets of the app registration, or store the certificate that is registered"
        }
        7000274 | 700030 => {
            "the certificate is not valid for Entra: it may be expired or not yet valid; create a new one (infra/create-certificate.sh) and upload it"
        }
        700024 => {
            "the client assertion is outside its valid time range: the machine's clock is wrong (clock skew), or the certificate's dates are"
        }
        700025 | 50027 | 700021 | 7000218 | 50012 | 5002723 => {
            "the client assertion was refused as malformed: check that the secret's certificate and private key belong together"
        }
        7000112 => "the application is disabled in the tenant: enable the enterprise application",
        7000215 | 7000222 => {
            "the client secret is invalid or expired: this product uses a certificate; store the certificate and key in the secret"
        }
        65001 | 90094 => {
            "admin consent is missing: grant admin consent for the app's application permissions"
        }
        500011 => "the resource (Microsoft Graph) is not found in the tenant: check GRAPH_CLOUD and GRAPH_BASE_URL",
        1002012 | 70011 => "the scope is refused: GRAPH_BASE_URL must be the Graph endpoint of the tenant's cloud",
        50034 | 50126 => "the account does not exist in this tenant",
        53003 => "a Conditional Access policy blocks the app's sign-in: exclude the workload identity or allow its location",
        _ => return None,
    })
}

/// The first `AADSTS<digits>` code in an `error_description` (or the first of `error_codes`).
pub fn code_in(description: &str) -> Option<u32> {
    let at = description.find("AADSTS")?;
    let digits: String = description[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_explains_codes() {
        assert_eq!(
            code_in("AADSTS700027: Client assertion contains an invalid signature."),
            Some(700027)
        );
        assert_eq!(
            code_in("Trace: x AADSTS90002: Tenant 'y' not found"),
            Some(90002)
        );
        assert_eq!(code_in("no code"), None);
        assert!(hint(700027).is_some_and(|h| h.contains("upload")));
        assert!(hint(700024).is_some_and(|h| h.contains("clock")));
        assert!(hint(90002).is_some_and(|h| h.contains("tenantId")));
        assert!(hint(700016).is_some_and(|h| h.contains("clientId")));
        assert_eq!(hint(1), None);
    }
}
