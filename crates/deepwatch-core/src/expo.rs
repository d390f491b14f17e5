//! Writing the Prometheus exposition formats. `MetricSink` collects samples family by family
//! (collectors may emit a family's samples in any order) and renders either the classic 0.0.4
//! text format or OpenMetrics 1.0 text, chosen from the scraper's `Accept` header.

use crate::catalog::{MetricSpec, MetricType};
use std::fmt::Write as _;

pub const CONTENT_TYPE_TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which text format to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text004,
    OpenMetrics,
}

impl Format {
    /// Picks OpenMetrics only when the scraper asks for it, as Prometheus does with
    /// `Accept: application/openmetrics-text;...`; anything else gets the 0.0.4 text format.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text004,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text004 => CONTENT_TYPE_TEXT_004,
            Format::OpenMetrics => CONTENT_TYPE_OPENMETRICS,
        }
    }
}

struct Family {
    /// Name the family was opened under (the sample name for counters and gauges).
    key: String,
    /// Name on `# HELP`/`# TYPE` lines (OpenMetrics counters drop `_total`).
    header_name: String,
    help: String,
    kind: MetricType,
    unit: String,
    body: String,
}

/// Collects samples grouped by family and renders them in one format.
pub struct MetricSink {
    format: Format,
    families: Vec<Family>,
    index: std::collections::HashMap<String, usize>,
}

impl MetricSink {
    pub fn new(format: Format) -> Self {
        MetricSink { format, families: Vec::new(), index: std::collections::HashMap::new() }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    fn family_for(&mut self, name: &str, help: &str, kind: MetricType, unit: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let header_name = match (self.format, kind) {
            (Format::OpenMetrics, MetricType::Counter) => {
                name.strip_suffix("_total").unwrap_or(name).to_string()
            }
            _ => name.to_string(),
        };
        self.families.push(Family {
            key: name.to_string(),
            header_name,
            help: help.to_string(),
            kind,
            unit: unit.to_string(),
            body: String::new(),
        });
        let i = self.families.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }

    fn spec_family(&mut self, spec: &MetricSpec) -> usize {
        self.family_for(spec.name, spec.help, spec.kind, spec.unit)
    }

    /// Declares a family even when it has no samples yet, so its HELP/TYPE lines appear.
    pub fn declare(&mut self, spec: &MetricSpec) {
        self.spec_family(spec);
    }

    /// A gauge (or info) sample; `label_values` follow `spec.labels`.
    pub fn gauge(&mut self, spec: &MetricSpec, label_values: &[&str], value: f64) {
        debug_assert!(matches!(spec.kind, MetricType::Gauge | MetricType::Info));
        self.simple(spec, label_values, value);
    }

    /// A counter sample; `label_values` follow `spec.labels`.
    pub fn counter(&mut self, spec: &MetricSpec, label_values: &[&str], value: f64) {
        debug_assert_eq!(spec.kind, MetricType::Counter);
        self.simple(spec, label_values, value);
    }

    fn simple(&mut self, spec: &MetricSpec, label_values: &[&str], value: f64) {
        debug_assert_eq!(spec.labels.len(), label_values.len(), "labels of {}", spec.name);
        let i = self.spec_family(spec);
        let body = &mut self.families[i].body;
        write_sample(body, spec.name, spec.labels, label_values, None, value, None, self.format);
    }

    /// A histogram from per-bucket cumulative counts (one per `spec.buckets` edge; `+Inf` is
    /// `count`).
    pub fn histogram(
        &mut self,
        spec: &MetricSpec,
        label_values: &[&str],
        cumulative: &[u64],
        sum: f64,
        count: u64,
    ) {
        self.histogram_with_edges(spec, label_values, spec.buckets, cumulative, sum, count);
    }

    /// A histogram whose bucket edges are not the catalog's (engine histograms re-exported with
    /// the engine's own edges). `cumulative` has one count per edge; `+Inf` is `count`.
    pub fn histogram_with_edges(
        &mut self,
        spec: &MetricSpec,
        label_values: &[&str],
        edges: &[f64],
        cumulative: &[u64],
        sum: f64,
        count: u64,
    ) {
        debug_assert_eq!(spec.kind, MetricType::Histogram);
        debug_assert_eq!(edges.len(), cumulative.len(), "buckets of {}", spec.name);
        debug_assert_eq!(spec.labels.len(), label_values.len(), "labels of {}", spec.name);
        let format = self.format;
        let i = self.spec_family(spec);
        let body = &mut self.families[i].body;
        let bucket_name = format!("{}_bucket", spec.name);
        let mut le = String::new();
        for (edge, n) in edges.iter().zip(cumulative) {
            if edge.is_infinite() {
                continue;
            }
            le.clear();
            write_float(&mut le, *edge);
            write_sample(
                body,
                &bucket_name,
                spec.labels,
                label_values,
                Some(&le),
                *n as f64,
                None,
                format,
            );
        }
        write_sample(
            body,
            &bucket_name,
            spec.labels,
            label_values,
            Some("+Inf"),
            count as f64,
            None,
            format,
        );
        write_sample(
            body,
            &format!("{}_sum", spec.name),
            spec.labels,
            label_values,
            None,
            sum,
            None,
            format,
        );
        write_sample(
            body,
            &format!("{}_count", spec.name),
            spec.labels,
            label_values,
            None,
            count as f64,
            None,
            format,
        );
    }

    /// Opens (or reuses) a family that is not in our catalog, for re-exporting what we scraped.
    /// Returns a handle for `raw_sample`.
    pub fn raw_family(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        unit: &str,
    ) -> RawFamily {
        RawFamily(self.family_for(name, help, kind, unit))
    }

    /// A sample of a raw family with arbitrary labels; `timestamp_ms` is kept when present.
    pub fn raw_sample(
        &mut self,
        family: RawFamily,
        sample_name: &str,
        labels: &[(&str, &str)],
        value: f64,
        timestamp_ms: Option<i64>,
    ) {
        let format = self.format;
        let body = &mut self.families[family.0].body;
        body.push_str(sample_name);
        if !labels.is_empty() {
            body.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(k);
                body.push_str("=\"");
                escape_label_value(body, v);
                body.push('"');
            }
            body.push('}');
        }
        body.push(' ');
        write_float(body, value);
        write_timestamp(body, timestamp_ms, format);
        body.push('\n');
    }

    /// Appends every family of `other` (rendered in the same format) to this sink.
    pub fn merge(&mut self, other: MetricSink) {
        debug_assert_eq!(self.format, other.format);
        for fam in other.families {
            let i = self.family_for(&fam.key, &fam.help, fam.kind, &fam.unit);
            self.families[i].body.push_str(&fam.body);
        }
    }

    /// Renders every family: HELP, TYPE (and UNIT for OpenMetrics), then samples; OpenMetrics
    /// output ends with `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.families.iter().map(|f| f.body.len() + 128).sum());
        self.render_into(&mut out);
        out
    }

    pub fn render_into(&self, out: &mut String) {
        for fam in &self.families {
            out.push_str("# HELP ");
            out.push_str(&fam.header_name);
            out.push(' ');
            escape_help(out, &fam.help);
            out.push('\n');
            out.push_str("# TYPE ");
            out.push_str(&fam.header_name);
            out.push(' ');
            out.push_str(match self.format {
                Format::Text004 => fam.kind.text_004(),
                Format::OpenMetrics => fam.kind.openmetrics(),
            });
            out.push('\n');
            if self.format == Format::OpenMetrics && !fam.unit.is_empty() && fam.unit != "info" {
                out.push_str("# UNIT ");
                out.push_str(&fam.header_name);
                out.push(' ');
                out.push_str(&fam.unit);
                out.push('\n');
            }
            out.push_str(&fam.body);
        }
        if self.format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
    }
}

/// Handle to a family opened with `MetricSink::raw_family`.
#[derive(Debug, Clone, Copy)]
pub struct RawFamily(usize);

#[allow(clippy::too_many_arguments)]
fn write_sample(
    out: &mut String,
    name: &str,
    label_names: &[&str],
    label_values: &[&str],
    le: Option<&str>,
    value: f64,
    timestamp_ms: Option<i64>,
    format: Format,
) {
    out.push_str(name);
    if !label_names.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (k, v) in label_names.iter().zip(label_values) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value(out, v);
            out.push('"');
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            out.push_str("le=\"");
            out.push_str(le);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    write_float(out, value);
    write_timestamp(out, timestamp_ms, format);
    out.push('\n');
}

fn write_timestamp(out: &mut String, timestamp_ms: Option<i64>, format: Format) {
    let Some(ts) = timestamp_ms else { return };
    out.push(' ');
    match format {
        Format::Text004 => {
            let _ = write!(out, "{ts}");
        }
        Format::OpenMetrics => {
            // OpenMetrics timestamps are seconds, with millisecond precision here. The sign
            // goes on the whole decimal: -1 ms is "-0.001", not "-1.999".
            let sign = if ts < 0 { "-" } else { "" };
            let secs = ts.unsigned_abs() / 1000;
            let millis = ts.unsigned_abs() % 1000;
            if millis == 0 {
                let _ = write!(out, "{sign}{secs}");
            } else {
                let _ = write!(out, "{sign}{secs}.{millis:03}");
            }
        }
    }
}

/// Writes a float the way Prometheus clients do: `+Inf`, `-Inf`, `NaN`, integers without a
/// fraction, everything else with the shortest representation that round-trips.
pub fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v == v.trunc() && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes HELP text: backslash and newline.
pub fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::common::{COLLECTOR_DURATION, COLLECTOR_UP};

    #[test]
    fn accept_header_picks_format() {
        assert_eq!(Format::from_accept(None), Format::Text004);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Text004);
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prom)), Format::OpenMetrics);
    }

    #[test]
    fn families_group_samples_emitted_out_of_order() {
        let mut sink = MetricSink::new(Format::Text004);
        sink.gauge(&COLLECTOR_UP, &["gpu"], 0.0);
        sink.histogram(&COLLECTOR_DURATION, &["gpu"], &[0; 16], 0.0, 0);
        sink.gauge(&COLLECTOR_UP, &["host"], 1.0);
        let text = sink.render();
        let up_lines: Vec<_> =
            text.lines().filter(|l| l.starts_with("deepwatch_collector_up")).collect();
        assert_eq!(
            up_lines,
            [
                "deepwatch_collector_up{collector=\"gpu\"} 0",
                "deepwatch_collector_up{collector=\"host\"} 1"
            ]
        );
        let first_up = text.find("deepwatch_collector_up{").unwrap();
        let first_dur = text.find("deepwatch_collector_duration_seconds_bucket").unwrap();
        assert!(first_up < first_dur, "up family must stay contiguous:\n{text}");
        assert!(text.contains(
            "deepwatch_collector_duration_seconds_bucket{collector=\"gpu\",le=\"+Inf\"} 0"
        ));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_has_unit_and_eof_and_counter_family_names() {
        static C: MetricSpec = MetricSpec {
            name: "deepwatch_test_bytes_total",
            help: "test",
            kind: MetricType::Counter,
            unit: "bytes",
            labels: &[],
            buckets: &[],
        };
        let mut sink = MetricSink::new(Format::OpenMetrics);
        sink.counter(&C, &[], 3.0);
        let text = sink.render();
        assert_eq!(
            text,
            "# HELP deepwatch_test_bytes test\n# TYPE deepwatch_test_bytes counter\n# UNIT deepwatch_test_bytes bytes\ndeepwatch_test_bytes_total 3\n# EOF\n"
        );
    }

    #[test]
    fn label_values_and_floats_are_escaped() {
        let mut out = String::new();
        escape_label_value(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
        let mut f = String::new();
        for v in [1.0, 0.25, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e20] {
            write_float(&mut f, v);
            f.push(' ');
        }
        assert_eq!(f, "1 0.25 +Inf -Inf NaN 100000000000000000000 ");
    }
}
