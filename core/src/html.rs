//! What the product's self-contained HTML pages (the job report, the readiness page) share:
//! the head with the common style, the escape, the thousands separator.

/// Text (or an attribute value in double or single quotes) made inert.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `1234567` -> `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut o = String::with_capacity(d.len() + d.len() / 3);
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// The rules every page shares (layout, type, the facts, tables and bars, the footer, print);
/// each page adds its palette (`:root`: `--fg`, `--muted`, `--line`, `--soft`, ...) and its own.
const BASE_STYLE: &str = r#"* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; background: #fff; color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 40px; }
header { border-bottom: 3px solid var(--fg); margin-bottom: 18px; padding-bottom: 10px; }
.kicker { margin: 0; color: var(--muted); text-transform: uppercase; letter-spacing: .08em; font-size: 12px; }
h1 { margin: 2px 0 0; font-size: 26px; overflow-wrap: anywhere; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.facts { display: flex; flex-wrap: wrap; gap: 10px 28px; align-items: baseline; }
.fact .k { color: var(--muted); font-size: 13px; display: block; }
.fact .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-size: 13px; color: var(--muted); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.bar { width: 38%; }
td.bar svg { display: block; width: 100%; height: 16px; }
td.bar rect.track { fill: var(--soft); }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
@media print { main { max-width: none; padding: 0; } tr { break-inside: avoid; } thead { display: table-header-group; } }
"#;

/// `<!DOCTYPE html>` to `</head>`: the title (escaped), the shared style, then `page_style`.
pub(crate) fn head(h: &mut String, title: &str, page_style: &str) {
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>");
    h.push_str(&esc(title));
    h.push_str("</title>\n<style>\n");
    h.push_str(BASE_STYLE);
    h.push_str(page_style.trim_start_matches('\n'));
    h.push_str("</style>\n</head>\n");
}
