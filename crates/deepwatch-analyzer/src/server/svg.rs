//! Charts of the incident pages, drawn on the server as inline SVG (no script, nothing fetched,
//! so a page works offline and in any mail client that shows HTML): one series over time with
//! its band, the anomaly from its onset shaded, the onset and the alert marked, points beyond
//! the band dotted, and time labelled relative to the alert.

use crate::rca::chart::Chart;
use std::fmt::Write as _;

/// Colours shared with the page's legend.
pub const LINE: &str = "#1f5fbf";
pub const BAND: &str = "#cfe0f7";
pub const ANOMALY: &str = "#fde2e1";
pub const ONSET: &str = "#c62828";
pub const OUTSIDE: &str = "#d32f2f";

/// Pixel size of a chart.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub width: f64,
    pub height: f64,
}

pub const LARGE: Size = Size { width: 760.0, height: 230.0 };
pub const SMALL: Size = Size { width: 370.0, height: 150.0 };

const LEFT: f64 = 58.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 24.0;

/// Text safe inside HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// A value with a short SI suffix: `0.0123`, `4.2`, `850`, `12.5k`, `3.1G`.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if scaled.abs() >= 100.0 || scaled == 0.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else if scaled.abs() >= 0.1 {
        2
    } else {
        4
    };
    format!("{scaled:.digits$}{suffix}")
}

/// Seconds relative to the alert: `-2m`, `-30s`, `0`, `+15s`.
pub fn relative(secs: f64) -> String {
    let r = secs.round();
    if r == 0.0 {
        return "0".into();
    }
    let sign = if r < 0.0 { "−" } else { "+" };
    let a = r.abs();
    if a >= 120.0 && (a % 60.0) == 0.0 {
        format!("{sign}{}m", a / 60.0)
    } else {
        format!("{sign}{a}s")
    }
}

/// A tick spacing giving at most `max` ticks over `span` seconds.
fn tick_step(span: f64, max: f64) -> f64 {
    const STEPS: [f64; 15] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        21600.0,
    ];
    STEPS.iter().copied().find(|s| span / s <= max).unwrap_or(86_400.0)
}

struct Scale {
    t0: f64,
    t1: f64,
    y0: f64,
    y1: f64,
    size: Size,
}

impl Scale {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t - self.t0) / (self.t1 - self.t0) * (self.size.width - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        let h = self.size.height - TOP - BOTTOM;
        TOP + h - (v - self.y0) / (self.y1 - self.y0) * h
    }
}

fn scale(chart: &Chart, at: f64, size: Size) -> Option<Scale> {
    let times = chart.points.iter().map(|p| p.0).chain(chart.band.iter().map(|b| b.0));
    let (mut t0, mut t1) =
        times.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if !t0.is_finite() {
        return None;
    }
    t1 = t1.max(at);
    t0 = t0.min(at);
    if t1 - t0 < 1.0 {
        t1 = t0 + 1.0;
    }
    let values = chart
        .points
        .iter()
        .map(|p| p.1)
        .chain(chart.band.iter().flat_map(|b| [b.1, b.2]))
        .filter(|v| v.is_finite());
    let (mut y0, mut y1) =
        values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !y0.is_finite() {
        return None;
    }
    if (y1 - y0).abs() < 1e-12 {
        let pad = if y0.abs() > 0.0 { y0.abs() * 0.1 } else { 1.0 };
        y0 -= pad;
        y1 += pad;
    } else {
        let pad = 0.06 * (y1 - y0);
        y0 -= pad;
        y1 += pad;
    }
    Some(Scale { t0, t1, y0, y1, size })
}

/// The series' line, broken where samples are missing for more than three steps.
fn line_path(chart: &Chart, s: &Scale) -> String {
    let mut gaps: Vec<f64> = chart.points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_by(f64::total_cmp);
    let usual = gaps.get(gaps.len() / 2).copied().unwrap_or(1.0).max(1e-9);
    let mut d = String::new();
    let mut last: Option<f64> = None;
    for &(t, v) in &chart.points {
        let cmd = match last {
            Some(prev) if t - prev <= 3.0 * usual => 'L',
            _ => 'M',
        };
        let _ = write!(d, "{cmd}{:.1},{:.1}", s.x(t), s.y(v));
        last = Some(t);
    }
    d
}

fn band_path(chart: &Chart, s: &Scale) -> String {
    if chart.band.is_empty() {
        return String::new();
    }
    let mut d = String::new();
    for (i, &(t, _, upper)) in chart.band.iter().enumerate() {
        let _ = write!(d, "{}{:.1},{:.1}", if i == 0 { 'M' } else { 'L' }, s.x(t), s.y(upper));
    }
    for &(t, lower, _) in chart.band.iter().rev() {
        let _ = write!(d, "L{:.1},{:.1}", s.x(t), s.y(lower));
    }
    d.push('Z');
    d
}

/// Room the onset label takes (`onset −15s` in the tick font).
const ONSET_LABEL_WIDTH: f64 = 56.0;

/// One chart as an `<svg>` element; `at` is the alert time (Unix seconds).
pub fn render(chart: &Chart, at: f64, size: Size) -> String {
    let mut out = String::new();
    let label = escape(&chart.title);
    let Some(s) = scale(chart, at, size) else {
        let _ = write!(
            out,
            r#"<svg class="chart empty" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{label}: no data</title><text x="{x}" y="{y}" class="muted">no data</text></svg>"#,
            w = size.width,
            h = size.height,
            x = size.width / 2.0 - 20.0,
            y = size.height / 2.0
        );
        return out;
    };
    let (w, h) = (size.width, size.height);
    let _ = write!(
        out,
        r#"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" data-points="{}" data-band="{}"><title>{label}</title>"#,
        chart.points.len(),
        chart.band.len()
    );
    let plot_bottom = h - BOTTOM;
    // The anomaly: from the onset to the end, behind everything.
    if let Some(onset) = chart.onset {
        let x = s.x(onset);
        let _ = write!(
            out,
            r#"<rect class="anomaly" x="{x:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="{ANOMALY}"/>"#,
            (s.x(s.t1) - x).max(0.0),
            plot_bottom - TOP
        );
    }
    let band = band_path(chart, &s);
    if !band.is_empty() {
        let _ = write!(out, r#"<path class="band" d="{band}" fill="{BAND}" stroke="none"/>"#);
    }
    // Axes, y labels at the bottom, middle and top of the range.
    let _ = write!(
        out,
        r##"<path d="M{LEFT},{TOP}V{plot_bottom}H{:.1}" stroke="#999" fill="none" stroke-width="1"/>"##,
        w - RIGHT
    );
    for f in [0.0, 0.5, 1.0] {
        let v = s.y0 + f * (s.y1 - s.y0);
        let y = s.y(v);
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text><path d="M{LEFT},{y:.1}h-4" stroke="#999"/>"##,
            LEFT - 6.0,
            y + 4.0,
            escape(&short(v))
        );
    }
    let step = tick_step(s.t1 - s.t0, if w > 500.0 { 8.0 } else { 4.0 });
    let mut rel = ((s.t0 - at) / step).ceil() * step;
    while at + rel <= s.t1 + 1e-6 {
        let x = s.x(at + rel);
        let _ = write!(
            out,
            r##"<path d="M{x:.1},{plot_bottom}v4" stroke="#999"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"##,
            plot_bottom + 16.0,
            relative(rel)
        );
        rel += step;
    }
    // The alert and the onset.
    let ax = s.x(at);
    let _ = write!(
        out,
        r##"<path class="alert-mark" d="M{ax:.1},{TOP}V{plot_bottom}" stroke="#555" stroke-width="1"/><text x="{:.1}" y="{:.1}" class="tick">alert</text>"##,
        ax + 3.0,
        TOP + 10.0
    );
    if let Some(onset) = chart.onset {
        let ox = s.x(onset);
        // A second row, so it never overprints the alert's label; right of its line when the
        // left of it would run into the y axis' labels.
        let (x, anchor) =
            if ox - ONSET_LABEL_WIDTH < LEFT { (ox + 3.0, "start") } else { (ox - 3.0, "end") };
        let _ = write!(
            out,
            r##"<path class="onset" d="M{ox:.1},{TOP}V{plot_bottom}" stroke="{ONSET}" stroke-width="1.5" stroke-dasharray="4 3"/><text x="{x:.1}" y="{:.1}" text-anchor="{anchor}" class="tick onset-label" fill="{ONSET}">onset {}</text>"##,
            TOP + 22.0,
            relative(onset - at)
        );
    }
    let _ = write!(
        out,
        r#"<path class="line" d="{}" fill="none" stroke="{LINE}" stroke-width="1.8" stroke-linejoin="round"/>"#,
        line_path(chart, &s)
    );
    // Points beyond the band after the onset.
    if let Some(onset) = chart.onset {
        let mut outside = 0;
        for &(t, v) in chart.points.iter().filter(|p| p.0 >= onset) {
            let beyond = chart
                .band
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                .is_some_and(|b| v < b.1 || v > b.2);
            if beyond && outside < 200 {
                outside += 1;
                let _ = write!(
                    out,
                    r#"<circle class="outside" cx="{:.1}" cy="{:.1}" r="2.2" fill="{OUTSIDE}"/>"#,
                    s.x(t),
                    s.y(v)
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rca::chart::BandSource;
    use crate::rca::Role;

    fn chart() -> Chart {
        Chart {
            title: "engine_up{engine=\"blue<1>\"}".into(),
            name: "engine_up".into(),
            role: Role::Health,
            rank: 1,
            points: (0..60).map(|i| (1000.0 + i as f64, if i >= 40 { 0.0 } else { 1.0 })).collect(),
            band: (0..60).map(|i| (1000.0 + i as f64, 0.99, 1.01)).collect(),
            band_source: BandSource::PreIncident,
            onset: Some(1040.0),
            peak: Some((1040.0, 0.0)),
        }
    }

    #[test]
    fn a_chart_has_its_band_anomaly_onset_alert_line_and_escaped_title() {
        let svg = render(&chart(), 1045.0, LARGE);
        assert!(svg.starts_with("<svg class=\"chart\"") && svg.ends_with("</svg>"));
        for part in [
            "class=\"band\"",
            "class=\"anomaly\"",
            "class=\"onset\"",
            "class=\"alert-mark\"",
            "class=\"line\"",
        ] {
            assert!(svg.contains(part), "{part} missing");
        }
        assert!(svg.contains("blue&lt;1&gt;") && !svg.contains("blue<1>"));
        assert!(svg.contains(">onset −5s<"), "{svg}");
        // Every point after the onset is below the band: 20 dots.
        assert_eq!(svg.matches("class=\"outside\"").count(), 20);
        assert!(svg.contains("data-points=\"60\""));
    }

    #[test]
    fn gaps_break_the_line_and_an_empty_chart_says_so() {
        let mut c = chart();
        c.points.retain(|p| !(1020.0..1030.0).contains(&p.0));
        let svg = render(&c, 1045.0, SMALL);
        let d = svg.split("class=\"line\" d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        c.points.clear();
        c.band.clear();
        assert!(render(&c, 1045.0, SMALL).contains("no data"));
    }

    #[test]
    fn labels_are_short_and_relative_to_the_alert() {
        assert_eq!(short(3.1e9), "3.10G");
        assert_eq!(short(12_500.0), "12.5k");
        assert_eq!(short(0.0123), "0.0123");
        assert_eq!(relative(-120.0), "−2m");
        assert_eq!(relative(15.0), "+15s");
        assert_eq!(relative(0.2), "0");
        assert_eq!(tick_step(300.0, 8.0), 60.0);
    }
}
