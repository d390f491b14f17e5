//! Line syntax: every construct of a sample and metadata line, and every error with its line
//! number and reason.

use super::*;

fn p004(text: &str) -> Vec<Family> {
    parse(text, Dialect::Text004).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn pom(text: &str) -> Vec<Family> {
    parse(text, Dialect::OpenMetrics).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn only_sample(families: &[Family]) -> &Sample {
    assert_eq!(families.len(), 1, "{families:#?}");
    assert_eq!(families[0].samples.len(), 1, "{families:#?}");
    &families[0].samples[0]
}

/// Asserts the strict error of `text` (line and reason) and that lenient parsing reports the
/// same error at the same line.
fn err(text: &str, dialect: Dialect) -> ParseError {
    let e = parse(text, dialect).expect_err(text);
    let (_, errors) = parse_lenient(text, dialect);
    assert!(errors.contains(&e), "lenient errors {errors:?} lack {e:?}");
    e
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn plain_sample_without_labels() {
    let fams = p004("up 1\n");
    let s = only_sample(&fams);
    assert_eq!((s.name.as_str(), s.value, s.timestamp_ms), ("up", 1.0, None));
    assert!(s.labels.is_empty());
    assert_eq!(fams[0].kind, MetricType::Untyped);
}

#[test]
fn names_with_colons_and_labels_in_order() {
    let fams = p004("vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 3\n");
    let s = only_sample(&fams);
    assert_eq!(s.name, "vllm:num_requests_running");
    assert_eq!(s.labels, labels(&[("model_name", "m"), ("engine", "0")]));
    assert_eq!(s.label("engine"), Some("0"));
    assert_eq!(s.value, 3.0);
}

#[test]
fn label_value_escapes_are_decoded() {
    let fams = p004(r#"m{a="x\\y",b="say \"hi\"",c="l1\nl2",d="C:\temp",e="ü 中"} 1"#);
    let s = only_sample(&fams);
    assert_eq!(s.label("a"), Some("x\\y"));
    assert_eq!(s.label("b"), Some("say \"hi\""));
    assert_eq!(s.label("c"), Some("l1\nl2"));
    // Unknown escapes stay as written, as in Prometheus.
    assert_eq!(s.label("d"), Some("C:\\temp"));
    assert_eq!(s.label("e"), Some("ü 中"));
}

#[test]
fn empty_label_set_trailing_comma_and_blanks_inside_braces() {
    for text in ["m{} 1", "m{a=\"1\",} 1", "m { a = \"1\" , b=\"\" , } 1", "m\t{a=\"1\"}\t\t1"] {
        let s = only_sample(&p004(text)).clone();
        assert_eq!(s.value, 1.0, "{text}");
        assert!(s.labels.len() <= 2, "{text}");
    }
    assert_eq!(only_sample(&p004("m{a=\"1\",} 1")).labels, labels(&[("a", "1")]));
    assert_eq!(only_sample(&p004("m{a=\"\"} 1")).labels, labels(&[("a", "")]));
}

#[test]
fn special_and_scientific_values() {
    let text =
        "a NaN\nb +Inf\nc -Inf\nd Inf\ne 1.5e+09\nf -2.5E-3\ng 1234.0\nh .5\ni -0\nj 1e400\n";
    let fams = p004(text);
    let v: Vec<f64> = fams.iter().map(|f| f.samples[0].value).collect();
    assert!(v[0].is_nan());
    assert_eq!(&v[1..4], &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]);
    assert_eq!(&v[4..9], &[1.5e9, -2.5e-3, 1234.0, 0.5, 0.0]);
    assert_eq!(v[9], f64::INFINITY);
}

#[test]
fn timestamps_are_milliseconds_in_both_dialects() {
    let s = only_sample(&p004("m 1 1700000000123\n")).clone();
    assert_eq!(s.timestamp_ms, Some(1_700_000_000_123));
    let s = only_sample(&p004("m 1 -5\n")).clone();
    assert_eq!(s.timestamp_ms, Some(-5));
    for (ts, ms) in [
        ("1700000000.123", 1_700_000_000_123),
        ("1700000000", 1_700_000_000_000),
        ("1700000000.1", 1_700_000_000_100),
        ("1700000000.12349", 1_700_000_000_123),
        ("1700000000.1235", 1_700_000_000_124),
        ("-1.5", -1_500),
        ("1.7e9", 1_700_000_000_000),
        ("0.001", 1),
    ] {
        let fams = pom(&format!("m 1 {ts}\n# EOF\n"));
        assert_eq!(only_sample(&fams).timestamp_ms, Some(ms), "{ts}");
    }
}

#[test]
fn crlf_line_endings_and_leading_blanks() {
    let fams = p004("# HELP m Help.\r\n# TYPE m gauge\r\n  m{a=\"1\"} 2\r\n\r\n");
    assert_eq!(fams[0].help.as_deref(), Some("Help."));
    assert_eq!(fams[0].kind, MetricType::Gauge);
    assert_eq!(only_sample(&fams).value, 2.0);
    let fams = pom("# TYPE m gauge\r\nm 2\r\n# EOF\r\n");
    assert_eq!(only_sample(&fams).value, 2.0);
}

#[test]
fn comments_and_blank_lines_are_ignored() {
    let fams =
        p004("# a comment\n\n#HELP not metadata\n   \n# EOF is a comment in 0.0.4\nm 1\n# EOF\n");
    assert_eq!(fams.len(), 1);
    assert_eq!(only_sample(&fams).name, "m");
}

#[test]
fn help_text_escapes_per_dialect() {
    let fams = p004("# HELP m a\\\\b\\nc \\\"q\\\" \\t\nm 1\n");
    assert_eq!(fams[0].help.as_deref(), Some("a\\b\nc \\\"q\\\" \\t"));
    let fams = pom("# HELP m a\\\\b\\nc \\\"q\\\"\nm 1\n# EOF\n");
    assert_eq!(fams[0].help.as_deref(), Some("a\\b\nc \"q\""));
    // Exactly one separator after the name: the rest is the text.
    let fams = p004("# HELP m  two spaces \nm 1\n");
    assert_eq!(fams[0].help.as_deref(), Some(" two spaces "));
    let fams = p004("# HELP m\nm 1\n");
    assert_eq!(fams[0].help.as_deref(), Some(""));
}

#[test]
fn exemplars_are_tolerated_and_discarded() {
    let text = "# TYPE h histogram\n\
        h_bucket{le=\"0.5\"} 3 # {trace_id=\"abc\"} 0.42 1700000000.5\n\
        h_bucket{le=\"+Inf\"} 4 1700000001.000 # {trace_id=\"d\",span=\"e\"} 9\n\
        h_sum 5\nh_count 4\n# TYPE c counter\nc_total 7 # {} 1\n# EOF\n";
    let fams = pom(text);
    assert_eq!(fams[0].samples.len(), 4);
    assert_eq!(fams[0].samples[0].labels, labels(&[("le", "0.5")]));
    assert_eq!(fams[0].samples[1].timestamp_ms, Some(1_700_000_001_000));
    assert_eq!(fams[1].samples[0].value, 7.0);
    let e = err("# TYPE c counter\nc_total 7 # {x=\"1\"} abc\n# EOF\n", Dialect::OpenMetrics);
    assert_eq!(e.line, 2);
    assert_eq!(e.reason, "invalid exemplar for sample c_total: invalid value \"abc\"");
    let e = err("c_total 7 # nope\n# EOF\n", Dialect::OpenMetrics);
    assert_eq!(e.reason, "invalid exemplar for sample c_total: expected '{' after '#'");
}

#[test]
fn sample_line_errors_name_line_and_reason() {
    let cases: &[(&str, usize, &str)] = &[
        ("a 1\nb 2\nfoo abc\n", 3, "invalid value \"abc\" for sample foo"),
        ("m{a=\"1} 2\n", 1, "unterminated label value of label a in m"),
        ("ok 1\nm{a=\"x\\\"} 2\n", 2, "unterminated label value of label a in m"),
        ("m{a=\"1\" 2\n", 1, "expected ',' or '}' after the value of label a in m, found \"2\""),
        ("m{a=\"1\",\n", 1, "unterminated label set of m"),
        ("m{a=1} 2\n", 1, "expected '\"' to open the value of label a in m"),
        ("m{a} 2\n", 1, "expected '=' after label name a in m"),
        ("m{1a=\"x\"} 2\n", 1, "invalid label name at \"1a=\\\"x\\\"} 2\" in m"),
        ("m{a:b=\"x\"} 2\n", 1, "expected '=' after label name a in m"),
        ("m{a=\"1\",a=\"2\"} 2\n", 1, "duplicate label a in m"),
        ("m\n", 1, "missing value for sample m"),
        ("m{a=\"1\"}\n", 1, "missing value for sample m"),
        ("m{}2\n", 1, "expected a space before the value of sample m"),
        ("my-metric 2\n", 1, "invalid character '-' after metric name my"),
        ("9lives 2\n", 1, "expected a metric name, found \"9lives 2\""),
        ("m 1 2 3\n", 1, "unexpected text \"3\" after sample m"),
        ("m 1 1.5\n", 1, "invalid timestamp \"1.5\" for sample m"),
        (
            "m 1 99999999999999999999\n",
            1,
            "invalid timestamp \"99999999999999999999\" for sample m",
        ),
        ("m 1 2 # {a=\"b\"} 1 2 3\n", 1, "unexpected text \"3\" after sample m"),
    ];
    for (text, line, reason) in cases {
        let e = err(text, Dialect::Text004);
        assert_eq!((e.line, e.reason.as_str()), (*line, *reason), "{text:?}");
        assert_eq!(e.to_string(), format!("line {line}: {reason}"));
    }
}

#[test]
fn openmetrics_timestamp_errors() {
    let e = err("m 1 NaN\n# EOF\n", Dialect::OpenMetrics);
    assert_eq!(e.reason, "invalid timestamp \"NaN\" for sample m");
    let e = err("m 1 1e300\n# EOF\n", Dialect::OpenMetrics);
    assert_eq!(e.reason, "invalid timestamp \"1e300\" for sample m");
    let e = err("m 1 12:00\n# EOF\n", Dialect::OpenMetrics);
    assert_eq!(e.reason, "invalid timestamp \"12:00\" for sample m");
}

#[test]
fn long_garbage_is_echoed_shortened() {
    let text = format!("m {}\n", "x".repeat(10_000));
    let e = err(&text, Dialect::Text004);
    assert!(e.reason.len() < 100, "{}", e.reason);
    assert!(e.reason.starts_with("invalid value \"xxxx"), "{}", e.reason);
    // Shortening never splits a multi-byte character.
    let text = format!("m {}\n", "é".repeat(100));
    assert!(err(&text, Dialect::Text004).reason.ends_with("\"... for sample m"));
}

#[test]
fn metadata_line_errors() {
    let cases: &[(&str, Dialect, usize, &str)] = &[
        ("# HELP\n", Dialect::Text004, 1, "HELP line without a metric name"),
        ("# TYPE  \n", Dialect::Text004, 1, "TYPE line without a metric name"),
        ("# TYPE 1m gauge\n", Dialect::Text004, 1, "invalid metric name \"1m\" in TYPE line"),
        ("# HELP m-x y\n", Dialect::Text004, 1, "invalid metric name \"m-x\" in HELP line"),
        ("# TYPE m\n", Dialect::Text004, 1, "missing type in TYPE line for m"),
        (
            "# TYPE m gauge extra\n",
            Dialect::Text004,
            1,
            "unexpected text \"extra\" after TYPE line for m",
        ),
        ("\n# TYPE m meter\n", Dialect::Text004, 2, "unknown metric type \"meter\" for m"),
        (
            "# UNIT m_bytes seconds\n# EOF\n",
            Dialect::OpenMetrics,
            1,
            "unit \"seconds\" is not a suffix of the family name m_bytes",
        ),
        (
            "# UNIT mbytes bytes\n# EOF\n",
            Dialect::OpenMetrics,
            1,
            "unit \"bytes\" is not a suffix of the family name mbytes",
        ),
    ];
    for (text, dialect, line, reason) in cases {
        let e = err(text, *dialect);
        assert_eq!((e.line, e.reason.as_str()), (*line, *reason), "{text:?}");
    }
}

#[test]
fn unit_lines_are_openmetrics_only() {
    let fams = pom("# TYPE m_bytes gauge\n# UNIT m_bytes bytes\nm_bytes 1\n# EOF\n");
    assert_eq!(fams[0].unit.as_deref(), Some("bytes"));
    // In 0.0.4 a UNIT line is a comment, even a malformed one.
    let fams = p004("# TYPE m_bytes gauge\n# UNIT m_bytes seconds\nm_bytes 1\n");
    assert_eq!(fams[0].unit, None);
}

#[test]
fn reasons_stay_short_with_huge_names() {
    let name = "n".repeat(100_000);
    let e = err(&format!("{name} abc\n"), Dialect::Text004);
    assert!(e.reason.len() <= 303, "{}", e.reason.len());
    assert!(e.reason.starts_with("invalid value \"abc\" for sample nnn"));
    assert!(e.reason.ends_with("..."));
}
