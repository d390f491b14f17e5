//! Family grouping: counters in both dialects, histograms, summaries, untyped samples,
//! `_created`, metadata order, `# EOF`, and lenient parsing of partly broken payloads.

use super::*;

fn p004(text: &str) -> Vec<Family> {
    parse(text, Dialect::Text004).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn pom(text: &str) -> Vec<Family> {
    parse(text, Dialect::OpenMetrics).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn summary(fams: &[Family]) -> Vec<(&str, MetricType, usize)> {
    fams.iter().map(|f| (f.name.as_str(), f.kind, f.samples.len())).collect()
}

fn strict_err(text: &str, dialect: Dialect) -> (usize, String) {
    let e = parse(text, dialect).expect_err(text);
    (e.line, e.reason)
}

const PY_004_COUNTER: &str = "\
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine=\"0\",model_name=\"m\"} 1234.0
vllm:prompt_tokens_total{engine=\"1\",model_name=\"m\"} 99.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine=\"0\",model_name=\"m\"} 1.7337744193587122e+09
vllm:prompt_tokens_created{engine=\"1\",model_name=\"m\"} 1.7337744193587122e+09
";

const PY_OM_COUNTER: &str = "\
# HELP vllm:prompt_tokens Number of prefill tokens processed.
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{engine=\"0\",model_name=\"m\"} 1234.0
vllm:prompt_tokens_created{engine=\"0\",model_name=\"m\"} 1.7337744193587122e+09
vllm:prompt_tokens_total{engine=\"1\",model_name=\"m\"} 99.0
vllm:prompt_tokens_created{engine=\"1\",model_name=\"m\"} 1.7337744193587122e+09
# EOF
";

#[test]
fn counters_group_in_both_dialects_and_created_is_dropped() {
    let text = p004(PY_004_COUNTER);
    assert_eq!(summary(&text), [("vllm:prompt_tokens_total", MetricType::Counter, 2)]);
    let om = pom(PY_OM_COUNTER);
    assert_eq!(summary(&om), [("vllm:prompt_tokens", MetricType::Counter, 2)]);
    // Same samples either way, found under the exposed name.
    assert_eq!(text[0].samples, om[0].samples);
    assert_eq!(text[0].help, om[0].help);
    for fams in [&text, &om] {
        let fam = find(fams, "vllm:prompt_tokens_total").expect("found by exposed name");
        assert!(fam.is_named("vllm:prompt_tokens"));
        assert_eq!(fam.samples_named("vllm:prompt_tokens_total").count(), 2);
    }
}

#[test]
fn counter_typed_without_total_owns_total_samples_in_004() {
    // Go and Rust clients: `# TYPE x counter` with `x_total` (or bare `x`) samples.
    let fams = p004("# TYPE x counter\nx_total 3\n# TYPE y counter\ny 4\n");
    assert_eq!(summary(&fams), [("x", MetricType::Counter, 1), ("y", MetricType::Counter, 1)]);
    assert_eq!(fams[0].samples[0].name, "x_total");
}

#[test]
fn gauge_named_created_without_sibling_is_kept() {
    let text = "# TYPE kube_pod_created gauge\nkube_pod_created{pod=\"a\"} 1.7e9\n\
        # TYPE foo_total counter\nfoo_total 1\n# TYPE bar_created gauge\nbar_created 2\n";
    let fams = p004(text);
    assert_eq!(
        summary(&fams),
        [
            ("kube_pod_created", MetricType::Gauge, 1),
            ("foo_total", MetricType::Counter, 1),
            ("bar_created", MetricType::Gauge, 1)
        ]
    );
}

#[test]
fn histogram_and_summary_samples_form_one_family() {
    let text = "\
# HELP vllm:iteration_tokens_total Number of tokens per engine_step.
# TYPE vllm:iteration_tokens_total histogram
vllm:iteration_tokens_total_bucket{engine=\"0\",le=\"1.0\"} 2.0
vllm:iteration_tokens_total_bucket{engine=\"0\",le=\"+Inf\"} 5.0
vllm:iteration_tokens_total_count{engine=\"0\"} 5.0
vllm:iteration_tokens_total_sum{engine=\"0\"} 77.0
# HELP vllm:iteration_tokens_total_created Number of tokens per engine_step.
# TYPE vllm:iteration_tokens_total_created gauge
vllm:iteration_tokens_total_created{engine=\"0\"} 1.7e+09
# TYPE rpc_seconds summary
rpc_seconds{quantile=\"0.5\"} 0.1
rpc_seconds{quantile=\"0.99\"} NaN
rpc_seconds_sum 3
rpc_seconds_count 20
# TYPE http_request_size_bytes summary
http_request_size_bytes_count{handler=\"/v1\"} 3.0
http_request_size_bytes_sum{handler=\"/v1\"} 700.0
";
    let fams = p004(text);
    assert_eq!(
        summary(&fams),
        [
            ("vllm:iteration_tokens_total", MetricType::Histogram, 4),
            ("rpc_seconds", MetricType::Summary, 4),
            ("http_request_size_bytes", MetricType::Summary, 2)
        ]
    );
    assert_eq!(fams[0].samples[1].label("le"), Some("+Inf"));
}

#[test]
fn histogram_and_summary_label_errors() {
    let cases: &[(&str, usize, &str)] = &[
        ("# TYPE h histogram\nh_bucket{a=\"1\"} 1\n", 2, "sample h_bucket has no le label"),
        ("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", 2, "invalid le \"x\" for sample h_bucket"),
        ("# TYPE s summary\ns 1\n", 2, "sample s has no quantile label"),
        ("# TYPE s summary\ns{quantile=\"\"} 1\n", 2, "invalid quantile \"\" for sample s"),
        ("# TYPE h histogram\nh 1\n", 2, "sample h does not fit the histogram family h"),
    ];
    for (text, line, reason) in cases {
        assert_eq!(strict_err(text, Dialect::Text004), (*line, reason.to_string()), "{text}");
    }
}

#[test]
fn samples_without_type_become_untyped_families() {
    let fams = p004("a 1\na{x=\"1\"} 2\nb_bucket{le=\"1\"} 3\n# HELP c Only help.\nc 4\n");
    assert_eq!(
        summary(&fams),
        [
            ("a", MetricType::Untyped, 2),
            ("b_bucket", MetricType::Untyped, 1),
            ("c", MetricType::Untyped, 1)
        ]
    );
    assert_eq!(fams[2].help.as_deref(), Some("Only help."));
    // `untyped` and `unknown` both read as untyped.
    let fams = pom("# TYPE u unknown\nu 1\n# TYPE v untyped\nv 1\n# EOF\n");
    assert!(fams.iter().all(|f| f.kind == MetricType::Untyped));
}

#[test]
fn families_without_samples_are_kept() {
    let fams = p004("# HELP h Latency.\n# TYPE h histogram\n# HELP g G.\n# TYPE g gauge\ng 1\n");
    assert_eq!(summary(&fams), [("h", MetricType::Histogram, 0), ("g", MetricType::Gauge, 1)]);
}

#[test]
fn repeated_and_misplaced_metadata_is_an_error() {
    let cases: &[(&str, Dialect, usize, &str)] = &[
        ("# HELP a x\n# HELP a y\n", Dialect::Text004, 2, "second HELP line for a"),
        ("# TYPE a gauge\na 1\n# TYPE a gauge\n", Dialect::Text004, 3, "second TYPE line for a"),
        (
            "# TYPE a gauge\n# TYPE b gauge\n# TYPE a counter\n",
            Dialect::Text004,
            3,
            "second TYPE line for a",
        ),
        ("a 1\n# TYPE a gauge\n", Dialect::Text004, 2, "TYPE line for a after its samples"),
        (
            "# TYPE a gauge\na 1\nb 1\n# HELP a x\n",
            Dialect::Text004,
            4,
            "HELP line for a after its samples",
        ),
        (
            "# TYPE a gauge\na 1\n# HELP a x\n# EOF\n",
            Dialect::OpenMetrics,
            3,
            "HELP line for a after its samples",
        ),
        (
            "# TYPE a gauge\n# TYPE b gauge\n# HELP a x\n",
            Dialect::Text004,
            3,
            "HELP line for a is separated from its family",
        ),
        (
            "# TYPE a_bytes gauge\n# UNIT a_bytes bytes\n# UNIT a_bytes bytes\n# EOF\n",
            Dialect::OpenMetrics,
            3,
            "second UNIT line for a_bytes",
        ),
    ];
    for (text, dialect, line, reason) in cases {
        assert_eq!(strict_err(text, *dialect), (*line, reason.to_string()), "{text}");
    }
    // In 0.0.4 a HELP line may follow the family's samples, as long as it stays in the family.
    let fams = p004("# TYPE a gauge\na 1\n# HELP a late\n");
    assert_eq!(fams[0].help.as_deref(), Some("late"));
}

#[test]
fn interleaved_families_join_in_004_and_fail_in_openmetrics() {
    let text = "# TYPE a gauge\na{i=\"1\"} 1\n# TYPE b gauge\nb 2\na{i=\"2\"} 3\n";
    let fams = p004(text);
    assert_eq!(summary(&fams), [("a", MetricType::Gauge, 2), ("b", MetricType::Gauge, 1)]);
    let om = format!("{text}# EOF\n");
    assert_eq!(
        strict_err(&om, Dialect::OpenMetrics),
        (5, "sample a is separated from the other lines of family a".to_string())
    );
}

#[test]
fn openmetrics_types_gaugehistogram_stateset_info() {
    let text = "\
# TYPE q gaugehistogram
q_bucket{le=\"1\"} 2
q_bucket{le=\"+Inf\"} 3
q_gsum 4
q_gcount 3
# TYPE feature stateset
feature{feature=\"a\"} 1
feature{feature=\"b\"} 0
# TYPE build info
build_info{version=\"1.2\"} 1
# EOF
";
    let fams = pom(text);
    assert_eq!(
        summary(&fams),
        [
            ("q", MetricType::Histogram, 4),
            ("feature", MetricType::Gauge, 2),
            ("build", MetricType::Info, 1)
        ]
    );
    assert_eq!(fams[0].samples[2].name, "q_gsum");
}

#[test]
fn openmetrics_eof_is_required_last() {
    assert_eq!(
        strict_err("# TYPE a gauge\na 1\n", Dialect::OpenMetrics),
        (3, "missing # EOF at the end of OpenMetrics text".to_string())
    );
    assert_eq!(
        strict_err("a 1", Dialect::OpenMetrics),
        (2, "missing # EOF at the end of OpenMetrics text".to_string())
    );
    assert_eq!(strict_err("", Dialect::OpenMetrics).0, 1);
    assert_eq!(
        strict_err("a 1\n# EOF\nb 2\n", Dialect::OpenMetrics),
        (3, "text after # EOF".to_string())
    );
    // Trailing empty lines after EOF are fine; so is a missing final newline.
    assert_eq!(pom("a 1\n# EOF\n\n").len(), 1);
    assert_eq!(pom("a 1\n# EOF").len(), 1);
    // Lenient: the families are kept and the missing EOF is reported.
    let (fams, errors) = parse_lenient("a 1\nb 2\n", Dialect::OpenMetrics);
    assert_eq!(fams.len(), 2);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 3);
}

#[test]
fn lenient_keeps_every_good_sample_and_reports_every_bad_line() {
    let text = "\
# HELP vllm:num_requests_running Running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine=\"0\"} 3
vllm:num_requests_running{engine=\"1\" 4
vllm:num_requests_running{engine=\"2\"} 5
# TYPE vllm:kv_cache_usage_perc gauge
# TYPE vllm:kv_cache_usage_perc counter
vllm:kv_cache_usage_perc{engine=\"0\"} 0.5
vllm:kv_cache_usage_perc{engine=\"1\"} half
# TYPE vllm:e2e histogram
vllm:e2e_bucket{le=\"1\"} 1
vllm:e2e_bucket 2
vllm:e2e_count 2
";
    let (fams, errors) = parse_lenient(text, Dialect::Text004);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [4, 7, 9, 12], "{errors:#?}");
    assert_eq!(errors[2].reason, "invalid value \"half\" for sample vllm:kv_cache_usage_perc");
    assert_eq!(
        summary(&fams),
        [
            ("vllm:num_requests_running", MetricType::Gauge, 2),
            ("vllm:kv_cache_usage_perc", MetricType::Gauge, 1),
            ("vllm:e2e", MetricType::Histogram, 2)
        ]
    );
    let engines: Vec<_> = fams[0].samples.iter().map(|s| s.label("engine").unwrap()).collect();
    assert_eq!(engines, ["0", "2"]);
    // Strict stops at the first of them.
    assert_eq!(parse(text, Dialect::Text004).unwrap_err().line, 4);
}

#[test]
fn lenient_skips_lines_after_openmetrics_eof() {
    let (fams, errors) = parse_lenient("a 1\n# EOF\nb 2\nc 3\n", Dialect::OpenMetrics);
    assert_eq!(summary(&fams), [("a", MetricType::Untyped, 1)]);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4]);
}

#[test]
fn content_type_picks_dialect() {
    assert_eq!(Dialect::from_content_type(None), Dialect::Text004);
    assert_eq!(
        Dialect::from_content_type(Some(crate::expo::CONTENT_TYPE_OPENMETRICS)),
        Dialect::OpenMetrics
    );
    assert_eq!(
        Dialect::from_content_type(Some(crate::expo::CONTENT_TYPE_TEXT_004)),
        Dialect::Text004
    );
}

#[test]
fn colons_turned_into_underscores_by_python_openmetrics_are_repaired() {
    // prometheus/client_python#1177: HELP/TYPE keep the colon, sample lines do not.
    let text = "\
# HELP vllm:prompt_tokens Number of prefill tokens processed.
# TYPE vllm:prompt_tokens counter
vllm_prompt_tokens_total{engine=\"0\"} 5.0
vllm_prompt_tokens_created{engine=\"0\"} 1.7e+09
# TYPE vllm:e2e_request_latency_seconds histogram
vllm_e2e_request_latency_seconds_bucket{le=\"+Inf\"} 1.0
vllm_e2e_request_latency_seconds_count 1.0
vllm_e2e_request_latency_seconds_sum 0.5
# TYPE other_metric gauge
vllm_not_a_member 1
# EOF
";
    let fams = pom(text);
    assert_eq!(
        summary(&fams),
        [
            ("vllm:prompt_tokens", MetricType::Counter, 1),
            ("vllm:e2e_request_latency_seconds", MetricType::Histogram, 3),
            ("other_metric", MetricType::Gauge, 0),
            ("vllm_not_a_member", MetricType::Untyped, 1)
        ]
    );
    assert_eq!(fams[0].samples[0].name, "vllm:prompt_tokens_total");
    assert_eq!(fams[1].samples[2].name, "vllm:e2e_request_latency_seconds_sum");
}
