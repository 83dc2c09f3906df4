//! Phone numbers (README, "CSV format"): messy input -> Graph's `+CC NUMBER[xEXT]`, validated against
//! libphonenumber's metadata (the `phonenumber` crate).
//!
//! Accepted shapes: `+31 6 1234 5678`, `+310612345678` (a trunk `0` kept after the country code),
//! `0031 6 1234 5678` and `011 ...` (international prefixes), `(61) 412 345 678` (a country code
//! in brackets), `(425) 555-0100` or `06-12345678`
//! with a default country, stray spaces, dots, dashes, slashes and brackets, and an extension
//! written `x12`, `ext 12`, `ext. 12`, `extension 12`, `Durchwahl 12`, `DW 12` or `#12`.
//! A national number with no default country is refused: the country is never guessed.

mod compiled;
mod form;

pub use form::{canonical, is_graph_form, same};

use phonenumber::country;
use thiserror::Error;

/// Why a phone cell is not usable. Texts never repeat the number (logs and DLQ attributes).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PhoneError {
    #[error("letters in a phone number")]
    Letters,
    #[error("a national number (no +country code) and no default country is configured (set DEFAULT_COUNTRY or --default-country, or write the number with +country code)")]
    NoCountry,
    #[error("not a valid phone number for {0} (wrong length or not a number in use there)")]
    Invalid(String),
    #[error("not a valid phone number (unknown country code or wrong length)")]
    InvalidInternational,
    #[error("the extension must be 1 to 10 digits")]
    BadExtension,
    #[error("'{0}' is not an ISO 3166 alpha-2 country code (e.g. NL, DE, US)")]
    UnknownCountry(String),
}

/// An ISO 3166 alpha-2 code (`NL`, `de`) as the library's country id.
pub fn parse_country(s: &str) -> Result<country::Id, PhoneError> {
    let t = s.trim().to_ascii_uppercase();
    if t.len() != 2 {
        return Err(PhoneError::UnknownCountry(s.trim().to_string()));
    }
    t.parse::<country::Id>()
        .map_err(|_| PhoneError::UnknownCountry(s.trim().to_string()))
}

const EXTENSION_MARKERS: [&str; 7] = ["extension", "durchwahl", "ext.", "ext", "dw", "x", "#"];

/// Splits off an extension: (main part, extension digits).
fn split_extension(input: &str) -> Result<(&str, Option<String>), PhoneError> {
    // Every marker holds a letter or `#`: without one there is no extension to look for.
    if !input.chars().any(|c| c == '#' || c.is_alphabetic()) {
        return Ok((input, None));
    }
    // ASCII case only (the markers are ASCII): the positions found in `lower` are positions in
    // `input` (a full lowercase can change a character's length, e.g. 'Ⱥ' -> 'ⱥ').
    let lower = input.to_ascii_lowercase();
    // The first marker that follows at least one digit.
    let mut best: Option<(usize, usize)> = None;
    for m in EXTENSION_MARKERS {
        let mut from = 0;
        while let Some(p) = lower[from..].find(m) {
            let at = from + p;
            let before_has_digit = lower[..at].chars().any(|c| c.is_ascii_digit());
            // Markers made of letters must not be the tail of a longer word (e.g. "next").
            let word_ok = !m.chars().all(|c| c.is_ascii_alphabetic())
                || !lower[..at]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphabetic());
            if before_has_digit && word_ok {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, m.len()));
                }
                break;
            }
            from = at + m.len();
        }
    }
    let Some((at, len)) = best else {
        return Ok((input, None));
    };
    let main = &input[..at];
    let rest = &input[at + len..];
    let ext: String = rest
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | ':' | '-' | '\u{a0}'))
        .collect();
    if ext.is_empty() || ext.len() > 10 || !ext.chars().all(|c| c.is_ascii_digit()) {
        return Err(PhoneError::BadExtension);
    }
    Ok((main, Some(ext)))
}

/// A valid number: its country code and national significant number (with any leading zeros).
struct Number {
    code: u16,
    national: String,
}

impl From<&phonenumber::PhoneNumber> for Number {
    fn from(n: &phonenumber::PhoneNumber) -> Number {
        Number {
            code: n.code().value(),
            national: format!(
                "{}{}",
                "0".repeat(n.national().zeros() as usize),
                n.national().value()
            ),
        }
    }
}

fn graph_form(n: &Number, ext: &Option<String>) -> String {
    match ext {
        Some(e) => format!("+{} {}x{e}", n.code, n.national),
        None => format!("+{} {}", n.code, n.national),
    }
}

/// The digits after `+`, if they are a valid number: the compiled fast path when it can answer,
/// else the crate.
fn valid_international(digits: &str) -> Option<Number> {
    if let Some((code, national)) = compiled::valid_international(digits) {
        return Some(Number {
            code,
            national: national.to_string(),
        });
    }
    let n = phonenumber::parse(None, format!("+{digits}")).ok()?;
    phonenumber::is_valid(&n).then(|| Number::from(&n))
}

/// An international number's digits (after `+`, `00` or `011`), also when a trunk `0` was kept
/// after the country code (`+31 0 6...`).
fn international(digits: &str) -> Option<Number> {
    if let Some(n) = valid_international(digits) {
        return Some(n);
    }
    for cc_len in 1..=3 {
        if digits.len() > cc_len + 1 && digits.as_bytes()[cc_len] == b'0' {
            let fixed = format!("{}{}", &digits[..cc_len], &digits[cc_len + 1..]);
            if let Some(n) = valid_international(&fixed) {
                if n.code.to_string().len() == cc_len {
                    return Some(n);
                }
            }
        }
    }
    None
}

/// Normalises a (non-empty) phone cell to `+CC NUMBER[xEXT]`.
pub fn normalise(input: &str, default_country: Option<country::Id>) -> Result<String, PhoneError> {
    let (main, ext) = split_extension(input.trim())?;
    let main = main.trim();
    if main.chars().any(|c| c.is_alphabetic()) {
        return Err(PhoneError::Letters);
    }
    if main.chars().any(|c| {
        !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '.' | '-' | '(' | ')' | '/' | '\u{a0}'))
    }) {
        return Err(PhoneError::InvalidInternational);
    }
    let plus = main.starts_with('+');
    if main.chars().skip(1).any(|c| c == '+') {
        return Err(PhoneError::InvalidInternational);
    }
    let digits: String = main.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 4 || digits.len() > 17 {
        return Err(match default_country {
            Some(c) if !plus => PhoneError::Invalid(c.as_ref().to_string()),
            _ => PhoneError::InvalidInternational,
        });
    }
    if plus {
        return international(&digits)
            .map(|n| graph_form(&n, &ext))
            .ok_or(PhoneError::InvalidInternational);
    }
    // A national number for the default country wins (0113... is a Leeds number in GB).
    if let Some(c) = default_country {
        if let Ok(n) = phonenumber::parse(Some(c), &digits) {
            if phonenumber::is_valid(&n) {
                return Ok(graph_form(&Number::from(&n), &ext));
            }
        }
    }
    // A country code written in brackets, as some exports do: `(61) 412 345 678`, `(1) 201-555-0123`.
    // (Three digits in brackets are an area code, `(425) 555-0100`, and need a default country.)
    if let Some(inner) = main
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .map(|(cc, _)| cc.trim())
    {
        if (1..=2).contains(&inner.len())
            && inner.chars().all(|c| c.is_ascii_digit())
            && !inner.starts_with('0')
        {
            if let Some(n) = international(&digits) {
                return Ok(graph_form(&n, &ext));
            }
        }
    }
    for prefix in ["00", "011"] {
        if let Some(rest) = digits.strip_prefix(prefix) {
            if let Some(n) = international(rest) {
                return Ok(graph_form(&n, &ext));
            }
        }
    }
    match default_country {
        Some(c) => Err(PhoneError::Invalid(c.as_ref().to_string())),
        None if digits.starts_with("00") || digits.starts_with("011") => {
            Err(PhoneError::InvalidInternational)
        }
        None => Err(PhoneError::NoCountry),
    }
}
