//! A generated migration file with a known fate for every row: the CSV, the users to seed into
//! the Graph simulator, and what must come out (per-row outcome or DLQ reason, the final state of
//! every user, and the exact writes Graph must see).
//!
//! Good rows cover every outcome (created, updated, deleted, unchanged, skipped_exists, a new
//! mobile with SMS sign-in, users given by object id) with phone numbers in the messy forms legacy
//! exports use. Bad rows are each wrong in exactly one way: some are caught by the ingest
//! (invalid phone, email, boolean, formula, user; a repeated user; a repeated SMS sign-in number),
//! the others only by Graph through the worker (user not found, alternate without mobile, the
//! default method's phone removed, an SMS sign-in number another user holds).

use std::collections::BTreeMap;

use graph_sim::{SeedUser, UserState};
use mfa_preload_core::{Outcome, Reason};

/// Which function rejects a bad row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ingest,
    Worker,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Worker => "worker",
        }
    }
}

/// What must become of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Done(Outcome),
    Reject(Reason, Stage),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSpec {
    /// Line number (header = 1), as reports and DLQ entries give it.
    pub row: u64,
    /// The user cell as written.
    pub user: String,
    pub expect: Expect,
}

/// One Graph write as the simulator's write log records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Write {
    pub upn: String,
    pub method: String,
    pub op: String,
    pub value: Option<String>,
}

impl Write {
    fn new(upn: &str, method: &str, op: &str, value: Option<&str>) -> Write {
        Write {
            upn: upn.to_string(),
            method: method.to_string(),
            op: op.to_string(),
            value: value.map(str::to_string),
        }
    }

    pub fn from_record(r: &graph_sim::WriteRecord) -> Write {
        Write {
            upn: r.upn.to_lowercase(),
            method: r.method.clone(),
            op: r.op.clone(),
            value: r.value.clone(),
        }
    }
}

/// The generated file and everything known about it.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The file: UTF-8 with BOM, CRLF.
    pub csv: Vec<u8>,
    pub rows: Vec<RowSpec>,
    /// Users to seed, in order.
    pub seeds: Vec<SeedUser>,
    /// The state every seeded user must end in, in seed order.
    pub expected_users: Vec<UserState>,
    /// Every write Graph must see, sorted.
    pub expected_writes: Vec<Write>,
    /// Every phone number in the file and the seeds, as written and normalised (for log checks).
    pub phone_numbers: Vec<String>,
    /// The users the tenant's SMS sign-in policy targets (those whose rows ask for SMS sign-in);
    /// the other users' mobiles read `notAllowedByPolicy`.
    pub sms_policy_users: Vec<String>,
}

impl Dataset {
    pub fn rows_read(&self) -> u64 {
        self.rows.len() as u64
    }

    /// Expected rejects per reason at a stage.
    pub fn rejects(&self, stage: Stage) -> BTreeMap<Reason, u64> {
        let mut m = BTreeMap::new();
        for r in &self.rows {
            if let Expect::Reject(reason, s) = r.expect {
                if s == stage {
                    *m.entry(reason).or_insert(0) += 1;
                }
            }
        }
        m
    }

    /// Expected outcomes per kind.
    pub fn outcomes(&self) -> BTreeMap<Outcome, u64> {
        let mut m = BTreeMap::new();
        for r in &self.rows {
            if let Expect::Done(o) = r.expect {
                *m.entry(o).or_insert(0) += 1;
            }
        }
        m
    }

    pub fn expect_of(&self, row: u64) -> Option<Expect> {
        // rows are in order, line numbers from 2 on
        self.rows
            .get(row.checked_sub(2)? as usize)
            .filter(|r| r.row == row)
            .map(|r| r.expect)
    }
}

/// xorshift64*: deterministic and good enough to shuffle test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Created,
    CreatedById,
    SmsCreated,
    Unchanged,
    Updated,
    Skipped,
    Deleted,
    BadPhone,
    BadEmail,
    BadBool,
    Formula,
    BadUser,
    DupUser,
    DupSms,
    NotFound,
    AltNoMobile,
    DefaultConflict,
    SmsTaken,
}

/// `+31 6xxxxxxxx`: Dutch mobile numbers in series `s` (1..=5), Graph form.
fn nl_mobile(series: u32, n: usize) -> String {
    format!("+31 6{series}{n:07}")
}

/// `+31 20xxxxxxx`: Amsterdam numbers, Graph form.
fn nl_office(n: usize) -> String {
    format!("+31 203{n:06}")
}

/// A Graph-form Dutch number written the way a legacy export might.
fn messy(graph_form: &str, style: usize) -> String {
    let nsn = graph_form.trim_start_matches("+31 ");
    let (area, rest) = if nsn.starts_with('6') {
        nsn.split_at(1)
    } else {
        nsn.split_at(2)
    };
    match style % 6 {
        0 => graph_form.to_string(),
        1 => format!("0031{nsn}"),
        2 => format!("0{area}-{rest}"),
        3 => format!("+310{nsn}"),
        4 => format!(
            "+31 {area} {} {}",
            &rest[..4.min(rest.len())],
            &rest[4.min(rest.len())..]
        ),
        _ => format!("(0{area}) {rest}"),
    }
}

/// The Graph form of a Dutch number written by [`messy`] (the inverse, by digits); `None` for
/// cells that are not one of those.
fn graph_form_of(cell: &str) -> Option<String> {
    let d: String = cell.chars().filter(char::is_ascii_digit).collect();
    let nsn = if let Some(r) = d.strip_prefix("0031") {
        r
    } else if let Some(r) = d.strip_prefix("310") {
        r
    } else if let Some(r) = d.strip_prefix("31") {
        r
    } else {
        d.strip_prefix('0')?
    };
    (nsn.len() == 9).then(|| format!("+31 {nsn}"))
}

fn guid(tag: u32, i: usize) -> String {
    format!("{tag:08x}-0000-4000-8000-{i:012x}")
}

struct Builder {
    rng: Rng,
    lines: Vec<String>,
    rows: Vec<RowSpec>,
    seeds: Vec<SeedUser>,
    expected: Vec<UserState>,
    writes: Vec<Write>,
    phones: Vec<String>,
    serial: usize,
    sms_policy: Vec<String>,
}

/// The CSV columns, in order.
pub const HEADER: &str =
    "UPN,Mobile,AlternateMobile,OfficePhone,Email,ForcedUpdate,ForcedRemoval,SmsSignIn";

#[derive(Default)]
struct Cells {
    user: String,
    mobile: String,
    alternate: String,
    office: String,
    email: String,
    forced_update: String,
    forced_removal: String,
    sms: String,
}

impl Builder {
    fn next_serial(&mut self) -> usize {
        self.serial += 1;
        self.serial
    }

    /// Seeds a user and returns its expected-state index.
    fn seed(&mut self, s: SeedUser) -> usize {
        let state = UserState {
            id: s.id.clone().unwrap_or_default(),
            upn: s.upn.clone(),
            mobile: s.mobile.clone(),
            alternate_mobile: s.alternate_mobile.clone(),
            office: s.office.clone(),
            email: s.email.clone(),
            sms_sign_in: s.mobile.as_ref().map(|_| {
                if s.sms_sign_in_enabled {
                    "ready".to_string()
                } else {
                    "notEnabled".to_string()
                }
            }),
            default_method: s.default_method.clone(),
            methods: s.methods.clone(),
        };
        for p in [&s.mobile, &s.alternate_mobile, &s.office]
            .into_iter()
            .flatten()
        {
            self.phones.push(p.clone());
        }
        self.seeds.push(s);
        self.expected.push(state);
        self.expected.len() - 1
    }

    fn push_row(&mut self, c: Cells, expect: Expect) {
        for p in [&c.mobile, &c.alternate, &c.office] {
            if let Some(g) = graph_form_of(p) {
                self.phones.push(p.clone());
                self.phones.push(g);
            }
        }
        let line = [
            &c.user,
            &c.mobile,
            &c.alternate,
            &c.office,
            &c.email,
            &c.forced_update,
            &c.forced_removal,
            &c.sms,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
        let row = self.rows.len() as u64 + 2;
        self.lines.push(line);
        self.rows.push(RowSpec {
            row,
            user: c.user,
            expect,
        });
    }

    fn write(&mut self, upn: &str, method: &str, op: &str, value: Option<&str>) {
        self.writes.push(Write::new(upn, method, op, value));
    }

    fn yes(&mut self) -> String {
        ["True", "yes", "1", "TRUE", "Yes"][self.rng.below(5)].to_string()
    }

    fn no(&mut self) -> String {
        ["False", "no", "0", "", "FALSE"][self.rng.below(5)].to_string()
    }
}

/// Generates `rows` rows of which `bad` are bad (split over all the bad kinds).
pub fn generate(rows: usize, bad: usize, seed: u64) -> Dataset {
    assert!(bad >= 18 && rows >= bad * 4, "need room for every kind");
    let mut b = Builder {
        rng: Rng(seed | 1),
        lines: Vec::new(),
        rows: Vec::new(),
        seeds: Vec::new(),
        expected: Vec::new(),
        writes: Vec::new(),
        phones: Vec::new(),
        serial: 0,
        sms_policy: Vec::new(),
    };
    // Bad kinds: shares of `bad`.
    let bad_kinds = [
        (Kind::BadPhone, 12),
        (Kind::BadEmail, 8),
        (Kind::BadBool, 8),
        (Kind::Formula, 4),
        (Kind::BadUser, 8),
        (Kind::DupUser, 15),
        (Kind::DupSms, 10),
        (Kind::NotFound, 11),
        (Kind::AltNoMobile, 8),
        (Kind::DefaultConflict, 8),
        (Kind::SmsTaken, 8),
    ];
    let total_share: usize = bad_kinds.iter().map(|(_, s)| s).sum();
    let mut kinds: Vec<Kind> = Vec::with_capacity(rows);
    let mut bad_left = bad;
    for (i, (k, share)) in bad_kinds.iter().enumerate() {
        let n = if i + 1 == bad_kinds.len() {
            bad_left
        } else {
            (bad * share / total_share).max(1).min(bad_left)
        };
        bad_left -= n;
        kinds.extend(std::iter::repeat_n(*k, n));
    }
    let good = rows - bad;
    let good_kinds = [
        (Kind::Created, 45),
        (Kind::CreatedById, 5),
        (Kind::SmsCreated, 4),
        (Kind::Unchanged, 15),
        (Kind::Updated, 10),
        (Kind::Skipped, 10),
        (Kind::Deleted, 11),
    ];
    let good_share: usize = good_kinds.iter().map(|(_, s)| s).sum();
    let mut good_left = good;
    for (i, (k, share)) in good_kinds.iter().enumerate() {
        let n = if i + 1 == good_kinds.len() {
            good_left
        } else {
            good * share / good_share
        };
        good_left -= n;
        kinds.extend(std::iter::repeat_n(*k, n));
    }
    // Repeats (DupUser, DupSms) must come after the row they repeat: place the others first,
    // then put each repeat at a random point after its target.
    let (mut primary, repeats): (Vec<Kind>, Vec<Kind>) = kinds
        .into_iter()
        .partition(|k| !matches!(k, Kind::DupUser | Kind::DupSms));
    b.rng.shuffle(&mut primary);
    // (key, kind, target index in primary)
    let mut order: Vec<(u64, Kind, Option<usize>)> = primary
        .iter()
        .enumerate()
        .map(|(i, k)| ((i as u64 + 1) * 1000, *k, None))
        .collect();
    let mut used_targets = std::collections::HashSet::new();
    for (j, k) in repeats.iter().enumerate() {
        let wanted = |x: &Kind| match k {
            Kind::DupUser => matches!(
                x,
                Kind::Created | Kind::Unchanged | Kind::Updated | Kind::Skipped | Kind::Deleted
            ),
            _ => *x == Kind::SmsCreated,
        };
        let candidates: Vec<usize> = primary
            .iter()
            .enumerate()
            .filter(|(i, x)| wanted(x) && !used_targets.contains(i))
            .map(|(i, _)| i)
            .collect();
        let t = candidates[b.rng.below(candidates.len())];
        used_targets.insert(t);
        let after = t + 1 + b.rng.below(primary.len() - t);
        order.push(((after as u64) * 1000 + 500 + j as u64, *k, Some(t)));
    }
    order.sort_by_key(|(key, _, _)| *key);

    // Per primary index: (upn, graph-form mobile) once written, for the repeats.
    let mut written: Vec<Option<(String, String)>> = vec![None; primary.len()];
    let mut primary_index = 0usize;
    for (_, kind, target) in order {
        let n = b.next_serial();
        match kind {
            Kind::DupUser | Kind::DupSms => {
                let t = target.unwrap_or(0);
                let Some((upn, mobile)) = written[t].clone() else {
                    unreachable!("a repeat is placed after its target")
                };
                let style = b.rng.below(6);
                if kind == Kind::DupUser {
                    let c = Cells {
                        user: upn.to_uppercase(),
                        mobile: messy(&nl_mobile(5, n), style),
                        forced_update: b.yes(),
                        ..Cells::default()
                    };
                    b.push_row(
                        c,
                        Expect::Reject(Reason::DuplicateUserInFile, Stage::Ingest),
                    );
                } else {
                    let c = Cells {
                        user: format!("smsdup{n:05}@contoso.com"),
                        mobile: messy(&mobile, style),
                        sms: "enable".into(),
                        ..Cells::default()
                    };
                    b.push_row(
                        c,
                        Expect::Reject(Reason::SmsSigninNumberNotUnique, Stage::Ingest),
                    );
                }
            }
            _ => {
                let rec = build_primary(&mut b, kind, n);
                written[primary_index] = rec;
                primary_index += 1;
            }
        }
    }

    let mut csv = Vec::new();
    csv.extend_from_slice("\u{feff}".as_bytes());
    csv.extend_from_slice(HEADER.as_bytes());
    csv.extend_from_slice(b"\r\n");
    for l in &b.lines {
        csv.extend_from_slice(l.as_bytes());
        csv.extend_from_slice(b"\r\n");
    }
    let mut writes = b.writes;
    writes.sort();
    let mut phones = b.phones;
    phones.sort();
    phones.dedup();
    // Graph reports a mobile of a user the SMS sign-in policy does not target as
    // `notAllowedByPolicy`.
    let policy: std::collections::HashSet<&str> = b.sms_policy.iter().map(String::as_str).collect();
    for u in &mut b.expected {
        if u.sms_sign_in.as_deref() == Some("notEnabled") && !policy.contains(u.upn.as_str()) {
            u.sms_sign_in = Some("notAllowedByPolicy".into());
        }
    }
    Dataset {
        csv,
        rows: b.rows,
        seeds: b.seeds,
        expected_users: b.expected,
        expected_writes: writes,
        phone_numbers: phones,
        sms_policy_users: b.sms_policy,
    }
}

/// Builds one non-repeat row (and its seeds); returns the UPN and mobile a repeat may reuse.
fn build_primary(b: &mut Builder, kind: Kind, n: usize) -> Option<(String, String)> {
    let upn = format!("user{n:05}@contoso.com");
    let mobile = nl_mobile(1, n);
    let style = b.rng.below(6);
    let seeded = |upn: &str| SeedUser {
        id: Some(guid(0xa11ce, n)),
        ..SeedUser::new(upn)
    };
    match kind {
        Kind::Created | Kind::CreatedById => {
            let i = b.seed(seeded(&upn));
            let by_id = kind == Kind::CreatedById;
            let mut c = Cells {
                user: if by_id { guid(0xa11ce, n) } else { upn.clone() },
                mobile: messy(&mobile, style),
                forced_update: if b.rng.chance(2) { b.yes() } else { b.no() },
                forced_removal: if b.rng.chance(3) { b.yes() } else { b.no() },
                ..Cells::default()
            };
            b.write(&upn, "mobile", "create", Some(&mobile));
            b.expected[i].mobile = Some(mobile.clone());
            b.expected[i].sms_sign_in = Some("notEnabled".into());
            if b.rng.chance(4) {
                let alt = nl_mobile(2, n);
                c.alternate = messy(&alt, b.rng.below(6));
                b.write(&upn, "alternateMobile", "create", Some(&alt));
                b.expected[i].alternate_mobile = Some(alt);
            }
            if b.rng.chance(3) {
                let office = nl_office(n);
                c.office = messy(&office, b.rng.below(6));
                b.write(&upn, "office", "create", Some(&office));
                b.expected[i].office = Some(office);
            }
            if b.rng.chance(3) {
                let email = format!("user{n:05}.home@fabrikam.com");
                c.email = email.clone();
                b.write(&upn, "email", "create", Some(&email));
                b.expected[i].email = Some(email);
            }
            b.push_row(c, Expect::Done(Outcome::Created));
            (!by_id).then_some((upn, mobile))
        }
        Kind::SmsCreated => {
            let i = b.seed(seeded(&upn));
            let c = Cells {
                user: upn.clone(),
                mobile: messy(&mobile, style),
                sms: ["enable", "Enable", "enabled"][b.rng.below(3)].into(),
                ..Cells::default()
            };
            // The policy targets the user: Graph enables SMS sign-in as it creates the mobile, so
            // no enable call follows.
            b.sms_policy.push(upn.clone());
            b.write(&upn, "mobile", "create", Some(&mobile));
            b.expected[i].mobile = Some(mobile.clone());
            b.expected[i].sms_sign_in = Some("ready".into());
            b.push_row(c, Expect::Done(Outcome::Created));
            Some((upn, mobile))
        }
        Kind::Unchanged => {
            let email = b
                .rng
                .chance(2)
                .then(|| format!("user{n:05}.home@fabrikam.com"));
            let office = b.rng.chance(4).then(|| nl_office(n));
            let default_method = b.rng.chance(2).then(|| "sms".to_string());
            b.seed(SeedUser {
                mobile: Some(mobile.clone()),
                email: email.clone(),
                office: office.clone(),
                default_method,
                ..seeded(&upn)
            });
            let c = Cells {
                user: if b.rng.chance(3) {
                    upn.replace("user", "User").replace("contoso", "Contoso")
                } else {
                    upn.clone()
                },
                mobile: messy(&mobile, style),
                email: email.map(|e| e.to_uppercase()).unwrap_or_default(),
                office: office.map(|o| messy(&o, style + 1)).unwrap_or_default(),
                forced_update: if b.rng.chance(2) { b.yes() } else { b.no() },
                forced_removal: b.no(),
                ..Cells::default()
            };
            b.push_row(c, Expect::Done(Outcome::Unchanged));
            Some((upn, mobile))
        }
        Kind::Updated | Kind::Skipped => {
            let old = nl_mobile(3, n);
            let i = b.seed(SeedUser {
                mobile: Some(old),
                ..seeded(&upn)
            });
            let update = kind == Kind::Updated;
            let c = Cells {
                user: upn.clone(),
                mobile: messy(&mobile, style),
                forced_update: if update { b.yes() } else { b.no() },
                forced_removal: b.no(),
                ..Cells::default()
            };
            if update {
                b.write(&upn, "mobile", "update", Some(&mobile));
                b.expected[i].mobile = Some(mobile.clone());
                b.push_row(c, Expect::Done(Outcome::Updated));
            } else {
                b.push_row(c, Expect::Done(Outcome::SkippedExists));
            }
            Some((upn, mobile))
        }
        Kind::Deleted => {
            let office = nl_office(n);
            let default_method = b.rng.chance(2).then(|| "sms".to_string());
            let i = b.seed(SeedUser {
                mobile: Some(mobile.clone()),
                office: Some(office),
                default_method,
                ..seeded(&upn)
            });
            let c = Cells {
                user: upn.clone(),
                mobile: messy(&mobile, style),
                forced_removal: b.yes(),
                forced_update: b.no(),
                ..Cells::default()
            };
            b.write(&upn, "office", "delete", None);
            b.expected[i].office = None;
            b.push_row(c, Expect::Done(Outcome::Deleted));
            Some((upn, mobile))
        }
        Kind::BadPhone => {
            let cell = [
                "+31 6 123",
                "12345",
                "0800-FLOWERS",
                "+999 1234567",
                "06-1234",
            ][b.rng.below(5)];
            let mut c = Cells {
                user: format!("badphone{n:05}@contoso.com"),
                mobile: messy(&mobile, style),
                ..Cells::default()
            };
            if b.rng.chance(2) {
                c.mobile = cell.into();
            } else {
                c.office = cell.into();
            }
            b.push_row(c, Expect::Reject(Reason::InvalidPhoneNumber, Stage::Ingest));
            None
        }
        Kind::BadEmail => {
            let c = Cells {
                user: format!("bademail{n:05}@contoso.com"),
                mobile: messy(&mobile, style),
                email: [
                    "user.at.fabrikam.com",
                    "user@",
                    "user@@fabrikam.com",
                    "a b@fabrikam.com",
                ][b.rng.below(4)]
                .into(),
                ..Cells::default()
            };
            b.push_row(c, Expect::Reject(Reason::InvalidEmail, Stage::Ingest));
            None
        }
        Kind::BadBool => {
            let c = Cells {
                user: format!("badbool{n:05}@contoso.com"),
                mobile: messy(&mobile, style),
                forced_update: ["maybe", "2", "sometimes"][b.rng.below(3)].into(),
                ..Cells::default()
            };
            b.push_row(c, Expect::Reject(Reason::InvalidRow, Stage::Ingest));
            None
        }
        Kind::Formula => {
            let c = Cells {
                user: format!("formula{n:05}@contoso.com"),
                mobile: messy(&mobile, style),
                email: ["=1+1", "@SUM(A1)", "=cmd|' /C calc'!A0"][b.rng.below(3)].into(),
                ..Cells::default()
            };
            b.push_row(c, Expect::Reject(Reason::InvalidRow, Stage::Ingest));
            None
        }
        Kind::BadUser => {
            let user = [
                format!("bad user{n:05}@contoso.com"),
                format!("bad/user{n:05}@contoso.com"),
                format!("baduser{n:05}"),
            ][b.rng.below(3)]
            .clone();
            let c = Cells {
                user,
                mobile: messy(&mobile, style),
                ..Cells::default()
            };
            b.push_row(c, Expect::Reject(Reason::InvalidUser, Stage::Ingest));
            None
        }
        Kind::NotFound => {
            let c = Cells {
                user: format!("ghost{n:05}@contoso.com"),
                mobile: messy(&mobile, style),
                ..Cells::default()
            };
            b.push_row(c, Expect::Reject(Reason::UserNotFound, Stage::Worker));
            None
        }
        Kind::AltNoMobile => {
            b.seed(seeded(&upn));
            let c = Cells {
                user: upn.clone(),
                alternate: messy(&nl_mobile(2, n), style),
                forced_removal: b.no(),
                ..Cells::default()
            };
            b.push_row(
                c,
                Expect::Reject(Reason::AlternateRequiresMobile, Stage::Worker),
            );
            None
        }
        Kind::DefaultConflict => {
            let office = nl_office(n);
            b.seed(SeedUser {
                mobile: Some(mobile.clone()),
                office: Some(office),
                default_method: Some("voiceOffice".into()),
                ..seeded(&upn)
            });
            let c = Cells {
                user: upn.clone(),
                mobile: messy(&mobile, style),
                forced_removal: b.yes(),
                ..Cells::default()
            };
            b.push_row(
                c,
                Expect::Reject(Reason::DefaultMethodConflict, Stage::Worker),
            );
            None
        }
        Kind::SmsTaken => {
            // Another user (not in the file) already uses the number for SMS sign-in.
            let number = nl_mobile(4, n);
            b.seed(SeedUser {
                id: Some(guid(0xb0b, n)),
                mobile: Some(number.clone()),
                sms_sign_in_enabled: true,
                default_method: Some("sms".into()),
                ..SeedUser::new(format!("holder{n:05}@contoso.com"))
            });
            let i = b.seed(SeedUser {
                mobile: Some(number.clone()),
                ..seeded(&upn)
            });
            // Graph answers the enable with 409 phoneNumberNotUnique and from then on reports
            // that state on the user's mobile.
            b.sms_policy.push(upn.clone());
            b.expected[i].sms_sign_in = Some("phoneNumberNotUnique".into());
            let c = Cells {
                user: upn.clone(),
                mobile: messy(&number, style),
                sms: "enable".into(),
                ..Cells::default()
            };
            b.push_row(
                c,
                Expect::Reject(Reason::SmsSigninNumberNotUnique, Stage::Worker),
            );
            None
        }
        Kind::DupUser | Kind::DupSms => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_preload_core::csv::{ColumnMapping, CsvReader};
    use mfa_preload_core::validate::{validate, Settings};

    /// Every row the dataset says the ingest accepts validates, to the number the model expects;
    /// every row it says the ingest rejects for a per-row reason fails with that reason.
    #[tokio::test]
    async fn the_model_agrees_with_validation() {
        let d = generate(2000, 100, 7);
        assert_eq!(d.rows.len(), 2000);
        let bad = d
            .rows
            .iter()
            .filter(|r| matches!(r.expect, Expect::Reject(..)))
            .count();
        assert_eq!(bad, 100);
        let settings = Settings {
            default_country: Some(mfa_preload_core::phone::parse_country("NL").unwrap()),
        };
        let mut reader = CsvReader::open(&d.csv[..], &ColumnMapping::default())
            .await
            .unwrap();
        let layout = reader.layout().clone();
        let mut n = 0;
        while let Some(raw) = reader.next().await {
            let raw = raw.unwrap();
            let spec = &d.rows[n];
            assert_eq!(raw.row, spec.row);
            let got = validate(&raw, &layout, &settings);
            match spec.expect {
                Expect::Reject(reason, Stage::Ingest)
                    if !matches!(
                        reason,
                        Reason::DuplicateUserInFile | Reason::SmsSigninNumberNotUnique
                    ) =>
                {
                    let e = got.expect_err(&format!("row {} should be rejected", spec.row));
                    assert_eq!(e.reason, reason, "row {}: {}", spec.row, e.detail);
                }
                _ => {
                    let v = got.unwrap_or_else(|e| panic!("row {}: {e:?}", spec.row));
                    for p in [
                        &v.methods.mobile,
                        &v.methods.alternate_mobile,
                        &v.methods.office,
                    ]
                    .into_iter()
                    .flatten()
                    .flatten()
                    {
                        assert!(d.phone_numbers.contains(p), "row {}: {p}", spec.row);
                    }
                }
            }
            n += 1;
        }
        assert_eq!(n, 2000);
        // every good row's user is seeded (by UPN or id); no seeded user appears twice
        let mut upns = std::collections::HashSet::new();
        for s in &d.seeds {
            assert!(upns.insert(s.upn.clone()), "{}", s.upn);
        }
    }
}
