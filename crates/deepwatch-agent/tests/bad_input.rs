//! Bad input over real HTTP: truncated, garbage and 50 MB engine payloads, an engine that
//! hangs, a refused connection, and a bad config file. Each gives a clear error and the agent
//! keeps serving `/metrics` without waiting on the engine.

use crate::support::*;
use axum::routing::get;
use axum::Router;
use deepwatch_core::config::agent::{AgentConfig, EngineConfig};
use deepwatch_core::config::Config;
use std::time::Duration;

fn engine(name: &str, url: String, timeout_ms: u64) -> EngineConfig {
    EngineConfig {
        name: name.into(),
        url,
        interval: std::time::Duration::from_millis(200),
        timeout: Duration::from_millis(timeout_ms),
        max_body_bytes: 16 * 1024 * 1024,
        ..EngineConfig::default()
    }
}

async fn bad_engines() -> std::net::SocketAddr {
    let big: &'static str =
        Box::leak("# TYPE x gauge\n".repeat(50 * 1024 * 1024 / 15 + 1).into_boxed_str());
    let truncated = &VLLM[..VLLM.find("vllm:num_requests_waiting{engine=\"1\"").unwrap() + 30];
    serve(
        Router::new()
            .route("/garbage", get(|| async { "<html><body>502 Bad Gateway</body></html>\n" }))
            .route("/truncated", get(move || async move { truncated }))
            .route("/big", get(move || async move { big }))
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    ""
                }),
            )
            .route("/missing", get(|| async { (axum::http::StatusCode::NOT_FOUND, "not found") })),
    )
    .await
}

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_engines_are_reported_by_reason_and_never_delay_metrics() {
    let bad = bad_engines().await;
    let refused = deepwatch_testkit::free_addr();
    let config = AgentConfig {
        engines: vec![
            engine("garbage", format!("http://{bad}/garbage"), 1000),
            engine("truncated", format!("http://{bad}/truncated"), 1000),
            engine("big", format!("http://{bad}/big"), 5000),
            engine("hang", format!("http://{bad}/hang"), 400),
            engine("missing", format!("http://{bad}/missing"), 1000),
            engine("refused", format!("http://{refused}/metrics"), 1000),
        ],
        ..AgentConfig::default()
    };
    let agent = start_agent(&config).await;
    let expect = [
        ("garbage", "parse"),
        ("truncated", "parse"),
        ("big", "too_large"),
        ("hang", "timeout"),
        ("missing", "status"),
        ("refused", "connect"),
    ];
    let text = deepwatch_testkit::wait_for("every engine failed once", Duration::from_secs(15), || async {
        let (_, text) = get_metrics(agent.addr, None).await;
        let all = expect.iter().all(|(e, reason)| {
            line(&text, &format!("deepwatch_engine_scrape_errors_total{{engine=\"{e}\",reason=\"{reason}\"}}"))
                .is_some_and(|l| !l.ends_with(" 0"))
        });
        all.then_some(text)
    })
    .await;
    for (e, _) in expect {
        let up = line(&text, &format!("deepwatch_engine_up{{engine=\"{e}\"")).unwrap();
        // A truncated payload still yields its good lines: up, with the parse error counted.
        let expected = if e == "truncated" { " 1" } else { " 0" };
        assert!(up.ends_with(expected), "{up}");
    }
    assert!(
        text.contains(
            "deepwatch_engine_requests_running{engine=\"truncated\",engine_kind=\"vllm\""
        ),
        "{text}"
    );
    let watches = agent.agent.collectors().names();
    assert!(watches.contains(&"engine"));

    // While the hung engine holds its connection, /metrics answers at once: the scrape reads
    // cached state and never waits on an engine (the engine's own timeout is 400 ms; a scrape
    // that waited on it could not finish 20 times in a row under 200 ms each).
    for _ in 0..20 {
        let start = tokio::time::Instant::now();
        let (_, text) = get_metrics(agent.addr, None).await;
        assert!(start.elapsed() < Duration::from_millis(200), "{:?}", start.elapsed());
        assert!(text.contains("deepwatch_collector_up{collector=\"host\"} 1"));
    }
}

#[tokio::test]
async fn parse_errors_name_their_line_number() {
    let bad = bad_engines().await;
    let config = AgentConfig {
        engines: vec![
            engine("garbage", format!("http://{bad}/garbage"), 1000),
            engine("truncated", format!("http://{bad}/truncated"), 1000),
        ],
        ..AgentConfig::default()
    };
    let collector = deepwatch_agent::engine::EngineCollector::new(&config.engines).unwrap();
    let client = deepwatch_core::http::builder().build().unwrap();
    for w in collector.watches() {
        w.scrape_once(&client).await;
    }
    let garbage = collector.watches()[0].last_error().unwrap();
    assert!(garbage.contains("no metric could be parsed; first error at line 1:"), "{garbage}");
    let truncated = collector.watches()[1].last_error().unwrap();
    let cut_line =
        VLLM[..VLLM.find("vllm:num_requests_waiting{engine=\"1\"").unwrap()].lines().count() + 1;
    assert!(
        truncated.contains(&format!("1 lines skipped, first at line {cut_line}:")),
        "{truncated}"
    );
}

#[test]
fn a_bad_config_file_is_refused_with_every_problem_and_its_path() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bad_agent.toml");
    let err = Config::load(std::path::Path::new(path)).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid config:\n\
         agent.listen: must be an address like 127.0.0.1:9844, got \"0.0.0.0\"\n\
         agent.process.targets[0]: set exactly one of exact_name, pid_file, cmdline_regex (got 0)\n\
         agent.engines[0].url: must be an http or https URL, got scheme \"vllm\"\n\
         agent.engines[0].max_body_bytes: must be between 1024 and 1073741824, got 10\n\
         agent.engines[1].name: duplicate engine name \"vllm\"\n\
         agent.logs[0].patterns.cuda_oom: is not a valid regular expression: error: unclosed group"
    );
}

#[test]
fn an_unknown_key_is_refused_with_its_name_and_line() {
    let err = Config::from_toml_str("[agent]\nlisten = \"127.0.0.1:9844\"\n\n[[agent.engines]]\nname = \"v\"\nurl = \"http://x/metrics\"\nintervall_ms = 5\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 7") && err.contains("intervall_ms"), "{err}");
}
