//! What SQS accepts in a message body or a string message attribute, and how text that holds
//! anything else is made acceptable.
//!
//! SQS takes only `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF` and refuses a
//! whole message (or fails a whole batch entry) for one other character. Every character it
//! refuses is in the Basic Multilingual Plane, so each can be written as `\uXXXX`: in JSON text
//! that is the JSON escape of the same character (the body means exactly what it meant), in a plain
//! attribute it is a visible, legal stand-in.

use std::borrow::Cow;

/// Whether SQS accepts `c` in a message body or a string attribute.
pub const fn is_sqs_char(c: char) -> bool {
    matches!(
        c as u32,
        0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF
    )
}

/// Whether every byte is printable ASCII (`0x20..=0x7E`), eight bytes at a time: the quick
/// answer for almost every row and message, before any look at characters.
pub fn is_printable_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut bad = 0u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let x = u64::from_le_bytes(b);
        let del = x ^ (0x7F * ONES);
        // A byte with its high bit set, a byte below 0x20, a byte equal to 0x7F.
        bad |= (x & HIGH)
            | (x.wrapping_sub(0x20 * ONES) & !x & HIGH)
            | (del.wrapping_sub(ONES) & !del & HIGH);
    }
    bad == 0 && words.remainder().iter().all(|b| (0x20..0x7F).contains(b))
}

/// Whether SQS accepts every character of `s`.
pub fn is_sqs_text(s: &str) -> bool {
    // A character SQS refuses is a C0 control (one byte below 0x20) or U+FFFE / U+FFFF (UTF-8
    // `EF BF BE` / `EF BF BF`).
    is_printable_ascii(s.as_bytes())
        || !s
            .bytes()
            .any(|b| ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0xEF))
        || s.chars().all(is_sqs_char)
}

/// `s` with every character SQS refuses written as `\uXXXX` (uppercase hex); text SQS accepts is
/// returned as it is, without copying.
pub fn sqs_escape(s: &str) -> Cow<'_, str> {
    if is_sqs_text(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_sqs_char(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{:04X}", c as u32));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_set_and_nothing_else() {
        for c in [
            '\t',
            '\n',
            '\r',
            ' ',
            '~',
            '\u{D7FF}',
            '\u{E000}',
            '\u{FFFD}',
            '\u{10000}',
        ] {
            assert!(is_sqs_char(c), "{c:?}");
        }
        for c in [
            '\0', '\u{8}', '\u{B}', '\u{C}', '\u{1F}', '\u{FFFE}', '\u{FFFF}',
        ] {
            assert!(!is_sqs_char(c), "{c:?}");
        }
        assert!(is_sqs_text("a@contoso.com,+31 612345678\r\n\u{1F600}"));
        assert!(!is_sqs_text("a\u{7}b"));
        assert!(!is_sqs_text("a\u{FFFF}"));
        assert!(is_sqs_text("\u{FFFD}\u{EFFF}"));
    }

    #[test]
    fn printable_ascii_eight_bytes_at_a_time() {
        let base = "abcdefghijklmnopqrstuvwxyz ~!@#$%^&*()0123456789";
        for len in 0..base.len() {
            assert!(is_printable_ascii(&base.as_bytes()[..len]));
            for bad in [0u8, 0x09, 0x1F, 0x7F, 0x80, 0xC3, 0xEF, 0xFF] {
                for at in 0..len {
                    let mut b = base.as_bytes()[..len].to_vec();
                    b[at] = bad;
                    assert!(!is_printable_ascii(&b), "{bad:#x} at {at} of {len}");
                }
            }
        }
        for b in 0x20u8..0x7F {
            assert!(is_printable_ascii(&[b; 11]), "{b:#x}");
        }
    }

    #[test]
    fn escapes_only_what_sqs_refuses_and_json_keeps_its_meaning() {
        assert!(matches!(sqs_escape("plain"), Cow::Borrowed("plain")));
        assert_eq!(sqs_escape("a\u{7}b\u{FFFE}"), "a\\u0007b\\uFFFE");
        let value = "x\u{FFFF}y\u{1}z";
        let json = serde_json::to_string(value).unwrap();
        let escaped = sqs_escape(&json);
        assert!(is_sqs_text(&escaped));
        assert_eq!(serde_json::from_str::<String>(&escaped).unwrap(), value);
    }
}
