//! User ids: a UPN (`local@domain`) or an object id (GUID). Nothing that could change a Graph URL
//! path gets through (`/`, `?`, `#`, `%`, `..`, whitespace, control characters).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UserError {
    #[error("the user is empty")]
    Empty,
    #[error("the user contains '{0}', which is not allowed in a user id (it would change the Graph request path); for guest (#EXT#) accounts use the object id")]
    PathCharacter(String),
    #[error("the user contains whitespace or a control character")]
    Whitespace,
    #[error("'{0}' is neither a UPN (name@domain) nor an object id (GUID)")]
    Shape(String),
    #[error("the part before '@' may only contain A-Z a-z 0-9 ' . - _ ! ^ ~ (found '{0}')")]
    LocalCharacter(char),
    #[error("the domain '{0}' is not a valid domain name")]
    Domain(String),
}

/// An object id: a GUID in its 8-4-4-4-12 hex form.
pub fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The characters that could change a Graph request path (besides `..`).
const PATH_CHARACTERS: [char; 6] = ['/', '\\', '?', '#', '%', '&'];

/// A valid user id (trimmed) or why not.
pub fn validate_user(s: &str) -> Result<String, UserError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(UserError::Empty);
    }
    if let Some(bad) = s.chars().find(|c| PATH_CHARACTERS.contains(c)) {
        return Err(UserError::PathCharacter(bad.to_string()));
    }
    if s.contains("..") {
        return Err(UserError::PathCharacter("..".into()));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UserError::Whitespace);
    }
    if is_guid(s) {
        return Ok(s.to_string());
    }
    let Some((local, domain)) = s.split_once('@') else {
        return Err(UserError::Shape(s.to_string()));
    };
    if local.is_empty() || domain.contains('@') || local.len() > 64 {
        return Err(UserError::Shape(s.to_string()));
    }
    if let Some(c) = local.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '\'' | '.' | '-' | '_' | '!' | '^' | '~'))
    }) {
        return Err(UserError::LocalCharacter(c));
    }
    if local.starts_with('.') || local.ends_with('.') {
        return Err(UserError::Shape(s.to_string()));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !domain.contains('.') || !domain.split('.').all(label_ok) {
        return Err(UserError::Domain(domain.to_string()));
    }
    Ok(s.to_string())
}

/// The case-insensitive key for duplicate detection.
pub fn user_key(s: &str) -> String {
    s.trim().to_lowercase()
}
