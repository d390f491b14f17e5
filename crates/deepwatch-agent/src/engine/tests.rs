//! Engine collector tests: one fixture per engine kind (and vLLM's old names), stall detection
//! under paused time, dead/garbled/oversized/hung engines over real HTTP.

use super::*;
use deepwatch_core::expo::Format;

const VLLM: &str = include_str!("../../tests/fixtures/vllm_v0_12.txt");
/// A live vLLM 0.32 scrape (scripts/real-engine.sh), served as `text/plain; version=1.0.0`.
const VLLM_032: &str = include_str!("../../tests/fixtures/vllm_v0_32_real.txt");
const VLLM_OLD: &str = include_str!("../../tests/fixtures/vllm_v0_7_old_names.txt");
const SGLANG: &str = include_str!("../../tests/fixtures/sglang.txt");
const TGI: &str = include_str!("../../tests/fixtures/tgi.txt");
const LLAMACPP: &str = include_str!("../../tests/fixtures/llamacpp.txt");
const NIM: &str = include_str!("../../tests/fixtures/nim.txt");

fn engine(name: &str, kind: EngineKind) -> EngineConfig {
    EngineConfig {
        name: name.into(),
        url: "http://127.0.0.1:9/metrics".into(),
        kind,
        stall_after: std::time::Duration::from_secs(60),
        ..EngineConfig::default()
    }
}

fn collector(configs: &[EngineConfig]) -> EngineCollector {
    EngineCollector::new(configs).unwrap()
}

fn render(c: &EngineCollector, format: Format) -> String {
    let mut sink = MetricSink::new(format);
    c.collect(&mut sink).unwrap();
    sink.render()
}

fn ok(body: &str) -> Result<(String, Option<String>), ScrapeError> {
    Ok((body.to_string(), Some("text/plain; version=0.0.4".into())))
}

fn has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "missing line {line}\n{text}");
}

const M: &str = "deepseek-ai/DeepSeek-V3";

#[tokio::test]
async fn vllm_is_detected_and_normalized_summing_data_parallel_ranks() {
    let c = collector(&[engine("v", EngineKind::Auto)]);
    c.watches()[0].ingest(ok(VLLM), Instant::now());
    let t = render(&c, Format::Text004);
    let l = format!("engine=\"v\",engine_kind=\"vllm\",model=\"{M}\"");
    has(&t, "deepwatch_engine_up{engine=\"v\",engine_kind=\"vllm\"} 1");
    has(&t, "deepwatch_engine_stalled{engine=\"v\",engine_kind=\"vllm\"} 0");
    has(&t, &format!("deepwatch_engine_requests_running{{{l}}} 15"));
    has(&t, &format!("deepwatch_engine_requests_waiting{{{l}}} 4"));
    has(&t, &format!("deepwatch_engine_kv_cache_usage_ratio{{{l}}} 0.6"));
    has(&t, &format!("deepwatch_engine_prompt_tokens_total{{{l}}} 200000"));
    has(&t, &format!("deepwatch_engine_generation_tokens_total{{{l}}} 800000"));
    has(&t, &format!("deepwatch_engine_preemptions_total{{{l}}} 7"));
    has(
        &t,
        &format!("deepwatch_engine_requests_finished_total{{{l},finish_reason=\"stop\"}} 1801"),
    );
    // vLLM's own TTFT edges: 1 then 2.5, no 2.
    has(&t, &format!("deepwatch_engine_time_to_first_token_seconds_bucket{{{l},le=\"2.5\"}} 1859"));
    assert!(!t
        .contains(&format!("deepwatch_engine_time_to_first_token_seconds_bucket{{{l},le=\"2\"}}")));
    has(&t, &format!("deepwatch_engine_time_to_first_token_seconds_count{{{l}}} 1887"));
    has(
        &t,
        &format!("deepwatch_engine_inter_token_latency_seconds_bucket{{{l},le=\"0.01\"}} 70000"),
    );
    has(&t, &format!("deepwatch_engine_e2e_request_latency_seconds_sum{{{l}}} 17923.5"));
}

/// Sum of every sample named `name` in a payload.
fn native_sum(families: &[Family], name: &str) -> f64 {
    families.iter().flat_map(|f| &f.samples).filter(|s| s.name == name).map(|s| s.value).sum()
}

#[tokio::test]
async fn a_live_vllm_0_32_scrape_parses_cleanly_and_every_mapped_family_keeps_its_totals() {
    let c = collector(&[engine("v", EngineKind::Auto)]);
    let w = &c.watches()[0];
    let content_type = "text/plain; version=1.0.0; charset=utf-8";
    w.ingest(Ok((VLLM_032.to_string(), Some(content_type.into()))), Instant::now());
    assert!(w.is_up());
    assert_eq!(w.last_error(), None, "vLLM 0.32's payload must parse without a skipped line");
    let families = promtext::parse(VLLM_032, Dialect::from_content_type(Some(content_type)))
        .expect("strict parse");
    let n = normalize::normalize(EngineKind::Vllm, &families, "");
    // Every vLLM row of the alias table finds its family in 0.32 (old-only names aside).
    for alias in normalize::ALIASES.iter().filter(|a| a.kind == EngineKind::Vllm) {
        let matched = n.matched.iter().find(|(canonical, _)| *canonical == alias.spec.name);
        assert_eq!(matched.map(|m| m.1), Some(alias.names[0]), "{} unmatched", alias.spec.name);
    }
    let t = render(&c, Format::Text004);
    let l = "engine=\"v\",engine_kind=\"vllm\",model=\"deepseek-tiny\"";
    // Histograms: the normalized count and sum are the engine's own.
    for alias in normalize::ALIASES.iter().filter(|a| a.kind == EngineKind::Vllm) {
        if alias.take != normalize::Take::Histogram {
            continue;
        }
        let count = native_sum(&families, &format!("{}_count", alias.names[0]));
        assert!(count > 0.0, "{} observed nothing in the capture", alias.names[0]);
        has(&t, &format!("{}_count{{{l}}} {count}", alias.spec.name));
        let sum = native_sum(&families, &format!("{}_sum", alias.names[0]));
        let line = t
            .lines()
            .find(|x| x.starts_with(&format!("{}_sum{{{l}}} ", alias.spec.name)))
            .unwrap_or_else(|| panic!("no {}_sum", alias.spec.name));
        let got: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((got - sum).abs() < 1e-9 * sum.max(1.0), "{line} vs {sum}");
    }
    for (alias, native) in [
        (&cat::ENGINE_PROMPT_TOKENS, "vllm:prompt_tokens_total"),
        (&cat::ENGINE_GENERATION_TOKENS, "vllm:generation_tokens_total"),
        (&cat::ENGINE_PREFIX_CACHE_QUERIES, "vllm:prefix_cache_queries_total"),
        (&cat::ENGINE_PREFIX_CACHE_HITS, "vllm:prefix_cache_hits_total"),
        (&cat::ENGINE_PREEMPTIONS, "vllm:num_preemptions_total"),
    ] {
        has(&t, &format!("{}{{{l}}} {}", alias.name, native_sum(&families, native)));
    }
    // Finish reasons and waiting reasons keep vLLM's label values.
    for reason in ["stop", "length", "abort", "error", "repetition"] {
        assert!(
            t.contains(&format!(
                "deepwatch_engine_requests_finished_total{{{l},finish_reason=\"{reason}\"}}"
            )),
            "finish reason {reason} missing\n{t}"
        );
    }
    has(
        &t,
        &format!("deepwatch_engine_requests_finished_total{{{l},finish_reason=\"length\"}} 20"),
    );
    for reason in ["capacity", "deferred"] {
        has(
            &t,
            &format!("deepwatch_engine_requests_waiting_by_reason{{{l},reason=\"{reason}\"}} 0"),
        );
    }
    // vLLM's per-request length buckets follow max_model_len (512): 1, 2, 5, ..., 500.
    has(&t, &format!("deepwatch_engine_request_prompt_tokens_bucket{{{l},le=\"500\"}} 21"));
}

#[tokio::test]
async fn old_vllm_names_map_through_the_alias_table_to_the_same_metrics() {
    let c = collector(&[engine("old", EngineKind::Vllm)]);
    c.watches()[0].ingest(ok(VLLM_OLD), Instant::now());
    let t = render(&c, Format::Text004);
    let l = format!("engine=\"old\",engine_kind=\"vllm\",model=\"{M}\"");
    // gpu_cache_usage_perc → kv_cache_usage_ratio, time_per_output_token_seconds → ITL.
    has(&t, &format!("deepwatch_engine_kv_cache_usage_ratio{{{l}}} 0.5"));
    has(&t, &format!("deepwatch_engine_inter_token_latency_seconds_count{{{l}}} 449000"));
    let n = normalize::normalize(
        EngineKind::Vllm,
        &promtext::parse(VLLM_OLD, Dialect::Text004).unwrap(),
        "",
    );
    assert!(n.matched.contains(&(cat::ENGINE_KV_CACHE_USAGE.name, "vllm:gpu_cache_usage_perc")));
    assert!(n.matched.contains(&(cat::ENGINE_ITL.name, "vllm:time_per_output_token_seconds")));
}

#[tokio::test]
async fn sglang_tgi_and_llamacpp_fixtures_normalize() {
    let mut tgi = engine("t", EngineKind::Auto);
    tgi.model = "Qwen2.5-7B".into();
    let c = collector(&[engine("s", EngineKind::Auto), tgi, engine("l", EngineKind::Auto)]);
    c.watches()[0].ingest(ok(SGLANG), Instant::now());
    c.watches()[1].ingest(ok(TGI), Instant::now());
    c.watches()[2].ingest(ok(LLAMACPP), Instant::now());
    let t = render(&c, Format::Text004);
    let s = format!("engine=\"s\",engine_kind=\"sglang\",model=\"{M}\"");
    has(&t, &format!("deepwatch_engine_requests_running{{{s}}} 24"));
    has(&t, &format!("deepwatch_engine_kv_cache_usage_ratio{{{s}}} 0.62"));
    has(&t, &format!("deepwatch_engine_preemptions_total{{{s}}} 6"));
    has(
        &t,
        &format!("deepwatch_engine_inter_token_latency_seconds_bucket{{{s},le=\"0.002\"}} 65797"),
    );
    has(&t, &format!("deepwatch_engine_time_to_first_token_seconds_sum{{{s}}} 840"));
    let g = "engine=\"t\",engine_kind=\"tgi\",model=\"Qwen2.5-7B\"";
    has(&t, &format!("deepwatch_engine_requests_running{{{g}}} 16"));
    has(&t, &format!("deepwatch_engine_requests_waiting{{{g}}} 4"));
    has(&t, &format!("deepwatch_engine_prompt_tokens_total{{{g}}} 610000"));
    has(&t, &format!("deepwatch_engine_generation_tokens_total{{{g}}} 402000"));
    has(
        &t,
        &format!("deepwatch_engine_e2e_request_latency_seconds_bucket{{{g},le=\"0.00015\"}} 71"),
    );
    assert!(!t.contains(&format!("deepwatch_engine_time_to_first_token_seconds_count{{{g}}}")));
    // TGI's queue and token-length histograms feed the same panels as vLLM's.
    has(&t, &format!("deepwatch_engine_request_queue_time_seconds_count{{{g}}} 1500"));
    has(&t, &format!("deepwatch_engine_request_prompt_tokens_count{{{g}}} 1500"));
    let l = "engine=\"l\",engine_kind=\"llamacpp\",model=\"\"";
    has(&t, &format!("deepwatch_engine_requests_running{{{l}}} 2"));
    has(&t, &format!("deepwatch_engine_requests_waiting{{{l}}} 1"));
    has(&t, &format!("deepwatch_engine_kv_cache_usage_ratio{{{l}}} 0.25"));
    has(&t, &format!("deepwatch_engine_generation_tokens_total{{{l}}} 98110"));
}

#[tokio::test]
async fn raw_samples_keep_their_names_and_labels_plus_deepwatch_engine() {
    let c = collector(&[engine("v", EngineKind::Auto), engine("t", EngineKind::Auto)]);
    c.watches()[0].ingest(ok(VLLM), Instant::now());
    c.watches()[1].ingest(ok(TGI), Instant::now());
    let t = render(&c, Format::Text004);
    has(&t, "# TYPE vllm:generation_tokens_total counter");
    has(&t, &format!("vllm:generation_tokens_total{{deepwatch_engine=\"v\",engine=\"1\",model_name=\"{M}\"}} 350000"));
    has(&t, &format!("vllm:iteration_tokens_total_bucket{{deepwatch_engine=\"v\",engine=\"0\",model_name=\"{M}\",le=\"+Inf\"}} 52000"));
    has(&t, "tgi_request_failure{deepwatch_engine=\"t\",err=\"overloaded\"} 12");
    // `_created` gauges are creation times, not series.
    assert!(!t.contains("_created"), "{t}");
    // OpenMetrics: TGI's counters lack `_total`, so they are re-exported as unknown.
    let om = render(&c, Format::OpenMetrics);
    assert!(om.contains("# TYPE tgi_request_failure unknown\n"), "{om}");
    assert!(om.contains("# TYPE vllm:generation_tokens counter\n"), "{om}");
    assert!(om.ends_with("# EOF\n"));
}

#[tokio::test(start_paused = true)]
async fn running_requests_without_progress_for_stall_after_secs_is_a_stall() {
    let c = collector(&[engine("v", EngineKind::Vllm)]);
    let w = &c.watches()[0];
    let stalled = |c: &EngineCollector| {
        render(c, Format::Text004)
            .contains("deepwatch_engine_stalled{engine=\"v\",engine_kind=\"vllm\"} 1")
    };
    // Same payload every 5 s: 15 requests running, counters frozen (the engine is hung but
    // /metrics still answers).
    for _ in 0..12 {
        w.ingest(ok(VLLM), Instant::now());
        assert!(!stalled(&c));
        tokio::time::advance(Duration::from_secs(5)).await;
    }
    w.ingest(ok(VLLM), Instant::now());
    assert!(stalled(&c), "60 s without progress must be a stall");
    // One generated token later: progress again.
    let moved = VLLM.replace("vllm:generation_tokens_total{engine=\"0\",model_name=\"deepseek-ai/DeepSeek-V3\"} 450000.0", "vllm:generation_tokens_total{engine=\"0\",model_name=\"deepseek-ai/DeepSeek-V3\"} 450001.0");
    assert_ne!(moved, VLLM);
    w.ingest(ok(&moved), Instant::now());
    assert!(!stalled(&c));
    // An idle engine (nothing running) is never stalled, however long the counters rest.
    let idle = moved
        .replace(
            "vllm:num_requests_running{engine=\"0\",model_name=\"deepseek-ai/DeepSeek-V3\"} 7.0",
            "vllm:num_requests_running{engine=\"0\",model_name=\"deepseek-ai/DeepSeek-V3\"} 0.0",
        )
        .replace(
            "vllm:num_requests_running{engine=\"1\",model_name=\"deepseek-ai/DeepSeek-V3\"} 8.0",
            "vllm:num_requests_running{engine=\"1\",model_name=\"deepseek-ai/DeepSeek-V3\"} 0.0",
        );
    for _ in 0..30 {
        tokio::time::advance(Duration::from_secs(5)).await;
        w.ingest(ok(&idle), Instant::now());
    }
    assert!(!stalled(&c));
}

#[tokio::test(start_paused = true)]
async fn a_dead_engine_is_down_serves_its_cached_state_then_goes_stale() {
    let c = collector(&[engine("v", EngineKind::Auto)]);
    let w = &c.watches()[0];
    w.ingest(ok(VLLM), Instant::now());
    let refused = || {
        Err(ScrapeError::Connect {
            url: "http://127.0.0.1:9/metrics".into(),
            message: "Connection refused".into(),
        })
    };
    w.ingest(refused(), Instant::now());
    let t = render(&c, Format::Text004);
    has(&t, "deepwatch_engine_up{engine=\"v\",engine_kind=\"vllm\"} 0");
    has(&t, "deepwatch_engine_scrape_errors_total{engine=\"v\",reason=\"connect\"} 1");
    assert!(t.contains("deepwatch_engine_requests_running{"), "cached state is served: {t}");
    tokio::time::advance(Duration::from_secs(26)).await;
    let t = render(&c, Format::Text004);
    has(&t, "deepwatch_engine_up{engine=\"v\",engine_kind=\"vllm\"} 0");
    assert!(!t.contains("deepwatch_engine_requests_running{"), "stale state dropped: {t}");
    assert!(!t.contains("vllm:num_requests_running{"), "{t}");
}

#[tokio::test]
async fn garbage_fails_the_scrape_and_truncation_keeps_the_good_lines() {
    let c = collector(&[engine("v", EngineKind::Auto)]);
    let w = &c.watches()[0];
    w.ingest(ok("<html><body>502 Bad Gateway</body></html>\n"), Instant::now());
    let t = render(&c, Format::Text004);
    has(&t, "deepwatch_engine_up{engine=\"v\",engine_kind=\"unknown\"} 0");
    has(&t, "deepwatch_engine_scrape_errors_total{engine=\"v\",reason=\"parse\"} 1");
    // Cut in the middle of a sample line, as a dropped connection leaves it.
    let cut = &VLLM[..VLLM.find("vllm:num_requests_waiting{engine=\"1\"").unwrap() + 30];
    w.ingest(ok(cut), Instant::now());
    let t = render(&c, Format::Text004);
    has(&t, "deepwatch_engine_up{engine=\"v\",engine_kind=\"vllm\"} 1");
    has(&t, "deepwatch_engine_scrape_errors_total{engine=\"v\",reason=\"parse\"} 2");
    has(&t, &format!("deepwatch_engine_requests_running{{engine=\"v\",engine_kind=\"vllm\",model=\"{M}\"}} 15"));
}

#[tokio::test]
async fn nim_is_detected_by_its_unprefixed_vllm_names() {
    let c = collector(&[engine("n", EngineKind::Auto)]);
    c.watches()[0].ingest(ok(NIM), Instant::now());
    let t = render(&c, Format::Text004);
    let l = "engine=\"n\",engine_kind=\"nim\",model=\"meta/llama-3.1-8b-instruct\"";
    has(&t, &format!("deepwatch_engine_requests_running{{{l}}} 3"));
    has(&t, &format!("deepwatch_engine_kv_cache_usage_ratio{{{l}}} 0.043"));
    has(&t, &format!("deepwatch_engine_generation_tokens_total{{{l}}} 16322"));
    has(&t, &format!("deepwatch_engine_time_to_first_token_seconds_bucket{{{l},le=\"0.04\"}} 31"));
    has(&t, &format!("deepwatch_engine_inter_token_latency_seconds_count{{{l}}} 16261"));
}

#[tokio::test]
async fn an_engine_with_a_label_explosion_is_cut_at_max_series_and_counted() {
    // 100,000 per-request series beside the normal vLLM payload.
    let mut body = VLLM.to_string();
    body.push_str("# TYPE vllm:request_debug gauge\n");
    for i in 0..100_000 {
        body.push_str(&format!("vllm:request_debug{{request_id=\"r{i}\"}} 1\n"));
    }
    let mut cfg = engine("v", EngineKind::Auto);
    cfg.max_series = 5_000;
    let c = collector(&[cfg]);
    let w = &c.watches()[0];
    w.ingest(ok(&body), Instant::now());
    let t = render(&c, Format::Text004);
    let raw = t.lines().filter(|l| l.starts_with("vllm:")).count();
    // Cut at max_series (`_created` samples are kept but never re-exported).
    assert!((4_990..=5_000).contains(&raw), "raw re-export is cut at max_series: {raw}");
    has(&t, "deepwatch_engine_scrape_errors_total{engine=\"v\",reason=\"too_many_series\"} 1");
    has(&t, "deepwatch_engine_up{engine=\"v\",engine_kind=\"vllm\"} 1");
    // The normalized values come from the whole payload.
    assert!(
        t.contains(&format!(
            "deepwatch_engine_requests_running{{engine=\"v\",engine_kind=\"vllm\",model=\"{M}\"}}"
        )),
        "{t}"
    );
    assert!(w.last_error().unwrap().contains("max_series = 5000"));
    // Under the cap again: nothing more is counted and nothing is cut.
    w.ingest(ok(VLLM), Instant::now());
    let t = render(&c, Format::Text004);
    has(&t, "deepwatch_engine_scrape_errors_total{engine=\"v\",reason=\"too_many_series\"} 1");
    assert_eq!(t.lines().filter(|l| l.starts_with("vllm:request_debug")).count(), 0);
    assert!(w.last_error().is_none());
}
