//! `GET /ui`: a read-only status page, rendered on the server as plain HTML
//! (no scripts, no build step). Every value from the store goes through
//! [`esc`]; the page's Content-Security-Policy forbids scripts anyway.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use ferry_protocol::report::{Outcome, StatusRow};
use ferry_protocol::signed::KIND_CHANNEL;
use ferry_protocol::{unix_now, ChannelRecord, Envelope};
use ferry_store::StoreStats;
use http::{header, Response};

use crate::api::blocking;
use crate::body::{full, RespBody};
use crate::error::ApiError;
use crate::serve::ServerState;

/// Apps shown at most (the page stays small on a huge server).
const MAX_APPS: usize = 200;

struct AppView {
    name: String,
    versions: usize,
    channels: Vec<(String, Option<ChannelRecord>)>,
    rows: Vec<StatusRow>,
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC` from unix seconds (proleptic Gregorian).
pub fn utc(ts: u64) -> String {
    let days = (ts / 86_400) as i64;
    let secs = ts % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn decode_record(bytes: &[u8]) -> Option<ChannelRecord> {
    let env = Envelope::decode(bytes, usize::MAX).ok()?;
    (env.kind == KIND_CHANNEL)
        .then(|| ChannelRecord::decode(&env.body).ok())
        .flatten()
}

/// The rollout in force, in words.
fn rollout_state(r: &ChannelRecord, now: u64) -> String {
    let p = &r.policy;
    let mut parts = Vec::new();
    if p.paused {
        parts.push("paused".to_string());
    }
    let bp = p.basis_points_at(now);
    parts.push(format!("{}% of clients", f64::from(bp) / 100.0));
    if let Some(next) = p.next_ramp_step(now) {
        parts.push(format!("next step {}", utc(next)));
    }
    if let Some(t) = p.activate_at.filter(|t| *t > now) {
        parts.push(format!("activates {}", utc(t)));
    }
    if !p.groups.is_empty() {
        parts.push(format!("{} groups scheduled", p.groups.len()));
    }
    if let Some(prev) = &p.previous {
        parts.push(format!("others on {}", prev.version));
    }
    if let Some(m) = &p.min_version {
        parts.push(format!("minimum {m}"));
    }
    if p.revert {
        parts.push("revert".into());
    }
    if let Some(t) = r.expires_at {
        parts.push(format!("expires {}", utc(t)));
    }
    parts.join(", ")
}

pub async fn page(st: Arc<ServerState>) -> Result<Response<RespBody>, ApiError> {
    let (apps, total, stats) = blocking(&st, |s| {
        let names = s.list_apps()?;
        let total = names.len();
        let mut apps = Vec::new();
        for name in names.into_iter().take(MAX_APPS) {
            let channels = s
                .channels_of(&name)?
                .into_iter()
                .map(|(c, bytes)| (c, decode_record(&bytes)))
                .collect();
            apps.push(AppView {
                versions: s.list_versions(&name)?.len(),
                rows: s.report_counts(&name)?,
                channels,
                name,
            });
        }
        Ok((apps, total, s.stats().ok()))
    })
    .await?;
    let html = render(&st, &apps, total, stats, unix_now());
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header("referrer-policy", "no-referrer")
        .body(full(html))
        .map_err(ApiError::internal)
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f3f3f3}td.n{text-align:right}.bad{color:#b00;font-weight:bold}\
.muted{color:#777}h2{margin-top:1.5em;border-bottom:1px solid #ddd}";

fn render(
    st: &ServerState,
    apps: &[AppView],
    total: usize,
    stats: Option<StoreStats>,
    now: u64,
) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Ferry status</title><style>{STYLE}</style></head><body>\
         <h1>Ferry status</h1><p>"
    );
    match stats {
        Some(s) => {
            let _ = write!(h, "Store: {} chunks, {}. ", s.chunks, esc(&human(s.bytes)));
        }
        None => h.push_str("Store: size unavailable. "),
    }
    let started = st
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = write!(
        h,
        "Server up since {}. {} apps. Page rendered {}.",
        esc(&utc(started)),
        total,
        esc(&utc(now))
    );
    if let Some(up) = &st.config.mirror_of {
        let _ = write!(h, " Mirror of <code>{}</code>.", esc(up));
    }
    h.push_str("</p>");
    if total > apps.len() {
        let _ = write!(
            h,
            "<p class=\"muted\">Showing the first {} apps.</p>",
            apps.len()
        );
    }
    if apps.is_empty() {
        h.push_str("<p class=\"muted\">No app has been published yet.</p>");
    }
    for app in apps {
        render_app(&mut h, app, now);
    }
    h.push_str("</body></html>\n");
    h
}

fn render_app(h: &mut String, app: &AppView, now: u64) {
    let _ = write!(
        h,
        "<h2>{}</h2><p>{} published versions.</p>",
        esc(&app.name),
        app.versions
    );
    h.push_str(
        "<table><tr><th>channel</th><th>version</th><th>sequence</th>\
         <th>rollout</th><th>issued</th></tr>",
    );
    for (name, rec) in &app.channels {
        match rec {
            Some(r) => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                    esc(name),
                    esc(&r.version),
                    r.sequence,
                    esc(&rollout_state(r, now)),
                    esc(&utc(r.issued_at))
                );
            }
            None => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td colspan=\"4\" class=\"bad\">unreadable record</td></tr>",
                    esc(name)
                );
            }
        }
    }
    h.push_str("</table>");
    if app.rows.is_empty() {
        h.push_str("<p class=\"muted\">No client reports yet.</p>");
        return;
    }
    // (channel, version) -> clients per outcome, last report.
    let mut field: BTreeMap<(&str, &str), ([u64; 4], u64)> = BTreeMap::new();
    for r in &app.rows {
        let e = field
            .entry((r.channel.as_str(), r.version.as_str()))
            .or_default();
        let i = match r.outcome {
            Outcome::Ok => 0,
            Outcome::Staged => 1,
            Outcome::Failed => 2,
            Outcome::Reverted => 3,
        };
        e.0[i] += r.clients;
        e.1 = e.1.max(r.last_report_at);
    }
    h.push_str(
        "<table><tr><th>channel</th><th>version in the field</th><th>clients</th>\
         <th>ok</th><th>staged</th><th>failed</th><th>reverted</th><th>last report</th></tr>",
    );
    for ((channel, version), (c, last)) in &field {
        let total: u64 = c.iter().sum();
        let bad = |n: u64| {
            if n > 0 {
                format!("<td class=\"n bad\">{n}</td>")
            } else {
                "<td class=\"n\">0</td>".to_string()
            }
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{total}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td>{}{}<td>{}</td></tr>",
            esc(channel),
            esc(version),
            c[0],
            c[1],
            bad(c[2]),
            bad(c[3]),
            esc(&utc(*last))
        );
    }
    h.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }
}
