//! libphonenumber's metadata, as the `phonenumber` crate ships it, compiled once per country code
//! into matchers that are used without a lock. This is the fast path of [`super::normalise`] for the
//! common shape: `+CC` followed by a national significant number with no trunk prefix.
//!
//! The crate looks up every pattern in a shared LRU cache on each use (a mutex and a hash of the
//! pattern's text), which costs more than the matching itself. Here each pattern is compiled once
//! and kept beside its metadata. The rules are the crate's own: the same region choice for shared
//! country codes, the same possible lengths, the same patterns, matched from the first digit.
//!
//! The fast path only ever answers "valid, and this is the number". It stays silent whenever the
//! crate's parser might read the digits differently: a national number that starts with `0` or
//! with the region's national prefix, a country code whose regions it cannot name, a number that
//! matches no pattern. Those go to the crate, so an answer here is never a different answer. The
//! tests compare both paths over every region's example numbers and variants of them.

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};
use std::sync::OnceLock;

/// The crate's bounds on a national significant number.
const MIN_NSN: usize = 2;
const MAX_NSN: usize = 17;

/// One of the metadata's patterns as a fully built DFA: a few KiB, no cache, no lock. It matches
/// from the first character (the crate keeps a match found by `find` only when it starts at 0,
/// which is the same thing), with the crate's flags (`x`); `\d` is an ASCII digit here, which is
/// all a national number holds.
struct Pattern(dense::DFA<Vec<u32>>);

impl Pattern {
    fn new(source: &str) -> Option<Pattern> {
        dense::Builder::new()
            .syntax(syntax::Config::new().unicode(false))
            .configure(dense::Config::new().start_kind(StartKind::Anchored))
            .build(&format!("(?x:{source}\n)"))
            .ok()
            .map(Pattern)
    }

    fn is_match(&self, text: &str) -> bool {
        let input = Input::new(text).anchored(Anchored::Yes).earliest(true);
        matches!(self.0.try_search_fwd(&input), Ok(Some(_)))
    }

    #[cfg(test)]
    fn memory_usage(&self) -> usize {
        self.0.memory_usage()
    }
}

/// One number type of a region: its possible lengths and its pattern.
struct Desc {
    lengths: Vec<u16>,
    pattern: Pattern,
}

impl Desc {
    fn new(d: &Descriptor) -> Option<Desc> {
        Some(Desc {
            lengths: d.possible_length().to_vec(),
            pattern: Pattern::new(d.national_number().as_str())?,
        })
    }

    /// As `Descriptor::is_match`.
    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.pattern.is_match(national)
    }
}

/// Every type that makes a number valid (the crate's `number_type` is not `Unknown`), the common
/// ones first.
fn valid_types(meta: &Metadata) -> [Option<&Descriptor>; 10] {
    let d = meta.descriptors();
    [
        d.mobile(),
        d.fixed_line(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.voip(),
        d.personal_number(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
}

/// What the fast path needs of one region's metadata.
struct Region {
    /// The region's id (`US`, `CA`, `001`).
    #[cfg_attr(not(test), allow(dead_code))]
    id: String,
    leading_digits: Option<Pattern>,
    national_prefix: Option<String>,
    prefix_for_parsing: Option<Pattern>,
    general: Desc,
    /// The [`valid_types`] the region has.
    types: Vec<Desc>,
}

impl Region {
    fn new(meta: &Metadata) -> Option<Region> {
        let types = valid_types(meta)
            .into_iter()
            .flatten()
            .map(Desc::new)
            .collect::<Option<Vec<_>>>()?;
        Some(Region {
            id: meta.id().to_string(),
            leading_digits: match meta.leading_digits() {
                Some(re) => Some(Pattern::new(re.as_str())?),
                None => None,
            },
            national_prefix: meta.national_prefix().map(str::to_string),
            prefix_for_parsing: match meta.national_prefix_for_parsing() {
                Some(re) => Some(Pattern::new(re.as_str())?),
                None => None,
            },
            general: Desc::new(meta.descriptors().general())?,
            types,
        })
    }

    /// As the crate's `number_type(..) != Type::Unknown`.
    fn is_valid(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }

    /// Whether the crate's parser could strip a national prefix (or a carrier code) here.
    fn may_strip(&self, national: &str) -> bool {
        self.prefix_for_parsing
            .as_ref()
            .is_some_and(|re| re.is_match(national))
            || self
                .national_prefix
                .as_ref()
                .is_some_and(|p| national.starts_with(p.as_str()))
    }
}

/// The regions of one country code, in the crate's order.
struct Code {
    regions: Vec<Region>,
}

impl Code {
    fn new(code: u16) -> Option<Code> {
        let ids = DATABASE.region(&code)?;
        let metas: Vec<&Metadata> = if let [only] = ids.as_slice() {
            if *only == "001" {
                // A non-geographic code: the crate takes the first entry of the code.
                vec![*DATABASE.by_code(&code)?.first()?]
            } else {
                only.parse::<phonenumber::country::Id>().ok()?;
                vec![DATABASE.by_id(*only)?]
            }
        } else {
            ids.iter()
                .map(|id| {
                    id.parse::<phonenumber::country::Id>().ok()?;
                    DATABASE.by_id(*id)
                })
                .collect::<Option<Vec<_>>>()?
        };
        Some(Code {
            regions: metas
                .into_iter()
                .map(Region::new)
                .collect::<Option<Vec<_>>>()?,
        })
    }

    /// As the crate's `validator::source_for`: the region whose rules apply to this number.
    fn source_for(&self, national: &str) -> Option<&Region> {
        if let [only] = self.regions.as_slice() {
            return Some(only);
        }
        self.regions.iter().find(|r| match &r.leading_digits {
            Some(re) => re.is_match(national),
            None => r.is_valid(national),
        })
    }
}

/// What a country code is to the fast path.
enum Entry {
    /// Not a country code.
    Unknown,
    /// A code whose regions the fast path does not serve (the crate does).
    Unsupported,
    Ready(Code),
}

/// Country codes 0..=999, each compiled on first use.
static CODES: [OnceLock<Entry>; 1000] = [const { OnceLock::new() }; 1000];

fn entry(value: u16) -> &'static Entry {
    static UNKNOWN: Entry = Entry::Unknown;
    match CODES.get(usize::from(value)) {
        Some(cell) => cell.get_or_init(|| {
            if DATABASE.region(&value).is_none() {
                Entry::Unknown
            } else {
                Code::new(value).map_or(Entry::Unsupported, Entry::Ready)
            }
        }),
        None => &UNKNOWN,
    }
}

/// `digits` (ASCII digits, the number after `+`): the country code and the national significant
/// number, when the number is valid and the crate's parser would take the digits as they are.
/// `None` means "ask the crate", never "invalid".
pub fn valid_international(digits: &str) -> Option<(u16, &str)> {
    let b = digits.as_bytes();
    if b.len() <= MIN_NSN || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // The crate takes the shortest prefix that is a country code (the codes are prefix-free).
    let mut value = 0u16;
    for len in 1..=3 {
        value = value * 10 + u16::from(b[len - 1] - b'0');
        match entry(value) {
            Entry::Unknown => continue,
            Entry::Unsupported => return None,
            Entry::Ready(code) => {
                let national = &digits[len..];
                if national.len() < MIN_NSN || national.len() > MAX_NSN || national.starts_with('0')
                {
                    return None;
                }
                let region = code.source_for(national)?;
                if region.may_strip(national) || !region.is_valid(national) {
                    return None;
                }
                return Some((value, national));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the crate says of `+digits`: the country code and national number when valid.
    fn crate_answer(digits: &str) -> Option<(u16, String)> {
        crate_number(digits).map(|(code, national, _)| (code, national))
    }

    /// The same with the region whose rules the crate applied.
    fn crate_number(digits: &str) -> Option<(u16, String, Option<String>)> {
        let n = phonenumber::parse(None, format!("+{digits}")).ok()?;
        phonenumber::is_valid(&n).then(|| {
            (
                n.code().value(),
                format!(
                    "{}{}",
                    "0".repeat(n.national().zeros() as usize),
                    n.national().value()
                ),
                n.country().id().map(|id| id.as_ref().to_string()),
            )
        })
    }

    /// National numbers near a region's example: the example, each digit changed, one digit
    /// fewer or more, and with the national prefix or a `0` in front.
    fn variants(meta: &Metadata, example: &str) -> Vec<String> {
        let mut out = vec![example.to_string()];
        for (i, c) in example.char_indices() {
            let d = c.to_digit(10).unwrap_or(0);
            for step in [1, 5] {
                let mut v = example.to_string();
                v.replace_range(i..=i, &((d + step) % 10).to_string());
                out.push(v);
            }
        }
        if example.len() > 1 {
            out.push(example[..example.len() - 1].to_string());
        }
        out.push(format!("{example}7"));
        out.push(format!("0{example}"));
        if let Some(p) = meta.national_prefix() {
            out.push(format!("{p}{example}"));
        }
        out
    }

    #[test]
    fn every_fast_answer_is_the_crates_answer() {
        let mut cases = 0usize;
        let mut crate_valid = 0usize;
        let mut fast_valid = 0usize;
        let mut codes_served = std::collections::BTreeSet::new();
        for meta in DATABASE.iter() {
            let examples = std::iter::once(Some(meta.descriptors().general()))
                .chain(valid_types(meta))
                .flatten()
                .filter_map(Descriptor::example);
            for example in examples {
                for national in variants(meta, example) {
                    let digits = format!("{}{national}", meta.country_code());
                    let number = crate_number(&digits);
                    if let Some((code, nsn, Some(id))) = &number {
                        // The same region as the crate's for every valid number.
                        if let Entry::Ready(c) = entry(*code) {
                            let ours = c.source_for(nsn).map(|r| r.id.as_str());
                            assert_eq!(ours, Some(id.as_str()), "+{digits}");
                        }
                    }
                    let expected = number.map(|(code, nsn, _)| (code, nsn));
                    let fast = valid_international(&digits);
                    cases += 1;
                    crate_valid += usize::from(expected.is_some());
                    if let Some((code, nsn)) = fast {
                        fast_valid += 1;
                        codes_served.insert(code);
                        assert_eq!(
                            Some((code, nsn.to_string())),
                            expected,
                            "+{digits} ({} {example} -> {national})",
                            meta.id()
                        );
                    }
                }
            }
        }
        // The fast path must carry the common case, not only be right when it speaks.
        assert!(cases > 20_000, "{cases} cases");
        assert!(
            fast_valid * 10 >= crate_valid * 8,
            "the fast path answered {fast_valid} of {crate_valid} valid numbers"
        );
        assert!(codes_served.len() > 200, "{} codes", codes_served.len());
    }

    #[test]
    fn common_numbers_take_the_fast_path() {
        for (digits, code, national) in [
            ("31612345678", 31, "612345678"),
            ("4915123456789", 49, "15123456789"),
            ("12015550123", 1, "2015550123"),
            ("447400123456", 44, "7400123456"),
            ("61412345678", 61, "412345678"),
            ("390612345678", 39, "0612345678"),
        ] {
            let expected = crate_answer(digits);
            assert_eq!(expected, Some((code, national.to_string())), "+{digits}");
            if national.starts_with('0') {
                // Italian numbers keep their leading zero: the crate decides those.
                assert_eq!(valid_international(digits), None, "+{digits}");
            } else {
                assert_eq!(
                    valid_international(digits),
                    Some((code, national)),
                    "+{digits}"
                );
            }
        }
        // Not a country code, too short, a trunk prefix: the fast path stays silent.
        for digits in ["999123456", "31", "310612345678", "0031612345678"] {
            assert_eq!(valid_international(digits), None, "+{digits}");
        }
    }

    #[test]
    fn the_whole_table_stays_small() {
        // Every country code compiled: the matchers' own memory stays a few MiB, so a file with
        // numbers from every country keeps the ingest's memory bound.
        let mut total = 0usize;
        let mut patterns = 0usize;
        for value in 0..1000u16 {
            if let Entry::Ready(code) = entry(value) {
                for r in &code.regions {
                    let all = std::iter::once(&r.general).chain(&r.types);
                    for d in all {
                        total += d.pattern.memory_usage();
                        patterns += 1;
                    }
                    for p in [&r.leading_digits, &r.prefix_for_parsing]
                        .into_iter()
                        .flatten()
                    {
                        total += p.memory_usage();
                        patterns += 1;
                    }
                }
            }
        }
        assert!(patterns > 1_000, "{patterns} patterns");
        assert!(total < 8 << 20, "{total} bytes for {patterns} patterns");
    }
}
