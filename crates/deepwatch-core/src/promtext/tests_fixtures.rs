//! Real engine payloads (`fixtures/`, written by `fixtures/generate.py` with the engines' own
//! client library or writer rules): family kinds and sample counts, histogram consistency, the
//! engines' bucket layouts from `crate::engines`, and 0.0.4 versus OpenMetrics agreement.

use super::*;
use crate::engines;

use super::payloads::{
    LLAMACPP_TEXT, SGLANG_TEXT, TGI_TEXT, VLLM_0_12_OPENMETRICS as VLLM_OPENMETRICS,
    VLLM_0_12_TEXT as VLLM_TEXT,
};

use MetricType::{Counter, Gauge, Histogram, Summary};

fn parse_clean(text: &str, dialect: Dialect) -> Vec<Family> {
    let strict = parse(text, dialect).unwrap_or_else(|e| panic!("{e}"));
    let (lenient, errors) = parse_lenient(text, dialect);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(strict, lenient);
    strict
}

fn family<'a>(fams: &'a [Family], name: &str) -> &'a Family {
    find(fams, name).unwrap_or_else(|| panic!("no family {name}"))
}

/// Asserts kind and sample count of each named family.
fn assert_families(fams: &[Family], expected: &[(&str, MetricType, usize)]) {
    for (name, kind, count) in expected {
        let fam = family(fams, name);
        assert_eq!((fam.kind, fam.samples.len()), (*kind, *count), "{name}");
    }
}

/// Every histogram series has cumulative buckets ending in `+Inf` equal to its `_count`, and a
/// `_sum`: proof that bucket, sum and count samples landed in the right family and series.
fn assert_histograms_consistent(fams: &[Family]) -> usize {
    let mut series = 0;
    for fam in fams.iter().filter(|f| f.kind == Histogram) {
        let without_le = |s: &Sample| -> Vec<(String, String)> {
            s.labels.iter().filter(|(k, _)| k != "le").cloned().collect()
        };
        let mut keys: Vec<Vec<(String, String)>> = Vec::new();
        for s in &fam.samples {
            let key = without_le(s);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in keys {
            let of = |suffix: &str| -> Vec<&Sample> {
                fam.samples
                    .iter()
                    .filter(|s| s.name.ends_with(suffix) && without_le(s) == key)
                    .collect()
            };
            let buckets = of("_bucket");
            let edges: Vec<f64> =
                buckets.iter().map(|s| s.label("le").unwrap().parse().unwrap()).collect();
            assert!(edges.windows(2).all(|w| w[0] < w[1]), "{} {key:?}", fam.name);
            assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value), "{}", fam.name);
            assert_eq!(edges.last(), Some(&f64::INFINITY), "{}", fam.name);
            let count = of("_count");
            assert_eq!(count.len(), 1, "{} {key:?}", fam.name);
            assert_eq!(buckets.last().unwrap().value, count[0].value, "{}", fam.name);
            assert_eq!(of("_sum").len(), 1, "{} {key:?}", fam.name);
            series += 1;
        }
    }
    series
}

fn edges_of(fam: &Family) -> Vec<f64> {
    let first = &fam.samples[0];
    let engine = first.label("engine");
    fam.samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket") && s.label("engine") == engine)
        .map(|s| s.label("le").unwrap().parse::<f64>().unwrap())
        .filter(|e| e.is_finite())
        .collect()
}

const VLLM_FAMILIES: &[(&str, MetricType, usize)] = &[
    (engines::vllm::NUM_REQUESTS_RUNNING, Gauge, 2),
    (engines::vllm::NUM_REQUESTS_WAITING, Gauge, 2),
    (engines::vllm::KV_CACHE_USAGE_PERC, Gauge, 2),
    ("vllm:engine_sleep_state", Gauge, 6),
    ("vllm:cache_config_info", Gauge, 2),
    ("vllm:prefix_cache_queries_total", Counter, 2),
    ("vllm:prefix_cache_hits_total", Counter, 2),
    (engines::vllm::NUM_PREEMPTIONS_TOTAL, Counter, 2),
    (engines::vllm::PROMPT_TOKENS_TOTAL, Counter, 2),
    (engines::vllm::GENERATION_TOKENS_TOTAL, Counter, 2),
    (engines::vllm::REQUEST_SUCCESS_TOTAL, Counter, 10),
    ("vllm:spec_decode_num_drafts_total", Counter, 2),
    ("vllm:spec_decode_num_accepted_tokens_per_pos_total", Counter, 2),
    // 1-2-5 buckets up to max_model_len 32768: 14 edges + Inf + sum + count, two engines.
    (engines::vllm::REQUEST_PROMPT_TOKENS, Histogram, 34),
    (engines::vllm::REQUEST_GENERATION_TOKENS, Histogram, 34),
    ("vllm:request_max_num_generation_tokens", Histogram, 34),
    ("vllm:request_params_max_tokens", Histogram, 34),
    ("vllm:request_params_n", Histogram, 16),
    (engines::vllm::ITERATION_TOKENS_TOTAL, Histogram, 32),
    (engines::vllm::TIME_TO_FIRST_TOKEN_SECONDS, Histogram, 50),
    (engines::vllm::INTER_TOKEN_LATENCY_SECONDS, Histogram, 44),
    (engines::vllm::REQUEST_TIME_PER_OUTPUT_TOKEN_SECONDS, Histogram, 44),
    (engines::vllm::E2E_REQUEST_LATENCY_SECONDS, Histogram, 48),
    (engines::vllm::REQUEST_QUEUE_TIME_SECONDS, Histogram, 48),
    ("vllm:request_inference_time_seconds", Histogram, 48),
    ("vllm:request_prefill_time_seconds", Histogram, 48),
    ("vllm:request_decode_time_seconds", Histogram, 48),
    ("http_requests_total", Counter, 6),
    ("http_request_size_bytes", Summary, 8),
    ("http_response_size_bytes", Summary, 8),
    ("http_request_duration_highr_seconds", Histogram, 24),
    ("http_request_duration_seconds", Histogram, 24),
    ("process_cpu_seconds_total", Counter, 1),
    ("process_resident_memory_bytes", Gauge, 1),
    ("python_info", Gauge, 1),
    ("python_gc_objects_collected_total", Counter, 3),
];

#[test]
fn vllm_text_payload() {
    let fams = parse_clean(VLLM_TEXT, Dialect::Text004);
    assert_families(&fams, VLLM_FAMILIES);
    // 29 vllm, 5 http, 10 process/python families; the 29 `_created` gauges are gone.
    assert_eq!(fams.len(), 44);
    assert_eq!(fams.iter().filter(|f| f.name.starts_with("vllm:")).count(), 29);
    assert!(!fams.iter().any(|f| f.name.ends_with("_created")));
    assert_eq!(assert_histograms_consistent(&fams), 14 * 2 + 1 + 4);
    // Bucket layouts are the ones `engines` declares.
    let ttft = family(&fams, engines::vllm::TIME_TO_FIRST_TOKEN_SECONDS);
    assert_eq!(edges_of(ttft), engines::vllm::TTFT_BUCKETS);
    let itl = family(&fams, engines::vllm::INTER_TOKEN_LATENCY_SECONDS);
    assert_eq!(edges_of(itl), engines::vllm::ITL_BUCKETS);
    let e2e = family(&fams, engines::vllm::E2E_REQUEST_LATENCY_SECONDS);
    assert_eq!(edges_of(e2e), engines::vllm::REQUEST_LATENCY_BUCKETS);
    let iteration = family(&fams, engines::vllm::ITERATION_TOKENS_TOTAL);
    assert_eq!(edges_of(iteration), engines::vllm::ITERATION_TOKENS_BUCKETS);
    // Every vLLM series carries model_name and engine (never "last series wins").
    for fam in fams.iter().filter(|f| f.name.starts_with("vllm:") && !f.name.contains("info")) {
        for s in &fam.samples {
            assert_eq!(s.label("model_name"), Some("deepseek-ai/DeepSeek-V3"), "{}", s.name);
            assert!(matches!(s.label("engine"), Some("0" | "1")), "{}", s.name);
        }
    }
    let success = family(&fams, engines::vllm::REQUEST_SUCCESS_TOTAL);
    let reasons: Vec<_> =
        success.samples.iter().filter_map(|s| s.label("finished_reason")).take(5).collect();
    assert_eq!(reasons, engines::vllm::FINISHED_REASONS);
}

#[test]
fn vllm_openmetrics_payload_matches_the_text_one() {
    let om = parse_clean(VLLM_OPENMETRICS, Dialect::OpenMetrics);
    assert_families(&om, VLLM_FAMILIES);
    assert_eq!(om.len(), 44);
    let text = parse_clean(VLLM_TEXT, Dialect::Text004);
    // Engine and HTTP families are deterministic: identical samples and help in both
    // dialects (process metrics were read twice and may differ).
    for t in text.iter().filter(|f| f.name.starts_with("vllm:") || f.name.starts_with("http_")) {
        let o = family(&om, &t.name);
        assert_eq!((&o.help, o.kind), (&t.help, t.kind), "{}", t.name);
        assert_eq!(o.samples, t.samples, "{}", t.name);
    }
    // OpenMetrics names counter families without `_total`.
    assert_eq!(family(&om, engines::vllm::PROMPT_TOKENS_TOTAL).name, "vllm:prompt_tokens");
    assert_eq!(family(&text, engines::vllm::PROMPT_TOKENS_TOTAL).name, "vllm:prompt_tokens_total");
}

#[test]
fn sglang_multiprocess_payload() {
    let fams = parse_clean(SGLANG_TEXT, Dialect::Text004);
    assert_families(
        &fams,
        &[
            (engines::sglang::NUM_RUNNING_REQS, Gauge, 2),
            (engines::sglang::NUM_QUEUE_REQS, Gauge, 2),
            (engines::sglang::TOKEN_USAGE, Gauge, 2),
            ("sglang:gen_throughput", Gauge, 2),
            ("sglang:cache_hit_rate", Gauge, 2),
            (engines::sglang::REALTIME_TOKENS_TOTAL, Counter, 6),
            (engines::sglang::PROMPT_TOKENS_TOTAL, Counter, 1),
            (engines::sglang::GENERATION_TOKENS_TOTAL, Counter, 1),
            ("sglang:num_requests_total", Counter, 1),
            ("sglang:num_aborted_requests_total", Counter, 1),
            // 36 edges (from 0.0) + Inf + sum + count, one series per TP rank.
            ("sglang:queue_time_seconds", Histogram, 78),
            (engines::sglang::TIME_TO_FIRST_TOKEN_SECONDS, Histogram, 21),
            (engines::sglang::INTER_TOKEN_LATENCY_SECONDS, Histogram, 26),
            (engines::sglang::E2E_REQUEST_LATENCY_SECONDS, Histogram, 25),
        ],
    );
    assert_eq!(fams.len(), 19);
    assert_eq!(assert_histograms_consistent(&fams), 5);
    let ranks: Vec<_> = family(&fams, engines::sglang::NUM_RUNNING_REQS)
        .samples
        .iter()
        .map(|s| s.label("tp_rank").unwrap())
        .collect();
    assert_eq!(ranks, ["0", "1"]);
}

#[test]
fn tgi_payload_without_help_and_with_blank_lines() {
    let fams = parse_clean(TGI_TEXT, Dialect::Text004);
    assert_families(
        &fams,
        &[
            (engines::tgi::QUEUE_SIZE, Gauge, 1),
            (engines::tgi::BATCH_CURRENT_SIZE, Gauge, 1),
            // metrics-exporter-prometheus writes counters without `_total`.
            (engines::tgi::REQUEST_SUCCESS, Counter, 1),
            (engines::tgi::REQUEST_FAILURE, Counter, 2),
            ("tgi_batch_inference_count", Counter, 2),
            // 35 geometric duration buckets + Inf + sum + count.
            (engines::tgi::REQUEST_DURATION, Histogram, 38),
            (engines::tgi::REQUEST_QUEUE_DURATION, Histogram, 38),
            (engines::tgi::REQUEST_MEAN_TIME_PER_TOKEN_DURATION, Histogram, 38),
            (engines::tgi::REQUEST_INPUT_LENGTH, Histogram, 103),
            (engines::tgi::REQUEST_GENERATED_TOKENS, Histogram, 103),
            (engines::tgi::BATCH_INFERENCE_DURATION, Histogram, 76),
            ("tgi_batch_next_size", Histogram, 14),
        ],
    );
    assert_eq!(fams.len(), 21);
    assert!(fams.iter().all(|f| f.help.is_none()));
    assert_eq!(assert_histograms_consistent(&fams), 15);
    let duration = family(&fams, engines::tgi::REQUEST_DURATION);
    let edges = edges_of(duration);
    assert_eq!(edges.len(), 35);
    assert!((edges[0] - 0.00015).abs() < 1e-12 && (edges[34] - 145.61).abs() < 0.01);
}

#[test]
fn llamacpp_payload_with_cpp_number_formatting() {
    let fams = parse_clean(LLAMACPP_TEXT, Dialect::Text004);
    assert_eq!(fams.len(), 13);
    assert_eq!(fams.iter().filter(|f| f.kind == Counter).count(), 7);
    assert_eq!(fams.iter().filter(|f| f.kind == Gauge).count(), 6);
    assert!(fams.iter().all(|f| f.samples.len() == 1 && f.samples[0].labels.is_empty()));
    // `<< double` prints six significant digits and switches to an exponent.
    let prompt = family(&fams, engines::llamacpp::PROMPT_TOKENS_TOTAL);
    assert_eq!(prompt.samples[0].value, 1.83451e6);
    let kv = family(&fams, engines::llamacpp::KV_CACHE_USAGE_RATIO);
    assert_eq!(kv.samples[0].value, 0.412231);
    assert_eq!(kv.help.as_deref(), Some("KV-cache usage. 1 means 100 percent usage."));
    assert_eq!(family(&fams, "llamacpp:n_tokens_max").kind, Counter);
}

#[test]
fn crlf_payloads_parse_the_same() {
    for text in [VLLM_TEXT, SGLANG_TEXT, TGI_TEXT, LLAMACPP_TEXT] {
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(parse_clean(&crlf, Dialect::Text004), parse_clean(text, Dialect::Text004));
    }
}

#[test]
fn one_broken_line_loses_only_its_sample() {
    let broken =
        VLLM_TEXT.replacen("model_name=\"deepseek-ai/DeepSeek-V3\"} ", "model_name=\"x ", 1);
    let bad_line = VLLM_TEXT
        .lines()
        .position(|l| l.contains("model_name=\"deepseek-ai/DeepSeek-V3\"} "))
        .unwrap()
        + 1;
    let (fams, errors) = parse_lenient(&broken, Dialect::Text004);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, bad_line);
    let all = parse_clean(VLLM_TEXT, Dialect::Text004);
    let count = |f: &[Family]| f.iter().map(|f| f.samples.len()).sum::<usize>();
    assert_eq!(count(&fams), count(&all) - 1);
    assert_eq!(parse(&broken, Dialect::Text004).unwrap_err().line, bad_line);
}

/// Replays the committed fuzz seeds (`fixtures/fuzz-seeds/`, also the fuzzer's starting
/// corpus) with the fuzz target's invariants, so CI covers them without a nightly toolchain.
#[test]
fn fuzz_seeds_replay_without_panics() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/promtext/fixtures/fuzz-seeds");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).expect("seed directory") {
        let path = entry.expect("seed entry").path();
        let bytes = std::fs::read(&path).expect("seed file");
        let text = String::from_utf8_lossy(&bytes);
        let lines = text.split('\n').count();
        for dialect in [Dialect::Text004, Dialect::OpenMetrics] {
            let (families, errors) = parse_lenient(&text, dialect);
            for e in &errors {
                assert!(e.line >= 1 && e.line <= lines + 1, "{path:?} {e:?}");
                assert!(!e.reason.is_empty() && e.reason.len() < 400, "{path:?} {e:?}");
            }
            match parse(&text, dialect) {
                Ok(strict) => {
                    assert!(errors.is_empty(), "{path:?} {errors:?}");
                    assert_eq!(strict.len(), families.len(), "{path:?}");
                }
                Err(e) => assert_eq!(errors.first(), Some(&e), "{path:?}"),
            }
        }
        replayed += 1;
    }
    assert!(replayed >= 10, "only {replayed} seeds");
}

#[test]
fn multibyte_seed_reports_each_bad_line() {
    let text = include_str!("fixtures/fuzz-seeds/multibyte.txt");
    let (fams, errors) = parse_lenient(text, Dialect::Text004);
    let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
    assert_eq!(
        got,
        [
            (1, "invalid character 'é' after metric name foo"),
            (2, "invalid label name at \"é=\\\"1\\\"} 2\" in m"),
            (3, "expected a space before the value of sample m"),
            (4, "expected a metric name, found \"€ 1\""),
            (5, "invalid timestamp \"é\" for sample m"),
        ]
    );
    // The last line's unknown escape is kept as written.
    assert_eq!(fams[0].samples[0].label("a"), Some("\\é"));
}
