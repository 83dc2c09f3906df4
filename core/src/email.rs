//! The SSPR email method's address.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EmailError {
    #[error("not an email address (name@domain)")]
    Shape,
    #[error("the email address contains whitespace or a control character")]
    Whitespace,
    #[error("the email domain is not a valid domain name")]
    Domain,
    #[error("the email address is longer than 254 characters")]
    TooLong,
}

/// A usable address (trimmed) or why not.
pub fn validate_email(s: &str) -> Result<String, EmailError> {
    let s = s.trim();
    if s.len() > 254 {
        return Err(EmailError::TooLong);
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EmailError::Whitespace);
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(EmailError::Shape);
    };
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(EmailError::Shape);
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !ok {
        return Err(EmailError::Domain);
    }
    Ok(s.to_string())
}
