//! Overload: more concurrent long requests than `--max-num-seqs` (8). vLLM queues the rest, so
//! its queue time and everyone's time to first token climb; with the generated rules
//! (time-scaled) Prometheus fires the TTFT and engine-queue alerts, Alertmanager hands them to
//! the analyzer, and the analyzer's root-cause report names the engine's queue. Afterwards
//! every engine panel of the Model dashboard is run against the Prometheus that watched it.

use super::observe::{start_stack, Observed, ENGINE};
use super::vllm::MODEL;
use crate::support::grafana::{self, Builtins, Prom};
use deepwatch_core::catalog::{agent, gateway};
use deepwatch_lab::load::{self, Dist, LoadOptions, Mode, Silent};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Generated `for:` durations and windows divided by this (1 min becomes 5 s).
const TIME_SCALE: u64 = 12;
const BASELINE: Duration = Duration::from_secs(20);
const OVERLOAD: Duration = Duration::from_secs(50);
/// Four times `--max-num-seqs`: three quarters of the requests wait.
const OVERLOAD_CONCURRENCY: usize = 32;

fn closed_loop(target: &str, concurrency: usize, output: u64, duration: Duration) -> LoadOptions {
    LoadOptions {
        target: target.to_string(),
        model: MODEL.into(),
        mode: Mode::Closed { concurrency },
        max_requests: 1_000_000,
        duration,
        prompt_tokens: Dist::Fixed { value: 64 },
        output_tokens: Dist::Fixed { value: output },
        timeout: Duration::from_secs(120),
        ..Default::default()
    }
}

/// One number from an instant query (`None` when it has no finite result).
async fn scalar(api: &Prom, query: &str) -> Option<f64> {
    let result = api.instant(query).await;
    result
        .first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

fn queue_p90() -> String {
    format!(
        "histogram_quantile(0.9, sum by (le) (rate({}_bucket{{engine=\"{ENGINE}\"}}[10s])))",
        agent::ENGINE_QUEUE_TIME.name
    )
}

fn ttft_p99() -> String {
    format!(
        "histogram_quantile(0.99, sum by (le) (rate({}_bucket[10s])))",
        gateway::TIME_TO_FIRST_TOKEN.name
    )
}

/// The first firing instance of `alertname`, when it fired after `since`.
fn fired(s: &Observed, alertname: &str, since: Instant) -> Option<(Instant, String)> {
    s.watcher.instances(alertname).into_iter().find_map(|a| {
        let at = a.firing.filter(|t| *t >= since)?;
        Some((at, a.labels.get("severity").cloned().unwrap_or_default()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs vLLM: scripts/real-engine.sh test"]
async fn overload_fires_ttft_and_queue_alerts_and_the_report_names_the_engine_queue() {
    let ctx = &super::ctx().await;
    let s = start_stack(ctx, TIME_SCALE, 60).await;
    let api = Prom::new(&s.prom.url());
    let start_unix = api.now().await;

    // Baseline: two short requests at a time, nothing waits.
    let baseline = load::run(closed_loop(&s.gateway_url, 2, 32, BASELINE), Arc::new(Silent)).await;
    let baseline = baseline.expect("baseline load");
    assert_eq!(baseline.summary.failed, 0, "baseline: {}", baseline.summary.table());
    let base_queue = scalar(&api, &queue_p90()).await.unwrap_or(0.0);
    let base_ttft = scalar(&api, &ttft_p99()).await.expect("gateway TTFT at baseline");
    eprintln!("baseline: queue p90 {base_queue:.3}s, gateway TTFT p99 {base_ttft:.3}s");

    // Overload.
    let started = Instant::now();
    let options = closed_loop(&s.gateway_url, OVERLOAD_CONCURRENCY, 400, OVERLOAD);
    let overload = tokio::spawn(async move { load::run(options, Arc::new(Silent)).await });
    let wanted = ["TimeToFirstTokenHigh", "EngineQueueTimeHigh", "EngineQueueDepthHigh"];
    let mut peak_queue = 0.0f64;
    let mut peak_ttft = 0.0f64;
    let mut peak_waiting = 0.0f64;
    let waiting = format!("sum({}{{engine=\"{ENGINE}\"}})", agent::ENGINE_REQUESTS_WAITING.name);
    let deadline = started + OVERLOAD;
    loop {
        peak_queue = peak_queue.max(scalar(&api, &queue_p90()).await.unwrap_or(0.0));
        peak_ttft = peak_ttft.max(scalar(&api, &ttft_p99()).await.unwrap_or(0.0));
        peak_waiting = peak_waiting.max(scalar(&api, &waiting).await.unwrap_or(0.0));
        let all_fired = wanted.iter().all(|a| fired(&s, a, started).is_some());
        // Queue times are observed as requests finish: watch a while past the alerts.
        let watched_enough = started.elapsed() >= OVERLOAD / 2;
        if all_fired && watched_enough || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "overload peaks: {peak_waiting} waiting, queue p90 {peak_queue:.2}s, gateway TTFT p99 {peak_ttft:.2}s"
    );
    let mut timings = Vec::new();
    for alertname in wanted {
        let (at, severity) = fired(&s, alertname, started)
            .unwrap_or_else(|| panic!("{alertname} never fired under overload\n{}", s.logs()));
        let secs = at.duration_since(started).as_secs_f64();
        eprintln!("{alertname} ({severity}) firing {secs:.1}s after the overload started");
        timings.push((alertname, severity, secs));
    }
    assert!(peak_waiting >= 16.0, "32 requests against 8 slots: {peak_waiting} waiting");
    assert!(peak_queue > 1.0 && peak_queue > 10.0 * base_queue.max(0.01), "queue p90 {peak_queue}");
    assert!(peak_ttft > 1.0 && peak_ttft > 5.0 * base_ttft, "TTFT p99 {peak_ttft} vs {base_ttft}");

    // The analyzer's reports (one per alert it was handed) name the engine queue: it is among
    // the ten candidates a report lists, as one that moved strongly and stayed moved. (Which
    // engine signal ranks first is a tie: queue, KV usage, engine TTFT and E2E all saturate the
    // score when one jumps from an idle baseline.)
    let reports = super::wait_for("analyzer reports", Duration::from_secs(60), || async {
        let reports = reports(&s);
        let ttft = reports.iter().any(|(alert, _)| alert == "TimeToFirstTokenHigh");
        (ttft && reports.len() >= 2).then_some(reports)
    })
    .await;
    for (alert, report) in reports.iter().filter(|(a, _)| wanted.contains(&a.as_str())) {
        let candidates = report["candidates"].as_array().cloned().unwrap_or_default();
        let top: Vec<String> = candidates
            .iter()
            .take(5)
            .map(|c| format!("{} {}", c["name"].as_str().unwrap_or("?"), c["labels"]))
            .collect();
        let queue = candidates
            .iter()
            .find(|c| c["name"] == "engine_requests_waiting" && c["labels"]["engine"] == ENGINE);
        let why = || serde_json::to_string_pretty(&candidates).unwrap_or_default();
        let queue =
            queue.unwrap_or_else(|| panic!("{alert}: no engine queue in the report\n{}", why()));
        eprintln!(
            "report for {alert}: engine queue ranked {} of {}; top five {top:?}",
            queue["rank"],
            candidates.len()
        );
        let strong = queue["max_z"].as_f64().is_some_and(|z| z >= 8.0);
        let lasting = queue["persistence"].as_f64().is_some_and(|p| p >= 0.5);
        let listed = queue["rank"].as_u64().is_some_and(|r| r <= 10);
        assert!(
            strong && lasting && listed,
            "{alert}: the engine queue did not count as moved\n{}",
            why()
        );
    }

    let result = overload.await.expect("overload task").expect("overload load");
    eprintln!("overload load:\n{}", result.summary.table());

    check_engine_panels(ctx, &s, &api, start_unix).await;
}

/// Every report the analyzer wrote, as (alert name, parsed report).
fn reports(s: &Observed) -> Vec<(String, Value)> {
    let dir = s.report_dir();
    let index = std::fs::read_to_string(dir.join("index.jsonl")).unwrap_or_default();
    index
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|entry| {
            let text = std::fs::read_to_string(dir.join(entry["json"].as_str()?)).ok()?;
            Some((entry["alertname"].as_str()?.to_string(), serde_json::from_str(&text).ok()?))
        })
        .collect()
}

/// Every query of the Model dashboard's engine panels returns data over the test's range. The
/// prefix-cache hit rate is 0/0 on this engine (vLLM turns prefix caching off for MLA on CPU,
/// and says so in `cache_config_info`), so it must be empty there and nowhere else.
async fn check_engine_panels(ctx: &super::Ctx, s: &Observed, api: &Prom, start_unix: f64) {
    let (families, _) = ctx.vllm.metrics(&ctx.http).await;
    let caching = families
        .iter()
        .flat_map(|f| &f.samples)
        .find(|x| x.name == "vllm:cache_config_info")
        .and_then(|x| x.label("enable_prefix_caching"))
        .map(str::to_string);
    let end = api.now().await;
    let builtins =
        Builtins { scrape_secs: 1, interval_secs: 1, range_secs: (end - start_unix).ceil() as u64 };
    let mut dashboard: Value =
        serde_json::from_str(&s.generated.files["grafana/dashboards/model.json"]).expect("json");
    // Only the variables the engine panels use ($model): this machine has no GPU for $gpu.
    if let Some(list) = dashboard["templating"]["list"].as_array_mut() {
        list.retain(|v| v["type"] != "query" || v["name"] == "model");
    }
    let vars = grafana::resolve_variables(&dashboard, api, start_unix, end, &builtins)
        .await
        .expect("dashboard variables resolve");
    let titles: Vec<&str> =
        deepwatch_rules::engine_panels::panels().iter().map(|p| p.title).collect();
    let mut checked = 0;
    let mut failures = Vec::new();
    for q in grafana::panel_queries(&dashboard) {
        if !titles.contains(&q.panel.as_str()) {
            continue;
        }
        checked += 1;
        let expr = grafana::expand(&q.expr, &vars, &builtins).expect("expand");
        let result = api.range(&expr, start_unix, end, 1).await.expect("range query");
        let points = grafana::finite_samples(&result);
        let hit_rate = q.panel == "Prefix-cache hit rate";
        match (points > 0, hit_rate) {
            (true, false) => {}
            (false, true) if caching.as_deref() == Some("False") => {
                eprintln!("{}: no data, as vLLM runs without prefix caching", q.panel)
            }
            _ => failures.push(format!("{} ({}): {points} points for {expr}", q.panel, q.ref_id)),
        }
    }
    assert!(checked >= 10, "only {checked} engine panel queries found");
    assert!(failures.is_empty(), "engine panels against vLLM:\n{}", failures.join("\n"));
    eprintln!("{checked} engine panel queries checked against vLLM");
}
