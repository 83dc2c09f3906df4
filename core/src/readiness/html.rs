//! The readiness page: one self-contained HTML file (inline `<style>`, inline SVG bars, no
//! script, no external URL), readable and printable alone, in the manner of the job report.
//!
//! It shows the deadline (1 February 2027) and the days left, the users per class with a bar
//! each, and the users at risk (`phone_only`, `email_only`, `none`) with their methods, default
//! and system-preferred methods and SMS sign-in, the first [`MAX_AT_RISK_ROWS`] of them.
//!
//! Hooks for machines (tests, scrapers), stable across versions, each with its plain value in
//! `data-value`: `id="deadline"` (`2027-02-01`), `id="days-left"`, `id="total"`,
//! `id="at-risk"`, `id="source"` (`report` or `per-user`), `id="sms-sign-in"` (users with SMS
//! sign-in on; empty when the source does not tell); every class count cell has
//! `data-class="<class>"` and `data-value="<n>"`, its bar `data-bar="<class>"`; every user at
//! risk is `<tr class="at-risk" data-class="<class>" data-user="<user>">`; `id="more"` carries
//! in `data-value` how many users at risk are left out.

use std::fmt::Write as _;

use chrono::NaiveDate;

use super::{
    days_left, sms_state_name, sms_voice_end, Class, Method, Source, Tally, UserReadiness,
};
use crate::html::{esc, thousands};

/// Users at risk listed on the page; all of them are in the CSV and the TAP file.
pub const MAX_AT_RISK_ROWS: usize = 5_000;

/// What the page is about.
pub struct Page<'a> {
    pub users: &'a [UserReadiness],
    pub tally: &'a Tally,
    pub source: Source,
    pub today: NaiveDate,
    /// RFC 3339, printed as is.
    pub generated_at: &'a str,
    /// The tenant, as the run names it.
    pub tenant: &'a str,
}

/// The page's palette and its own rules, after [`crate::html::head`]'s shared ones.
const STYLE: &str = r#"
:root { color-scheme: light; --fg: #1b1f24; --muted: #5b6570; --line: #d8dde3; --soft: #f4f6f8;
  --good: #1f7a3f; --app: #2f5fa8; --phone: #b3261e; --mail: #b35c00; --none: #6b4fa3; }
.deadline { padding: 10px 14px; background: #fdecea; border-left: 4px solid var(--phone); margin: 14px 0; }
.note { color: var(--muted); font-size: 13px; }
rect.phishing_resistant { fill: var(--good); }
rect.authenticator_app { fill: var(--app); }
rect.phone_only { fill: var(--phone); }
rect.email_only { fill: var(--mail); }
rect.none { fill: var(--none); }
tr.zero td { color: #8a949e; }
table.users td { font-size: 13px; overflow-wrap: anywhere; }
.empty { padding: 10px 14px; background: var(--soft); border-left: 4px solid var(--good); }
.more { padding: 8px 12px; background: #fff6e5; border-left: 4px solid var(--mail); }
"#;

fn fact(h: &mut String, label: &str, id: &str, value: &str, shown: &str) {
    let _ = writeln!(
        h,
        "<div class=\"fact\"><span class=\"k\">{}</span> <span class=\"v\" id=\"{id}\" data-value=\"{}\">{}</span></div>",
        esc(label),
        esc(value),
        esc(shown)
    );
}

/// The page.
pub fn render(p: &Page<'_>) -> String {
    let mut h = String::with_capacity(16 * 1024 + p.users.len().min(MAX_AT_RISK_ROWS) * 260);
    let total = p.tally.total();
    let at_risk = p.tally.at_risk();
    let left = days_left(p.today);
    let end = sms_voice_end();
    crate::html::head(
        &mut h,
        &format!("mfa-preload readiness: {}", p.tenant),
        STYLE,
    );
    h.push_str("<body>\n<main>\n<header>\n<p class=\"kicker\">mfa-preload readiness for the end of SMS and voice</p>\n");
    let _ = writeln!(h, "<h1>{}</h1>\n</header>", esc(p.tenant));

    let _ = writeln!(
        h,
        "<p class=\"deadline\">Microsoft stops delivering SMS and voice codes for MFA and SSPR on \
         <time id=\"deadline\" datetime=\"{iso}\" data-value=\"{iso}\">1 February 2027</time> \
         (Global Administrators: 1 July 2027), unless the tenant brings its own SMS provider: \
         <strong><span id=\"days-left\" data-value=\"{left}\">{shown}</span></strong>.</p>",
        iso = end.format("%Y-%m-%d"),
        shown = match left {
            l if l > 1 => format!("{l} days left"),
            1 => "1 day left".to_string(),
            0 => "today".to_string(),
            l => format!("{} days ago", -l),
        }
    );

    h.push_str("<section class=\"facts\" aria-label=\"Summary\">\n");
    fact(
        &mut h,
        "Users",
        "total",
        &total.to_string(),
        &thousands(total),
    );
    fact(
        &mut h,
        "At risk",
        "at-risk",
        &at_risk.to_string(),
        &thousands(at_risk),
    );
    fact(
        &mut h,
        "SMS sign-in on",
        "sms-sign-in",
        &p.tally
            .sms_sign_in
            .map(|n| n.to_string())
            .unwrap_or_default(),
        &p.tally
            .sms_sign_in
            .map(thousands)
            .unwrap_or_else(|| "not in the report".to_string()),
    );
    fact(
        &mut h,
        "Read from",
        "source",
        p.source.as_str(),
        match p.source {
            Source::Report => "the registration report",
            Source::PerUser => "each user's methods",
        },
    );
    h.push_str("</section>\n");

    classes(&mut h, p.tally, total);
    at_risk_rows(&mut h, p.users, at_risk);

    let _ = writeln!(
        h,
        "<footer>Generated <time datetime=\"{g}\">{g}</time> by mfa-preload readiness. Every user is in the CSV; \
         the users at risk are in the TAP file (--tap-file) for Temporary Access Pass issuance.</footer>",
        g = esc(p.generated_at)
    );
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn classes(h: &mut String, tally: &Tally, total: u64) {
    let max = tally.counts.iter().copied().max().unwrap_or(0);
    h.push_str(
        "<section>\n<h2>Users by class</h2>\n<table class=\"classes\">\n<thead><tr><th>class</th><th>what they have</th>\
         <th class=\"n\">users</th><th class=\"n\">share</th><th>bar</th></tr></thead>\n<tbody>\n",
    );
    for class in Class::ALL {
        let n = tally.count(class);
        let width = if max == 0 {
            0.0
        } else {
            n as f64 * 100.0 / max as f64
        };
        let share = tally.share(class);
        let c = class.as_str();
        let _ = writeln!(
            h,
            "<tr{zero}><td><code>{c}</code></td><td>{what}</td>\
             <td class=\"n\" data-class=\"{c}\" data-value=\"{n}\">{shown}</td><td class=\"n\">{share:.1}%</td>\
             <td class=\"bar\"><svg viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{c}: {shown}\">\
             <title>{c}: {shown}</title><rect class=\"track\" width=\"100\" height=\"10\"/>\
             <rect class=\"{c}\" data-bar=\"{c}\" width=\"{width:.3}\" height=\"10\"/></svg></td></tr>",
            zero = if n == 0 { " class=\"zero\"" } else { "" },
            what = esc(class.describe()),
            shown = thousands(n),
        );
    }
    let _ = writeln!(
        h,
        "</tbody>\n<tfoot><tr><th>total</th><th></th><th class=\"n\">{}</th><th></th><th></th></tr></tfoot>\n</table>\n</section>",
        thousands(total)
    );
}

fn at_risk_rows(h: &mut String, users: &[UserReadiness], at_risk: u64) {
    let _ = writeln!(
        h,
        "<section>\n<h2>Users at risk ({})</h2>\n<p class=\"note\">SMS / voice only, email only, or nothing: \
         each needs a method that outlasts SMS and voice. A Temporary Access Pass lets them register a passkey.</p>",
        thousands(at_risk)
    );
    let mut risky: Vec<&UserReadiness> = users.iter().filter(|u| u.class.is_at_risk()).collect();
    if risky.is_empty() {
        h.push_str("<p class=\"empty\" id=\"no-risk\">No user is at risk.</p>\n</section>\n");
        return;
    }
    // The worst first (nothing, email only, phone only), then by user.
    risky.sort_by(|a, b| {
        b.class
            .cmp(&a.class)
            .then_with(|| a.user.to_lowercase().cmp(&b.user.to_lowercase()))
    });
    h.push_str(
        "<table class=\"users\">\n<thead><tr><th>user</th><th>class</th><th>methods</th><th>default method</th>\
         <th>system-preferred</th><th>SMS sign-in</th></tr></thead>\n<tbody>\n",
    );
    for u in risky.iter().take(MAX_AT_RISK_ROWS) {
        let methods: Vec<&str> = u.methods.iter().map(Method::as_str).collect();
        let _ = writeln!(
            h,
            "<tr class=\"at-risk\" data-class=\"{c}\" data-user=\"{user}\"><td>{user}</td><td><code>{c}</code></td>\
             <td>{methods}</td><td>{default}</td><td>{system}</td><td>{sms}</td></tr>",
            c = u.class.as_str(),
            user = esc(&u.user),
            methods = esc(&methods.join(", ")),
            default = esc(u.default_method.as_deref().unwrap_or("")),
            system = esc(&u.system_preferred.join(", ")),
            sms = esc(&u.sms_sign_in.as_ref().map(sms_state_name).unwrap_or_default()),
        );
    }
    h.push_str("</tbody>\n</table>\n");
    let more = risky.len().saturating_sub(MAX_AT_RISK_ROWS);
    if more > 0 {
        let _ = writeln!(
            h,
            "<p class=\"more\" id=\"more\" data-value=\"{more}\">The first {} are listed; {} more: see the CSV.</p>",
            thousands(MAX_AT_RISK_ROWS as u64),
            thousands(more as u64)
        );
    }
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::registration::RegistrationDetails;

    fn user(name: &str, methods: &[&str]) -> UserReadiness {
        UserReadiness::from_report(&RegistrationDetails {
            id: format!("id-{name}"),
            user_principal_name: Some(name.to_string()),
            methods_registered: methods.iter().map(|m| m.to_string()).collect(),
            ..RegistrationDetails::default()
        })
    }

    fn page(users: &[UserReadiness]) -> String {
        let tally = Tally::of(users, false);
        render(&Page {
            users,
            tally: &tally,
            source: Source::Report,
            today: NaiveDate::from_ymd_opt(2026, 11, 3).expect("date"),
            generated_at: "2026-11-03T10:00:00Z",
            tenant: "contoso <test>",
        })
    }

    #[test]
    fn counts_bars_and_the_deadline() {
        let mut users = Vec::new();
        for i in 0..30 {
            users.push(user(&format!("p{i}@contoso.com"), &["mobilePhone"]));
        }
        for i in 0..10 {
            users.push(user(&format!("k{i}@contoso.com"), &["fido2"]));
        }
        users.push(user("<b>x</b>@contoso.com", &[]));
        let html = page(&users);
        assert!(html.contains("data-class=\"phone_only\" data-value=\"30\""));
        assert!(html.contains("data-class=\"phishing_resistant\" data-value=\"10\""));
        assert!(html.contains("data-class=\"none\" data-value=\"1\""));
        assert!(html.contains("data-bar=\"phone_only\" width=\"100.000\""));
        assert!(html.contains("data-bar=\"phishing_resistant\" width=\"33.333\""));
        assert!(html.contains("id=\"deadline\" datetime=\"2027-02-01\" data-value=\"2027-02-01\""));
        assert!(html.contains("id=\"days-left\" data-value=\"90\">90 days left"));
        assert!(html.contains("id=\"at-risk\" data-value=\"31\""));
        assert!(html.contains("id=\"sms-sign-in\" data-value=\"\""));
        assert_eq!(html.matches("<tr class=\"at-risk\"").count(), 31);
        // Self-contained and inert.
        assert!(!html.contains("<script") && !html.contains("<b>x"));
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;@contoso.com"));
        assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("<link"));
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn nobody_at_risk() {
        let html = page(&[user("a@contoso.com", &["windowsHelloForBusiness"])]);
        assert!(html.contains("id=\"no-risk\""));
    }
}
