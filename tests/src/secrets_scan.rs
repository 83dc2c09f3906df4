//! Looks through captured logs for what must never be in them: the private key, any token (client
//! assertions, access tokens, AWS session token), and any whole phone number.

use crate::lambda_rt::LogLine;
use std::collections::{BTreeSet, HashSet};

/// Shortest digit string treated as a whole phone number.
const MIN_PHONE_DIGITS: usize = 7;

/// Everything to look for.
#[derive(Debug, Default)]
pub struct Needles {
    /// (what it is, exact text).
    secrets: Vec<(String, String)>,
    /// Digit strings of whole numbers (national significant numbers and raw cells).
    phone_digits: HashSet<String>,
    lengths: BTreeSet<usize>,
}

/// One thing found where it must not be.
#[derive(Debug, Clone)]
pub struct Finding {
    pub what: String,
    pub source: String,
    pub line: String,
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

impl Needles {
    pub fn new() -> Needles {
        Needles::default()
    }

    /// An exact secret string (ignored when shorter than 16 characters: too likely by chance).
    pub fn secret(&mut self, what: &str, text: &str) {
        let t = text.trim();
        if t.len() >= 16 {
            self.secrets.push((what.to_string(), t.to_string()));
        }
    }

    /// An exact secret string of any length: a value that is secret however short, such as a
    /// Temporary Access Pass (8 characters by default), which no log may hold at all.
    pub fn exact(&mut self, what: &str, text: &str) {
        if !text.is_empty() {
            self.secrets.push((what.to_string(), text.to_string()));
        }
    }

    /// A PEM private key: every base64 line of its body, and the key as a whole.
    pub fn private_key(&mut self, pem: &str) {
        for line in pem.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with("-----") {
                self.secret("a line of the private key", line);
            }
        }
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        // The key's body written without line breaks (e.g. JSON-escaped secret).
        if body.len() > 100 {
            self.secret("the private key", &body[..100]);
        }
    }

    /// A JWT: the whole token and its signature.
    pub fn jwt(&mut self, what: &str, token: &str) {
        self.secret(what, token);
        if let Some(sig) = token.rsplit('.').next() {
            self.secret(&format!("{what} (signature)"), sig);
        }
    }

    /// A phone number as written and in Graph form (`+CC NUMBER[xEXT]`).
    pub fn phone(&mut self, written: &str, graph: Option<&str>) {
        let mut add = |d: String| {
            if d.len() >= MIN_PHONE_DIGITS {
                self.lengths.insert(d.len());
                self.phone_digits.insert(d);
            }
        };
        match graph {
            Some(g) => {
                // The national significant number is the part that identifies the line.
                let number = g.split_once(' ').map_or(g, |(_, n)| n);
                let number = number.split('x').next().unwrap_or(number);
                add(digits(number));
            }
            None => add(digits(written)),
        }
    }

    pub fn phone_count(&self) -> usize {
        self.phone_digits.len()
    }

    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// Every line holding a needle. Phone numbers are found in runs of digits and the separators
    /// numbers are written with (space, `-`, `.`, `(`, `)`, `+`, `/`).
    pub fn scan(&self, lines: &[LogLine]) -> Vec<Finding> {
        let mut found = Vec::new();
        let literal = [
            ("a PEM private key marker", "PRIVATE KEY"),
            ("a JWT (header)", "eyJhbGciOi"),
            ("a JWT (header)", "eyJ0eXAiOi"),
        ];
        for l in lines {
            let text = &l.text;
            let mut hit = |what: &str| {
                found.push(Finding {
                    what: what.to_string(),
                    source: format!("{} {:?}", l.source, l.stream),
                    line: text.clone(),
                })
            };
            for (what, needle) in literal {
                if text.contains(needle) {
                    hit(what);
                }
            }
            for (what, needle) in &self.secrets {
                if text.contains(needle.as_str()) {
                    hit(what);
                }
            }
            if let Some(rest) = text
                .to_ascii_lowercase()
                .find("bearer ")
                .map(|i| &text[i + 7..])
            {
                let token_len = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "-_.~+/=".contains(*c))
                    .count();
                if token_len >= 16 {
                    hit("a bearer token");
                }
            }
            for run in digit_runs(text) {
                if run.len() < MIN_PHONE_DIGITS {
                    continue;
                }
                let hit_number = self.lengths.iter().any(|&n| {
                    n <= run.len()
                        && (0..=run.len() - n).any(|s| self.phone_digits.contains(&run[s..s + n]))
                });
                if hit_number {
                    hit("a whole phone number");
                    break;
                }
            }
        }
        found
    }
}

/// Digit strings of the runs of digits and phone separators in `text`.
fn digit_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            cur.push(c);
        } else if " -.()+/".contains(c) {
            continue;
        } else if !cur.is_empty() {
            runs.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine {
            seq: 0,
            source: "t".into(),
            stream: crate::lambda_rt::Stream::Stdout,
            text: text.into(),
        }
    }

    #[test]
    fn finds_numbers_in_any_writing_but_not_masked_ones() {
        let mut n = Needles::new();
        n.phone("(206) 200-0001", Some("+1 2062000001"));
        n.phone("0612345678", None);
        assert_eq!(n.scan(&[line(r#"{"detail":"+1 2062000001"}"#)]).len(), 1);
        assert_eq!(n.scan(&[line("call 206-200-0001 now")]).len(), 1);
        assert_eq!(n.scan(&[line("x=0612345678")]).len(), 1);
        assert!(n.scan(&[line(r#"{"detail":"+1 206****001"}"#)]).is_empty());
        assert_eq!(
            n.scan(&[line("206 200 0001")]).len(),
            1,
            "separators join runs"
        );
        assert!(n.scan(&[line("row 2062, user 0001")]).is_empty());
    }

    #[test]
    fn finds_keys_and_tokens() {
        let mut n = Needles::new();
        n.private_key("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n");
        n.jwt(
            "assertion",
            "eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWc",
        );
        assert!(!n
            .scan(&[line("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7")])
            .is_empty());
        assert!(!n
            .scan(&[line("sig c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWc")])
            .is_empty());
        assert!(!n
            .scan(&[line("Authorization: Bearer abcdefghijklmnopqrstuvwxyz")])
            .is_empty());
        assert!(n.scan(&[line("nothing to see")]).is_empty());
    }
}
