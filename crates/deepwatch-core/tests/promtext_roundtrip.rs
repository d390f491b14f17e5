//! Property tests of the promtext parser against the exposition writer: random families
//! rendered with `expo::MetricSink` (0.0.4 and OpenMetrics) parse back to the same families and
//! samples, and on any input the strict parser fails exactly where the lenient one first
//! complains.

use deepwatch_core::catalog::MetricType;
use deepwatch_core::expo::{write_float, Format, MetricSink};
use deepwatch_core::promtext::{parse, parse_lenient, Dialect, Family, Sample};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct FamilySpec {
    name: String,
    help: String,
    kind: MetricType,
    unit: String,
    samples: Vec<Sample>,
}

fn metric_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}"
}

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}"
}

/// Label values and help texts: quotes, backslashes, newlines, tabs, braces, unicode.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _:=,{}#\\\\\"\n\tüé中😀]{0,16}"
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(1e300),
        1 => Just(-5e-324),
        1 => Just(f64::MAX),
        2 => (-1_000_000_000_000_000i64..1_000_000_000_000_000).prop_map(|v| v as f64),
    ]
}

fn timestamp() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        3 => Just(None),
        2 => (1_600_000_000_000i64..1_900_000_000_000).prop_map(Some),
        1 => any::<i64>().prop_map(Some),
        1 => (-5_000i64..5_000).prop_map(Some),
    ]
}

/// Unique label names (never `reserved`) with values.
fn label_set(reserved: &'static str) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((label_name(), text()), 0..4).prop_map(move |pairs| {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            if k != reserved && !out.iter().any(|(seen, _)| *seen == k) {
                out.push((k, v));
            }
        }
        out
    })
}

fn sample(name: String, labels: Vec<(String, String)>, value: f64, ts: Option<i64>) -> Sample {
    Sample { name, labels, value, timestamp_ms: ts }
}

fn float_text(v: f64) -> String {
    let mut s = String::new();
    write_float(&mut s, v);
    s
}

fn with_label(labels: &[(String, String)], name: &str, value: f64) -> Vec<(String, String)> {
    let mut out = labels.to_vec();
    out.push((name.to_string(), float_text(value)));
    out
}

/// One histogram series: cumulative buckets over sorted edges, `+Inf` equal to the count.
fn histogram_series(name: &str) -> impl Strategy<Value = Vec<Sample>> {
    let name = name.to_string();
    (label_set("le"), prop::collection::vec((-1e6f64..1e6, 0u64..1000), 0..6), value(), timestamp())
        .prop_map(move |(labels, mut edges, sum, ts)| {
            edges.sort_by(|a, b| a.0.total_cmp(&b.0));
            edges.dedup_by(|a, b| a.0 == b.0);
            let mut out = Vec::new();
            let mut cumulative = 0u64;
            for (edge, n) in edges {
                cumulative += n;
                let labels = with_label(&labels, "le", edge);
                out.push(sample(format!("{name}_bucket"), labels, cumulative as f64, ts));
            }
            let count = cumulative + 3;
            let inf = with_label(&labels, "le", f64::INFINITY);
            out.push(sample(format!("{name}_bucket"), inf, count as f64, ts));
            out.push(sample(format!("{name}_sum"), labels.clone(), sum, ts));
            out.push(sample(format!("{name}_count"), labels, count as f64, ts));
            out
        })
}

fn summary_series(name: &str) -> impl Strategy<Value = Vec<Sample>> {
    let name = name.to_string();
    (label_set("quantile"), prop::collection::vec((0.0f64..=1.0, value()), 0..4), timestamp())
        .prop_map(move |(labels, quantiles, ts)| {
            let mut out: Vec<Sample> = quantiles
                .into_iter()
                .map(|(q, v)| sample(name.clone(), with_label(&labels, "quantile", q), v, ts))
                .collect();
            out.push(sample(format!("{name}_sum"), labels.clone(), 12.5, ts));
            out.push(sample(format!("{name}_count"), labels, 7.0, ts));
            out
        })
}

fn family(index: usize) -> impl Strategy<Value = FamilySpec> {
    let kinds = prop_oneof![
        Just(MetricType::Counter),
        Just(MetricType::Gauge),
        Just(MetricType::Histogram),
        Just(MetricType::Summary),
        Just(MetricType::Untyped),
    ];
    let units = prop_oneof![Just(""), Just("seconds"), Just("bytes"), Just("ratio")];
    (metric_name(), text(), kinds, units, any::<bool>()).prop_flat_map(
        move |(stem, help, kind, unit, total)| {
            // A numbered stem keeps names unique and clear of sample suffixes.
            let mut name = format!("{stem}_f{index}");
            if !unit.is_empty() {
                name = format!("{name}_{unit}");
            }
            if kind == MetricType::Counter && total {
                name.push_str("_total");
            }
            let samples: BoxedStrategy<Vec<Sample>> = match kind {
                MetricType::Histogram => prop::collection::vec(histogram_series(&name), 0..3)
                    .prop_map(|series| series.concat())
                    .boxed(),
                MetricType::Summary => prop::collection::vec(summary_series(&name), 0..3)
                    .prop_map(|series| series.concat())
                    .boxed(),
                _ => {
                    let name = name.clone();
                    prop::collection::vec((label_set(""), value(), timestamp()), 0..4)
                        .prop_map(move |rows| {
                            rows.into_iter()
                                .map(|(labels, v, ts)| sample(name.clone(), labels, v, ts))
                                .collect()
                        })
                        .boxed()
                }
            };
            let unit = unit.to_string();
            samples.prop_map(move |samples| FamilySpec {
                name: name.clone(),
                help: help.clone(),
                kind,
                unit: unit.clone(),
                samples,
            })
        },
    )
}

fn exposition() -> impl Strategy<Value = Vec<FamilySpec>> {
    (0usize..6).prop_flat_map(|n| (0..n).map(family).collect::<Vec<_>>())
}

fn render(specs: &[FamilySpec], format: Format) -> String {
    let mut sink = MetricSink::new(format);
    for spec in specs {
        let fam = sink.raw_family(&spec.name, &spec.help, spec.kind, &spec.unit);
        for s in &spec.samples {
            let labels: Vec<(&str, &str)> =
                s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            sink.raw_sample(fam, &s.name, &labels, s.value, s.timestamp_ms);
        }
    }
    sink.render()
}

/// What the parser must return for `specs` rendered in `dialect`.
fn expected(specs: &[FamilySpec], dialect: Dialect) -> Vec<Family> {
    let om = dialect == Dialect::OpenMetrics;
    specs
        .iter()
        .map(|spec| {
            let name = match spec.kind {
                MetricType::Counter if om => {
                    spec.name.strip_suffix("_total").unwrap_or(&spec.name).to_string()
                }
                _ => spec.name.clone(),
            };
            Family {
                name,
                help: Some(spec.help.clone()),
                kind: spec.kind,
                unit: (om && !spec.unit.is_empty()).then(|| spec.unit.clone()),
                samples: spec.samples.clone(),
            }
        })
        .collect()
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

fn same_families(got: &[Family], want: &[Family]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} families, want {}", got.len(), want.len()));
    }
    for (g, w) in got.iter().zip(want) {
        let head = |f: &Family| (f.name.clone(), f.help.clone(), f.kind, f.unit.clone());
        if head(g) != head(w) {
            return Err(format!("family {:?} != {:?}", head(g), head(w)));
        }
        if g.samples.len() != w.samples.len() {
            return Err(format!(
                "{}: {} samples, want {}",
                w.name,
                g.samples.len(),
                w.samples.len()
            ));
        }
        for (gs, ws) in g.samples.iter().zip(&w.samples) {
            let ok = gs.name == ws.name
                && gs.labels == ws.labels
                && gs.timestamp_ms == ws.timestamp_ms
                && same_value(gs.value, ws.value);
            if !ok {
                return Err(format!("sample {gs:?} != {ws:?}"));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rendered_families_parse_back(specs in exposition()) {
        for (format, dialect) in [
            (Format::Text004, Dialect::Text004),
            (Format::OpenMetrics, Dialect::OpenMetrics),
        ] {
            let text = render(&specs, format);
            let parsed = parse(&text, dialect);
            prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed.err(), text);
            let parsed = parsed.unwrap();
            let check = same_families(&parsed, &expected(&specs, dialect));
            prop_assert!(check.is_ok(), "{:?}: {}\n{}", dialect, check.unwrap_err(), text);
            let (lenient, errors) = parse_lenient(&text, dialect);
            prop_assert!(errors.is_empty(), "{:?}", errors);
            prop_assert!(same_families(&lenient, &parsed).is_ok());
        }
    }

    #[test]
    fn strict_fails_where_lenient_first_complains(
        lines in prop::collection::vec(prop_oneof![
            "[ -~]{0,30}",
            "# (HELP|TYPE|UNIT|EOF) [a-z_:]{1,6}( [a-z ]{0,10})?",
            "[a-z_]{1,6}(_total|_bucket|_sum|_count|_created)?(\\{[a-z]{1,3}=\"[a-z\\\\\"]{0,4}\",?\\})? [0-9.eE+-]{1,6}( [0-9.]{1,5})?",
        ], 0..12),
        om in any::<bool>(),
    ) {
        let dialect = if om { Dialect::OpenMetrics } else { Dialect::Text004 };
        let text = lines.join("\n");
        let (lenient, errors) = parse_lenient(&text, dialect);
        match parse(&text, dialect) {
            Ok(strict) => {
                prop_assert!(errors.is_empty(), "{:?}", errors);
                prop_assert!(same_families(&strict, &lenient).is_ok());
            }
            Err(e) => prop_assert_eq!(errors.first(), Some(&e)),
        }
        for e in &errors {
            prop_assert!(e.line >= 1 && e.line <= lines.len() + 1, "{:?}", e);
        }
    }
}

/// Regression: the OpenMetrics writer wrote -1 ms as `-1.999` (floor second plus a positive
/// fraction), i.e. -1999 ms.
#[test]
fn negative_openmetrics_timestamps_keep_their_value() {
    for ts in [-1i64, -1_500, -1_000, i64::MIN, i64::MAX, 0, 1] {
        let specs = [FamilySpec {
            name: "g".into(),
            help: "h".into(),
            kind: MetricType::Gauge,
            unit: String::new(),
            samples: vec![sample("g".into(), vec![], 1.0, Some(ts))],
        }];
        let text = render(&specs, Format::OpenMetrics);
        let fams = parse(&text, Dialect::OpenMetrics).unwrap();
        assert_eq!(fams[0].samples[0].timestamp_ms, Some(ts), "{text}");
    }
    let text = render(
        &[FamilySpec {
            name: "g".into(),
            help: "h".into(),
            kind: MetricType::Gauge,
            unit: String::new(),
            samples: vec![sample("g".into(), vec![], 1.0, Some(-1))],
        }],
        Format::OpenMetrics,
    );
    assert!(text.contains("g 1 -0.001\n"), "{text}");
}
