//! `deepwatch push` end to end: a batch job's results piped into the real binary reach a real
//! Pushgateway, which a real Prometheus scrapes with the generated `prometheus.yml`
//! (`honor_labels`, so the job's own grouping labels survive).

use crate::support::procs::binary;
use deepwatch_core::catalog::push as cat;
use deepwatch_core::config::rules::RulesConfig;
use deepwatch_testkit::{http_client, Prometheus, Pushgateway};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

async fn scalar(prom: &Prometheus, q: &str) -> Option<f64> {
    let r = prom.query(q).await;
    r.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn piped_results_reach_prometheus_through_the_pushgateway() {
    let pg = Pushgateway::start().await;
    let mut spec = RulesConfig::default();
    spec.targets.agents.clear();
    spec.targets.gateways.clear();
    spec.targets.analyzer.clear();
    spec.targets.node_exporter.clear();
    spec.targets.pushgateway = vec![pg.server.addr.to_string()];
    let generated =
        deepwatch_rules::generate(&spec, deepwatch_rules::Options { time_scale: 5 }).unwrap();
    let prom = Prometheus::start(&generated.files["prometheus/prometheus.yml"], &[]).await;

    let mut child = tokio::process::Command::new(binary())
        .args(["push", "--pushgateway-url", &pg.url(), "--batch-size", "3"])
        .args(["--job", "batch_inference", "--instance", "batch-1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let input = "0.5\n0.5\n0.5\n0.51\n{\"latency_seconds\": 0.51}\n{\"latency_ms\": 510, \"ok\": false}\n1.0\n1.0\n";
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("deepwatch push ends at end of input")
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let text = http_client()
        .get(format!("{}/metrics", pg.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count_name = format!("{}_count", cat::BATCH_REQUEST_DURATION.name);
    let count = text
        .lines()
        .find(|l| {
            l.starts_with(&format!("{count_name}{{")) && l.contains("job=\"batch_inference\"")
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(count.ends_with(" 8"), "{count}");

    let q = format!("{count_name}{{job=\"batch_inference\", instance=\"batch-1\"}}");
    prom.wait_for_series(&q, Duration::from_secs(30)).await;
    assert_eq!(scalar(&prom, &q).await, Some(8.0));
    let errors = format!("{}{{outcome=\"error\"}}", cat::BATCH_RESULTS.name);
    assert_eq!(scalar(&prom, &errors).await, Some(1.0));
}

/// A batch job of 1000 results (and one garbage line; 100 KB, more than a pipe buffer holds)
/// piped into `deepwatch push` while the Pushgateway is down: the job must finish with status 0 (no SIGPIPE), `push` must say what it
/// could not deliver, and once the Pushgateway is back within the retry window every result
/// arrives, the bad line counted.
#[tokio::test]
async fn a_down_pushgateway_never_breaks_the_producers_pipe_and_nothing_is_lost_when_it_returns() {
    let mut pg = Pushgateway::start().await;
    pg.server.kill();
    let url = pg.url();
    let pipeline = |give_up_after: &str| {
        let script = format!(
            "pad=$(printf '%100s' ''); for i in $(seq 1000); do echo \"0.25 $pad\"; if [ $i = 500 ]; then echo 'not a latency'; fi; done \
             | {} push --pushgateway-url {url} --batch-size 10 --give-up-after-secs {give_up_after}; \
             echo \"pipestatus ${{PIPESTATUS[*]}}\"",
            binary().display()
        );
        tokio::process::Command::new("bash")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
    };

    // Down for good: the producer still exits 0; push exits 1 and reports what was lost.
    let out = tokio::time::timeout(Duration::from_secs(60), pipeline("1")).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("pipestatus 0 1"), "{stdout}\n{stderr}");
    assert!(stderr.contains("1000 of 1000 results not delivered"), "{stderr}");
    assert!(stderr.contains("1 malformed input lines skipped"), "{stderr}");

    // Back within the retry window: everything arrives, push exits 0.
    let run = tokio::spawn(pipeline("60"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.server.restart("/-/ready", Duration::from_secs(30)).await;
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.unwrap().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("pipestatus 0 0"), "{stdout}\n{stderr}");
    let text = http_client()
        .get(format!("{}/metrics", pg.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("job=\"batch_inference\""))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .to_string()
    };
    let count = format!("{}_count{{", cat::BATCH_REQUEST_DURATION.name);
    assert!(line(&count).ends_with(" 1000"), "{}", line(&count));
    let malformed = format!("{}{{", cat::BATCH_MALFORMED_LINES.name);
    assert!(line(&malformed).ends_with(" 1"), "{}", line(&malformed));
    let failures = format!("{}{{", cat::BATCH_PUSH_FAILURES.name);
    let failed: f64 = line(&failures).rsplit(' ').next().unwrap().parse().unwrap();
    assert!(failed >= 1.0, "{}", line(&failures));
}
