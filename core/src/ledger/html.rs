//! A job's HTML report (`reports/<key>.report.html`): one self-contained file, readable and
//! printable without anything else (inline `<style>`, inline SVG bars, no script, no external
//! URL).
//!
//! It shows the job's status and timing, the counts by outcome and by reason (each with a bar),
//! and the rows that need action with what to do about each reason (the README's DLQ table,
//! [`Reason::what_to_do`]), the first [`MAX_ACTION_ROWS`] of them.
//!
//! Hooks for machines (tests, scrapers), stable across versions: `id="status"`, `id="done"`,
//! `id="expected"`, `id="rows-read"`, `id="needing-action"`, `id="elapsed"` (seconds),
//! `id="throughput"` (rows per second), each with the plain value in `data-value` (empty when not
//! known); every count cell has `data-outcome="<code>"` or `data-reason="<code>"` and
//! `data-value="<n>"`; every row that needs action is `<tr class="action" data-row="<n>">`
//! (`data-row=""` for a message without a row); `id="more"` carries in `data-value` how many rows
//! needing action are left out.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset};

use super::{JobSummary, RowRecord, FAILED, REJECTED};
use crate::html::{esc, thousands};
use crate::reason::{Outcome, Reason};

/// Rows that need action listed in the report; the rest are in the results CSV.
pub const MAX_ACTION_ROWS: usize = 5_000;

/// The report of a job: its summary and its rows (as the ledger gives them: in row order, rows
/// without a number last). `generated_at` (RFC 3339) is printed as is.
pub fn render(summary: &JobSummary, rows: &[RowRecord], generated_at: &str) -> String {
    let mut h = String::with_capacity(16 * 1024 + rows.len().min(MAX_ACTION_ROWS) * 300);
    let label = if summary.label.is_empty() {
        summary.job.as_str()
    } else {
        summary.label.as_str()
    };
    let status = summary.status().as_str();

    crate::html::head(&mut h, &format!("mfa-preload report: {label}"), STYLE);
    h.push_str("<body>\n<main>\n");

    // Title and status.
    let _ = writeln!(
        h,
        "<header>\n<p class=\"kicker\">mfa-preload job report</p>\n<h1>{}</h1>",
        esc(label)
    );
    if summary.job.as_str() != label {
        let _ = writeln!(
            h,
            "<p class=\"job\">Job <code>{}</code></p>",
            esc(summary.job.as_str())
        );
    }
    h.push_str("</header>\n");

    h.push_str("<section class=\"facts\" aria-label=\"Status\">\n");
    let _ = writeln!(
        h,
        "<div class=\"fact\"><span class=\"k\">Status</span> \
         <span id=\"status\" class=\"v status {status}\" data-value=\"{status}\">{status}</span></div>"
    );
    let _ = writeln!(
        h,
        "<div class=\"fact\"><span class=\"k\">Done / expected</span> <span class=\"v\">{} / {}</span></div>",
        number("done", Some(summary.done)),
        number("expected", summary.expected),
    );
    let _ = writeln!(
        h,
        "<div class=\"fact\"><span class=\"k\">Rows read</span> <span class=\"v\">{}</span></div>",
        number("rows-read", summary.rows_read)
    );
    let _ = writeln!(
        h,
        "<div class=\"fact\"><span class=\"k\">Need action</span> <span class=\"v\">{}</span></div>",
        number("needing-action", Some(summary.needing_action()))
    );
    if let Some(e) = summary.expected {
        if e > 0 {
            let pct = (summary.done as f64 / e as f64 * 100.0).min(100.0);
            let _ = writeln!(
                h,
                "<div class=\"progress\" role=\"img\" aria-label=\"{pct:.0}% done\">\
                 <svg viewBox=\"0 0 100 4\" preserveAspectRatio=\"none\" width=\"100%\" height=\"8\">\
                 <rect class=\"track\" width=\"100\" height=\"4\"/>\
                 <rect class=\"done\" width=\"{pct:.2}\" height=\"4\"/></svg></div>"
            );
        }
    }
    h.push_str("</section>\n");

    // Timing.
    timing(&mut h, summary);

    // Counts by outcome.
    let outcomes = outcome_counts(summary);
    let total: u64 = outcomes.iter().map(|(_, n)| n).sum();
    h.push_str("<section>\n<h2>Outcomes</h2>\n");
    count_table(&mut h, "outcome", &outcomes, total, |_| None);
    h.push_str("</section>\n");

    // Counts by reason.
    let mut reasons: Vec<(String, u64)> = summary
        .by_reason
        .iter()
        .map(|(r, n)| (r.clone(), *n))
        .collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let reason_total: u64 = reasons.iter().map(|(_, n)| n).sum();
    h.push_str("<section>\n<h2>Reasons (rejected and failed rows)</h2>\n");
    if reasons.is_empty() {
        h.push_str("<p class=\"empty\">No row was rejected or failed.</p>\n");
    } else {
        count_table(&mut h, "reason", &reasons, reason_total, |code| {
            Some(what_to_do(code))
        });
    }
    h.push_str("</section>\n");

    // Rows that need action.
    action_rows(&mut h, rows);

    let _ = writeln!(
        h,
        "<footer>Generated {} by mfa-preload. Every row's outcome is in the job's results CSV.</footer>",
        time_tag(Some(generated_at))
    );
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

/// The page's palette and its own rules, after [`crate::html::head`]'s shared ones.
const STYLE: &str = r#"
:root { color-scheme: light; --fg: #1b1f24; --muted: #5b6570; --line: #d8dde3; --bg: #ffffff;
  --soft: #f4f6f8; --ok: #1f7a3f; --warn: #b35c00; --bad: #b3261e; --info: #2f5fa8; --grey: #8a949e; }
.job { margin: 4px 0 0; color: var(--muted); overflow-wrap: anywhere; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
.status { padding: 1px 10px; border-radius: 10px; font-size: 15px; color: #fff; background: var(--warn); }
.status.complete { background: var(--ok); }
.progress { flex-basis: 100%; }
.progress svg { display: block; }
.progress .track { fill: var(--soft); }
.progress .done { fill: var(--ok); }
dl.timing { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 0; }
dl.timing dt { color: var(--muted); }
dl.timing dd { margin: 0; font-variant-numeric: tabular-nums; }
td.bar rect { fill: var(--info); }
td.bar rect.created, td.bar rect.updated { fill: var(--ok); }
td.bar rect.deleted { fill: var(--info); }
td.bar rect.unchanged, td.bar rect.skipped_exists { fill: var(--grey); }
td.bar rect.rejected { fill: var(--bad); }
td.bar rect.failed { fill: var(--warn); }
tr.zero td { color: var(--grey); }
table.actions td { font-size: 13px; }
table.actions td.detail { overflow-wrap: anywhere; }
table.actions td.user { min-width: 15em; overflow-wrap: anywhere; }
table.actions td.todo { color: var(--muted); }
.outcome-rejected { color: var(--bad); font-weight: 600; }
.outcome-failed { color: var(--warn); font-weight: 600; }
.empty { padding: 10px 14px; background: var(--soft); border-left: 4px solid var(--ok); }
.more { padding: 8px 12px; background: #fff6e5; border-left: 4px solid var(--warn); }
@media print { body { font-size: 11pt; } h2 { break-after: avoid; } }
"#;

/// `<span id=ID data-value=N>1,234</span>`, or "not known yet" with an empty value.
fn number(id: &str, n: Option<u64>) -> String {
    match n {
        Some(n) => format!(
            "<span id=\"{id}\" data-value=\"{n}\">{}</span>",
            thousands(n)
        ),
        None => format!("<span id=\"{id}\" class=\"unknown\" data-value=\"\">not known yet</span>"),
    }
}

fn timing(h: &mut String, s: &JobSummary) {
    let started = s.started_at.as_deref().and_then(parse_time);
    let end_text = s.completed_at.as_deref().or(s.updated_at.as_deref());
    let end = end_text.and_then(parse_time);
    let elapsed = match (started, end) {
        (Some(a), Some(b)) if b >= a => Some((b - a).num_milliseconds() as f64 / 1000.0),
        _ => None,
    };
    let throughput = elapsed.filter(|e| *e > 0.0).map(|e| s.done as f64 / e);

    h.push_str("<section>\n<h2>Timing</h2>\n<dl class=\"timing\">\n");
    let _ = writeln!(
        h,
        "<dt>Started</dt><dd>{}</dd>",
        time_tag(s.started_at.as_deref())
    );
    let _ = writeln!(
        h,
        "<dt>Updated</dt><dd>{}</dd>",
        time_tag(s.updated_at.as_deref())
    );
    let _ = writeln!(
        h,
        "<dt>Completed</dt><dd>{}</dd>",
        match s.completed_at.as_deref() {
            Some(_) => time_tag(s.completed_at.as_deref()),
            None => "not yet".to_string(),
        }
    );
    let elapsed_text = match elapsed {
        Some(e) => {
            let until = if s.completed_at.is_some() {
                "to completion"
            } else {
                "to the last record"
            };
            format!("{} ({until})", duration(e))
        }
        None => "not known".to_string(),
    };
    let _ = writeln!(
        h,
        "<dt>Elapsed</dt><dd><span id=\"elapsed\" data-value=\"{}\">{}</span></dd>",
        elapsed.map(|e| format!("{e:.3}")).unwrap_or_default(),
        esc(&elapsed_text)
    );
    let _ = writeln!(
        h,
        "<dt>Throughput</dt><dd><span id=\"throughput\" data-value=\"{}\">{}</span></dd>",
        throughput.map(|t| format!("{t:.2}")).unwrap_or_default(),
        match throughput {
            Some(t) => format!("{} rows/s", decimal(t)),
            None => "not known".to_string(),
        }
    );
    h.push_str("</dl>\n</section>\n");
}

fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

/// `<time datetime=..>` for a parsable timestamp, the text as is otherwise, "not known" if none.
fn time_tag(s: Option<&str>) -> String {
    match s {
        None => "not known".to_string(),
        Some(s) => match parse_time(s) {
            Some(t) => format!(
                "<time datetime=\"{}\">{}</time>",
                esc(s),
                esc(&t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
            ),
            None => esc(s),
        },
    }
}

/// `4.2 s`, `3 min 05 s`, `2 h 03 min 04 s`.
fn duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let t = secs.round() as u64;
    let (hh, mm, ss) = (t / 3600, t / 60 % 60, t % 60);
    if hh > 0 {
        format!("{hh} h {mm:02} min {ss:02} s")
    } else {
        format!("{mm} min {ss:02} s")
    }
}

/// Every known outcome (zeros too, so an absent `failed` reads as 0), then any other recorded.
fn outcome_counts(s: &JobSummary) -> Vec<(String, u64)> {
    let mut known: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    known.extend([REJECTED, FAILED]);
    let mut v: Vec<(String, u64)> = known
        .iter()
        .map(|o| (o.to_string(), s.by_outcome.get(*o).copied().unwrap_or(0)))
        .collect();
    for (o, n) in &s.by_outcome {
        if !known.contains(&o.as_str()) {
            v.push((o.clone(), *n));
        }
    }
    v
}

/// Bar length (percent of the bar cell) of `n` when the largest count is `max`.
fn bar_width(n: u64, max: u64) -> f64 {
    if max == 0 {
        0.0
    } else {
        n as f64 / max as f64 * 100.0
    }
}

fn count_table(
    h: &mut String,
    kind: &str,
    counts: &[(String, u64)],
    total: u64,
    todo: impl Fn(&str) -> Option<&'static str>,
) {
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let with_todo = counts.iter().any(|(c, _)| todo(c).is_some());
    let _ = write!(
        h,
        "<table class=\"counts {kind}s\">\n<thead><tr><th>{kind}</th><th class=\"n\">rows</th>\
         <th class=\"n\">share</th><th>bar</th>"
    );
    if with_todo {
        h.push_str("<th>what to do</th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for (code, n) in counts {
        let code_e = esc(code);
        let w = bar_width(*n, max);
        let share = if total == 0 {
            0.0
        } else {
            *n as f64 / total as f64 * 100.0
        };
        let _ = write!(
            h,
            "<tr{zero}><td><code>{code_e}</code></td>\
             <td class=\"n\" data-{kind}=\"{code_e}\" data-value=\"{n}\">{count}</td>\
             <td class=\"n\">{share:.1}%</td>\
             <td class=\"bar\"><svg viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" role=\"img\" \
             aria-label=\"{code_e}: {count}\"><title>{code_e}: {count}</title>\
             <rect class=\"track\" width=\"100\" height=\"10\"/>\
             <rect class=\"{cls}\" data-bar=\"{code_e}\" width=\"{w:.3}\" height=\"10\"/></svg></td>",
            zero = if *n == 0 { " class=\"zero\"" } else { "" },
            count = thousands(*n),
            cls = css_class(code),
        );
        if with_todo {
            let _ = write!(
                h,
                "<td class=\"todo\">{}</td>",
                esc(todo(code).unwrap_or(""))
            );
        }
        h.push_str("</tr>\n");
    }
    let _ = writeln!(
        h,
        "</tbody>\n<tfoot><tr><th>total</th><th class=\"n\">{}</th><th></th><th></th>{}</tr></tfoot>\n</table>",
        thousands(total),
        if with_todo { "<th></th>" } else { "" }
    );
}

/// A code as a CSS class: letters, digits and `_` only.
fn css_class(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn what_to_do(reason: &str) -> &'static str {
    Reason::parse(reason).map(Reason::what_to_do).unwrap_or("")
}

fn action_rows(h: &mut String, rows: &[RowRecord]) {
    let mut need: Vec<&RowRecord> = rows.iter().filter(|r| r.needs_action()).collect();
    // Row order (the ledger's already; kept if the caller's is not): numbered rows first.
    need.sort_by(|a, b| match (a.row, b.row) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.user.to_lowercase().cmp(&b.user.to_lowercase()),
    });
    let _ = writeln!(
        h,
        "<section>\n<h2>Rows that need action ({})</h2>",
        thousands(need.len() as u64)
    );
    if need.is_empty() {
        h.push_str("<p class=\"empty\" id=\"no-action\">No row needs action.</p>\n</section>\n");
        return;
    }
    h.push_str(
        "<table class=\"actions\">\n<thead><tr><th class=\"n\">row</th><th>user</th><th>outcome</th>\
         <th>reason</th><th>detail</th><th>what to do</th></tr></thead>\n<tbody>\n",
    );
    for r in need.iter().take(MAX_ACTION_ROWS) {
        let row = r.row.map(|n| n.to_string()).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr class=\"action\" data-row=\"{row}\"><td class=\"n\">{row_text}</td>\
             <td class=\"user\">{user}</td><td class=\"outcome-{cls}\">{outcome}</td>\
             <td><code>{reason}</code></td><td class=\"detail\">{detail}</td>\
             <td class=\"todo\">{todo}</td></tr>",
            row_text = if row.is_empty() {
                "—".to_string()
            } else {
                thousands(r.row.unwrap_or(0))
            },
            user = esc(&r.user),
            cls = css_class(&r.outcome),
            outcome = esc(&r.outcome),
            reason = esc(&r.reason),
            detail = esc(&r.detail),
            todo = esc(what_to_do(&r.reason)),
        );
    }
    h.push_str("</tbody>\n</table>\n");
    let more = need.len().saturating_sub(MAX_ACTION_ROWS);
    if more > 0 {
        let _ = writeln!(
            h,
            "<p class=\"more\" id=\"more\" data-value=\"{more}\">The first {} are listed; {} more {} \
             need action: see the job's results CSV.</p>",
            thousands(MAX_ACTION_ROWS as u64),
            thousands(more as u64),
            if more == 1 { "row" } else { "rows" }
        );
    }
    h.push_str("</section>\n");
}

/// `1234.5` -> `1,234.5` (one decimal).
fn decimal(x: f64) -> String {
    let s = format!("{x:.1}");
    let (int, frac) = s.split_once('.').unwrap_or((&s, "0"));
    match int.parse::<u64>() {
        Ok(i) => format!("{}.{frac}", thousands(i)),
        Err(_) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{JobKey, Stage};
    use std::collections::BTreeMap;

    fn rec(n: u64, outcome: &str, reason: &str, detail: &str) -> RowRecord {
        RowRecord {
            row: Some(n),
            user: format!("u{n}@contoso.com"),
            outcome: outcome.into(),
            reason: reason.into(),
            detail: detail.into(),
            at: "2026-12-03T10:00:00Z".into(),
            deliveries: 1,
            stage: Stage::Worker,
        }
    }

    fn summary_of(rows: &[RowRecord]) -> JobSummary {
        let mut by_outcome = BTreeMap::new();
        let mut by_reason = BTreeMap::new();
        for r in rows {
            *by_outcome.entry(r.outcome.clone()).or_insert(0) += 1;
            if !r.reason.is_empty() {
                *by_reason.entry(r.reason.clone()).or_insert(0) += 1;
            }
        }
        JobSummary {
            job: JobKey("s3://bucket/users.csv@r1".into()),
            label: "s3://bucket/users.csv".into(),
            expected: Some(rows.len() as u64),
            rows_read: Some(rows.len() as u64),
            done: rows.len() as u64,
            by_outcome,
            by_reason,
            started_at: Some("2026-12-03T10:00:00Z".into()),
            updated_at: Some("2026-12-03T10:01:30Z".into()),
            completed_at: Some("2026-12-03T10:01:40Z".into()),
            report: None,
        }
    }

    /// `attr="value"` values following each occurrence of `marker`.
    fn attrs_after(html: &str, marker: &str, attr: &str) -> Vec<String> {
        html.match_indices(marker)
            .map(|(i, _)| {
                let rest = &html[i..];
                let a = format!("{attr}=\"");
                let s = rest.find(&a).expect("attribute") + a.len();
                rest[s..s + rest[s..].find('"').expect("closing quote")].to_string()
            })
            .collect()
    }

    #[test]
    fn every_text_is_escaped() {
        let mut rows = vec![rec(
            2,
            REJECTED,
            "graph_rejected",
            "<script>alert(1)</script> & \"q\" 'a'",
        )];
        rows[0].user = "<b>x</b>&@contoso.com".into();
        let mut s = summary_of(&rows);
        s.label = "<img src=x onerror=alert(1)>".into();
        s.by_reason.insert("\"><script>x</script>".into(), 1);
        let html = render(&s, &rows, "<now>");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot; &#39;a&#39;")
        );
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;&amp;@contoso.com"));
        assert!(html.contains("data-reason=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(html.contains("&lt;now&gt;"));
        // Self-contained: no script, no URL to fetch.
        assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("//cdn"));
        assert!(!html.contains("<link") && !html.contains("url("));
    }

    #[test]
    fn without_rejects_it_says_no_row_needs_action() {
        let rows: Vec<RowRecord> = (2..50).map(|n| rec(n, "created", "", "")).collect();
        let html = render(&summary_of(&rows), &rows, "2026-12-03T10:02:00Z");
        assert!(html.contains("No row needs action"));
        assert!(!html.contains("class=\"action\""));
        assert!(html.contains("id=\"needing-action\" data-value=\"0\""));
        assert!(html.contains("data-outcome=\"failed\" data-value=\"0\""));
        assert!(html.contains("data-outcome=\"created\" data-value=\"48\""));
        assert!(html.contains("id=\"status\" class=\"v status complete\" data-value=\"complete\""));
    }

    #[test]
    fn bars_are_proportional_to_the_counts() {
        let mut rows = Vec::new();
        let mut n = 1;
        for (outcome, reason, k) in [
            ("created", "", 300),
            ("updated", "", 100),
            (REJECTED, "invalid_email", 50),
            (FAILED, "retries_exhausted", 25),
        ] {
            for _ in 0..k {
                n += 1;
                rows.push(rec(n, outcome, reason, ""));
            }
        }
        let html = render(&summary_of(&rows), &rows, "t");
        let codes = attrs_after(&html, "data-outcome=", "data-outcome");
        let values = attrs_after(&html, "data-outcome=", "data-value");
        assert_eq!(codes.len(), 7);
        for (c, v) in codes.iter().zip(&values) {
            let w = attrs_after(&html, &format!("data-bar=\"{c}\""), "width");
            assert_eq!(w.len(), 1, "{c}");
            let v: f64 = v.parse().unwrap();
            let w: f64 = w[0].parse().unwrap();
            // The largest count is the full bar; each other its share of it.
            assert!((w - v / 300.0 * 100.0).abs() < 0.01, "{c}: {v} -> {w}");
        }
        assert_eq!(
            attrs_after(&html, "data-bar=\"updated\"", "width"),
            vec!["33.333"]
        );
        let reason_widths = attrs_after(&html, "data-bar=\"retries_exhausted\"", "width");
        assert_eq!(reason_widths, vec!["50.000"]);
        // Labelled with the count.
        assert!(html.contains("<title>created: 300</title>"));
    }

    #[test]
    fn at_most_5000_rows_are_listed_and_the_rest_counted() {
        let rows: Vec<RowRecord> = (2..6_125)
            .map(|n| {
                if n % 1000 == 0 {
                    rec(n, "created", "", "")
                } else {
                    rec(n, REJECTED, "invalid_phone_number", "bad")
                }
            })
            .collect();
        let need = rows.iter().filter(|r| r.needs_action()).count();
        assert_eq!(need, 6_117);
        let html = render(&summary_of(&rows), &rows, "t");
        assert_eq!(
            html.matches("<tr class=\"action\"").count(),
            MAX_ACTION_ROWS
        );
        assert!(html.contains("id=\"more\" data-value=\"1117\""));
        assert!(html.contains("1,117 more rows"));
        // In row order, the first ones.
        let listed = attrs_after(&html, "<tr class=\"action\"", "data-row");
        assert_eq!(listed[0], "2");
        assert_eq!(listed[1], "3");
        assert!(listed
            .windows(2)
            .all(|w| w[0].parse::<u64>().unwrap() < w[1].parse().unwrap()));
        assert!(html.contains("fix the cell or set DefaultCountry; re-upload"));
    }

    #[test]
    fn timing_and_throughput_come_from_the_timestamps() {
        let rows: Vec<RowRecord> = (2..1002).map(|n| rec(n, "created", "", "")).collect();
        let s = summary_of(&rows);
        let html = render(&s, &rows, "t");
        // 1,000 rows in 100 s.
        assert!(
            html.contains("id=\"elapsed\" data-value=\"100.000\""),
            "{html}"
        );
        assert!(html.contains("id=\"throughput\" data-value=\"10.00\">10.0 rows/s"));
        assert!(html.contains("1 min 40 s (to completion)"));
        // A running job with missing timestamps: nothing made up.
        let running = JobSummary {
            expected: None,
            rows_read: None,
            started_at: None,
            completed_at: None,
            updated_at: Some("garbage".into()),
            ..s
        };
        let html = render(&running, &rows, "t");
        assert!(html.contains("id=\"status\" class=\"v status running\" data-value=\"running\""));
        assert!(html.contains("id=\"expected\" class=\"unknown\" data-value=\"\""));
        assert!(html.contains("id=\"rows-read\" class=\"unknown\" data-value=\"\""));
        assert!(html.contains("id=\"throughput\" data-value=\"\">not known"));
        assert!(html.contains("id=\"elapsed\" data-value=\"\">not known"));
        assert!(html.contains("<dt>Completed</dt><dd>not yet</dd>"));
    }

    #[test]
    fn numbers_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(decimal(12_345.67), "12,345.7");
        assert_eq!(duration(4.24), "4.2 s");
        assert_eq!(duration(3_725.0), "1 h 02 min 05 s");
    }
}
