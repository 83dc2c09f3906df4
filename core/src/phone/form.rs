//! What a phone number in Graph's form is (`+CC NUMBER[xEXT]`, the only form Graph's
//! `phoneMethods` take and return) and when two written numbers are the same number. Turning
//! messy input into this form is [`super::normalise`]; masking a number is [`crate::mask`].

/// `+{cc} {number}[x{ext}]`: cc 1-3 digits not starting with 0, number 4-14 digits, ext 1-10.
pub fn is_graph_form(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('+') else {
        return false;
    };
    let Some((cc, number)) = rest.split_once(' ') else {
        return false;
    };
    let digits = |t: &str, min: usize, max: usize| {
        t.len() >= min && t.len() <= max && t.chars().all(|c| c.is_ascii_digit())
    };
    if !digits(cc, 1, 3) || cc.starts_with('0') {
        return false;
    }
    match number.split_once('x') {
        Some((n, ext)) => digits(n, 4, 14) && digits(ext, 1, 10),
        None => digits(number, 4, 14),
    }
}

/// Digits of the number and of the extension: `+1 5555551234x12` and `+15555551234 ext 12`
/// compare equal.
pub fn canonical(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let (main, ext) = match lower.find(['x', 'e']) {
        Some(i) => (&lower[..i], &lower[i..]),
        None => (lower.as_str(), ""),
    };
    let digits = |t: &str| t.chars().filter(char::is_ascii_digit).collect::<String>();
    let ext = digits(ext);
    if ext.is_empty() {
        digits(main)
    } else {
        format!("{}x{ext}", digits(main))
    }
}

/// Whether two numbers are the same number (and extension), however they are written.
pub fn same(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_phone_form() {
        for ok in [
            "+1 5555551234",
            "+31 612345678",
            "+1 5555551234x1",
            "+999 1234",
        ] {
            assert!(is_graph_form(ok), "{ok}");
        }
        for bad in [
            "+1  5555551234",
            "+0 5555551234",
            "1 5555551234",
            "+1 555",
            "+1 5555551234x",
            "+1234 5555551234",
            "+1 5555551234 x1",
        ] {
            assert!(!is_graph_form(bad), "{bad}");
        }
    }

    #[test]
    fn canonical_phone_forms() {
        assert!(same("+1 5555551234", "+15555551234"));
        assert!(same("+1 5555551234x12", "+1 (555) 555-1234 ext 12"));
        assert!(!same("+1 5555551234x12", "+1 5555551234"));
        assert!(!same("+1 5555551234", "+1 5555551235"));
    }
}
