//! Masking of phone numbers for logs and human-readable details (SPEC section 6).

/// Masks the middle of a phone number: `+1 5555551234` -> `+1 555****234`.
/// Keeps the country code, the first three and last three subscriber digits; anything short is
/// masked entirely except its last digit. An extension is dropped.
pub fn mask_phone(phone: &str) -> String {
    let phone = phone.split(['x', 'X']).next().unwrap_or("");
    let (cc, rest) = match phone.split_once(' ') {
        Some((cc, rest)) if cc.starts_with('+') => (Some(cc), rest),
        _ => (None, phone),
    };
    let digits: Vec<char> = rest.chars().filter(|c| c.is_ascii_digit()).collect();
    let masked: String = if digits.len() >= 8 {
        let n = digits.len();
        let head: String = digits[..3].iter().collect();
        let tail: String = digits[n - 3..].iter().collect();
        format!("{head}{}{tail}", "*".repeat(n - 6))
    } else {
        let n = digits.len();
        let tail: String = digits.iter().skip(n.saturating_sub(1)).collect();
        format!("{}{tail}", "*".repeat(n.saturating_sub(1)))
    };
    match cc {
        Some(cc) => format!("{cc} {masked}"),
        None => masked,
    }
}

/// Masks an email address: `anna.schmidt@fabrikam.de` -> `a***@fabrikam.de`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_the_spec() {
        assert_eq!(mask_phone("+1 5555551234"), "+1 555****234");
        assert_eq!(mask_phone("+1 5555551234x123"), "+1 555****234");
        assert_eq!(mask_phone("+31 612345678"), "+31 612***678");
        assert_eq!(mask_phone("12345"), "****5");
        assert!(!mask_phone("+49 15123456993").contains("15123456993"));
        assert_eq!(mask_email("anna@gmail.com"), "a***@gmail.com");
    }
}
