//! A small SVG line chart of bytes per update against average chunk size,
//! one line per zstd level, fixed-size chunking as dashed reference lines.
//! Written by hand: a few dozen lines of SVG do not justify a plotting
//! crate (and its font stack) in the build.

use std::fmt::Write;

use super::TuneRow;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// Renders the chart; `title` goes on top (e.g. the folders compared).
pub fn chart(rows: &[TuneRow], title: &str) -> String {
    let cdc: Vec<&TuneRow> = rows.iter().filter(|r| !r.fixed).collect();
    let xs: Vec<f64> = cdc.iter().map(|r| f64::from(r.avg_chunk).log2()).collect();
    let (x0, x1) = bounds(&xs, 1.0);
    let ys: Vec<f64> = rows.iter().map(|r| r.total_update_bytes as f64).collect();
    let (_, ymax) = bounds(&ys, 0.0);
    let ymax = nice_ceiling(ymax.max(1.0));
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / ymax * (H - TOP - BOTTOM);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Axes, ticks and labels.
    let (bx, by) = (LEFT, H - BOTTOM);
    let _ = writeln!(
        s,
        r#"<path d="M{bx} {TOP} V{by} H{}" stroke="black" fill="none"/>"#,
        W - RIGHT
    );
    for &x in &xs {
        let label = format!("{} KiB", (2f64.powf(x) / 1024.0).round());
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            px(x),
            by + 18.0
        );
    }
    for i in 0..=4 {
        let y = ymax * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{bx}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            py(y),
            py(y),
            bx - 6.0,
            py(y) + 4.0,
            bytes_label(y)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">average chunk size</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" transform="rotate(-90 18 {})" text-anchor="middle">bytes downloaded, all updates</text>"#,
        H / 2.0,
        H / 2.0
    );

    let mut levels: Vec<i32> = rows.iter().map(|r| r.zstd_level).collect();
    levels.sort_unstable();
    levels.dedup();
    for (i, level) in levels.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut pts: Vec<(f64, f64)> = cdc
            .iter()
            .filter(|r| r.zstd_level == *level)
            .map(|r| {
                (
                    px(f64::from(r.avg_chunk).log2()),
                    py(r.total_update_bytes as f64),
                )
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (x, y) in &pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
            );
        }
        let ly = TOP + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{ly}" fill="{colour}">CDC, zstd -{level}</text>"#,
            W - RIGHT + 10.0
        );
        for r in rows.iter().filter(|r| r.fixed && r.zstd_level == *level) {
            let y = py(r.total_update_bytes as f64);
            let _ = writeln!(
                s,
                r#"<line x1="{bx}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{colour}" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" fill="{colour}">{}, -{level}</text>"#,
                W - RIGHT,
                W - RIGHT + 10.0,
                y + 4.0,
                escape(&r.method)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn bounds(v: &[f64], pad: f64) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < f64::EPSILON {
        return (lo - pad.max(1.0), hi + pad.max(1.0));
    }
    (lo - pad * 0.25, hi + pad * 0.25)
}

/// 1, 2 or 5 times a power of ten, at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn bytes_label(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1} GB", v / 1e9),
        v if v >= 1e6 => format!("{:.1} MB", v / 1e6),
        v if v >= 1e3 => format!("{:.0} kB", v / 1e3),
        v => format!("{v:.0} B"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
