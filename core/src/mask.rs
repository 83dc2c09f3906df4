//! Masking of phone numbers for logs and human-readable details (README, "Reading results").

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

/// Masks every written number of five digits or more in free text (as [`mask_phone`] masks a
/// phone number: the first and last three digits of a long one stay, or only the last digit of a
/// short one). A number may hold spaces, `-`, `.`, `/` and brackets between its digits, as
/// numbers are written. Shorter digit runs (`Phone 2`) stay as they are.
pub fn mask_digits(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The number: digits and the separators between them.
        let mut end = i;
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_digit() || " -./()".contains(chars[j])) {
            if chars[j].is_ascii_digit() {
                end = j + 1;
            }
            j += 1;
        }
        let number = &chars[i..end];
        let n = number.iter().filter(|c| c.is_ascii_digit()).count();
        let (head, tail) = if n >= 8 { (3, 3) } else { (0, 1) };
        let mut k = 0;
        for c in number {
            if c.is_ascii_digit() {
                out.push(if n < 5 || k < head || k >= n - tail {
                    *c
                } else {
                    '*'
                });
                k += 1;
            } else {
                out.push(*c);
            }
        }
        i = end;
    }
    out
}

/// A text taken from a file's header line, fit for an error message: numbers masked
/// ([`mask_digits`]), and an address masked as [`mask_email`] does (a file without a header puts
/// a data row there).
pub fn mask_header(text: &str) -> String {
    let masked = mask_digits(text);
    if masked.contains('@') {
        mask_email(&masked)
    } else {
        masked
    }
}

/// Masks phone-number-like digit runs in a service's message (7+ digits; shorter runs such as
/// HTTP statuses and `AADSTS700027`'s code stay, unlike [`mask_digits`], which masks from five
/// digits on in file text), spaces or dashes allowed between) in free text
/// such as Graph error messages: `+1 5555551234` -> `+1 555****234`.
pub fn mask_numbers_in_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if !starts {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // Extend over digits and single separators between digits.
        let mut j = i + 1;
        let mut digits = usize::from(chars[i].is_ascii_digit());
        let mut end = j;
        while j < chars.len() {
            let c = chars[j];
            if c.is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if (c == ' ' || c == '-' || c == '.')
                && chars.get(j + 1).is_some_and(char::is_ascii_digit)
            {
                j += 1;
            } else {
                break;
            }
        }
        let run: String = chars[i..end].iter().collect();
        if digits >= 7 {
            out.push_str(&mask_run(&run));
        } else {
            out.push_str(&run);
        }
        i = end;
    }
    out
}

fn mask_run(run: &str) -> String {
    if run.starts_with('+') && run.contains(' ') {
        return mask_phone(run);
    }
    let digits: Vec<char> = run.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    let head: String = digits[..3].iter().collect();
    let tail: String = digits[n - 3..].iter().collect();
    let plus = if run.starts_with('+') { "+" } else { "" };
    format!("{plus}{head}{}{tail}", "*".repeat(n - 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_numbers_but_not_short_codes() {
        let m = mask_numbers_in_text("invalidPhoneNumber: '+1 5555551234' rejected (code 400)");
        assert!(m.contains("+1 555****234"), "{m}");
        assert!(!m.contains("5555551234"));
        assert!(m.contains("code 400"));
        let m = mask_numbers_in_text("number +31612345678 and 0612-345-678");
        assert!(
            !m.contains("31612345678") && !m.contains("0612-345-678"),
            "{m}"
        );
        assert_eq!(mask_numbers_in_text("no digits here"), "no digits here");
    }

    #[test]
    fn masks_like_the_spec() {
        assert_eq!(mask_phone("+1 5555551234"), "+1 555****234");
        assert_eq!(mask_phone("+1 5555551234x123"), "+1 555****234");
        assert_eq!(mask_phone("+31 612345678"), "+31 612***678");
        assert_eq!(mask_phone("12345"), "****5");
        assert!(!mask_phone("+49 15123456993").contains("15123456993"));
        assert_eq!(mask_email("anna@gmail.com"), "a***@gmail.com");
    }

    #[test]
    fn numbers_in_free_text_are_masked_and_short_ones_kept() {
        assert_eq!(mask_digits("+31 612345678"), "+31 6*****678");
        assert_eq!(
            mask_digits("call 0031 6 1234 5678 now"),
            "call 003* * **** *678 now"
        );
        assert_eq!(mask_digits("(425) 555-0100"), "(425) ***-*100");
        assert_eq!(mask_digits("Phone 2, Email 12"), "Phone 2, Email 12");
        assert_eq!(mask_digits("12345"), "****5");
        for text in ["+31 612345678", "0612345678", "+1 (201) 555-0123"] {
            let masked = mask_digits(text);
            let digits: String = masked.chars().filter(char::is_ascii_digit).collect();
            assert!(digits.len() <= 6, "{masked}");
        }
        assert_eq!(mask_header("someone@contoso.com"), "s***@contoso.com");
        assert_eq!(mask_header("Mobile"), "Mobile");
    }
}
