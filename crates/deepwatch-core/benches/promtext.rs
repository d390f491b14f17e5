//! Throughput of the promtext parser on real vLLM payloads (the committed fixture, written by
//! `prometheus_client` for a DP=2 deployment, and the same payload grown to 64 engines, about
//! 2.6 MB), in both dialects and in lenient mode, beside the `prometheus-parse` crate as peer.
//!
//! cargo bench -p deepwatch-core --bench promtext

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deepwatch_core::promtext::{parse, parse_lenient, Dialect};
use std::hint::black_box;

use deepwatch_core::promtext::payloads::{
    VLLM_0_12_OPENMETRICS as VLLM_OPENMETRICS, VLLM_0_12_TEXT as VLLM_TEXT,
};

/// The fixture with every `engine="0"` series repeated for `engines` data-parallel engines
/// (the fixture's own `engine="1"` series are dropped), as a large DP deployment exposes it.
fn scaled(text: &str, engines: usize) -> String {
    let mut out = String::with_capacity(text.len() * engines / 2);
    for line in text.lines() {
        if line.contains("engine=\"1\"") {
            continue;
        }
        if !line.contains("engine=\"0\"") {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        for engine in 0..engines {
            out.push_str(&line.replace("engine=\"0\"", &format!("engine=\"{engine}\"")));
            out.push('\n');
        }
    }
    out
}

/// `prometheus-parse` silently skips sample lines whose names contain a colon, i.e. every
/// vLLM series; it gets the payload with `vllm:` spelled `vllm_` so it reads every line.
fn peer_input(text: &str) -> String {
    text.replace("vllm:", "vllm_")
}

/// Samples the peer returns.
fn peer_parse(text: &str) -> usize {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("peer parses the payload");
    scrape.samples.len()
}

fn samples(text: &str, dialect: Dialect) -> usize {
    let families = parse(text, dialect).expect("payload parses");
    families.iter().map(|f| f.samples.len()).sum()
}

/// Samples as the peer counts them: it folds the buckets (or quantiles) of one histogram (or
/// summary) label set into one sample and keeps `_sum` and `_count` as samples of their own.
fn peer_equivalent(families: &[deepwatch_core::promtext::Family]) -> usize {
    let mut total = 0;
    for fam in families {
        let mut folded: Vec<Vec<&(String, String)>> = Vec::new();
        for s in &fam.samples {
            if s.label("le").is_none() && s.label("quantile").is_none() {
                total += 1;
                continue;
            }
            let key: Vec<_> =
                s.labels.iter().filter(|(k, _)| k != "le" && k != "quantile").collect();
            if !folded.contains(&key) {
                folded.push(key);
            }
        }
        total += folded.len();
    }
    total
}

/// Lines of the separate `<name>_created` gauges Python clients add (we drop them, the peer
/// keeps them).
fn created_series(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#') && l.contains("_created")).count()
}

fn bench_payload(c: &mut Criterion, label: &str, text: &str, openmetrics: Option<&str>) {
    let mut group = c.benchmark_group(format!("promtext/{label}"));
    group.throughput(Throughput::Bytes(text.len() as u64));
    if text.len() > 1_000_000 {
        group.sample_size(20);
    }
    group.bench_function(BenchmarkId::new("deepwatch", "text004"), |b| {
        b.iter(|| samples(black_box(text), Dialect::Text004))
    });
    group.bench_function(BenchmarkId::new("deepwatch", "text004_lenient"), |b| {
        b.iter(|| parse_lenient(black_box(text), Dialect::Text004).0.len())
    });
    let peer_text = peer_input(text);
    group.bench_function(BenchmarkId::new("prometheus-parse", "text004"), |b| {
        b.iter(|| peer_parse(black_box(&peer_text)))
    });
    if let Some(om) = openmetrics {
        group.throughput(Throughput::Bytes(om.len() as u64));
        group.bench_function(BenchmarkId::new("deepwatch", "openmetrics"), |b| {
            b.iter(|| samples(black_box(om), Dialect::OpenMetrics))
        });
    }
    group.finish();
}

fn promtext(c: &mut Criterion) {
    let large = scaled(VLLM_TEXT, 64);
    // Both parsers must read every series, or the comparison is meaningless.
    for (label, text) in [("vllm_dp2", VLLM_TEXT), ("vllm_dp64", large.as_str())] {
        let families = parse(text, Dialect::Text004).expect("payload parses");
        let expected = peer_equivalent(&families) + created_series(text);
        let peer = peer_parse(&peer_input(text));
        eprintln!(
            "{label}: {} bytes, {} samples ({} `_created` dropped); peer: {peer} samples of \
             {expected} expected, {} when given the colon names as they are",
            text.len(),
            families.iter().map(|f| f.samples.len()).sum::<usize>(),
            created_series(text),
            peer_parse(text),
        );
        assert_eq!(peer, expected, "peer skipped lines of {label}");
    }
    bench_payload(c, "vllm_dp2", VLLM_TEXT, Some(VLLM_OPENMETRICS));
    bench_payload(c, "vllm_dp64", &large, None);
}

criterion_group!(benches, promtext);
criterion_main!(benches);
