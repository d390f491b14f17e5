//! Times the analyzer's evaluation round at fleet size (bench/fleet.sh, docs/scaling.md):
//! `tick --prometheus URL [--shard i/n] [--ticks N] [--config FILE]` runs the daemon's analytics
//! (`Analytics::tick`: fetch every configured series, baseline, detect) N times against a real
//! Prometheus-compatible API and prints one line per round: seconds, series baselined. The
//! first round fetches the whole history window; later ones only what is new.

use deepwatch_analyzer::prom::PromClient;
use deepwatch_analyzer::Analytics;
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut url, mut shard, mut ticks, mut config_path) = (None, None, 3u32, None);
    while let Some(flag) = args.next() {
        let value = args.next();
        match (flag.as_str(), value) {
            ("--prometheus", Some(v)) => url = Some(v),
            ("--shard", Some(v)) => shard = Some(v),
            ("--ticks", Some(v)) => ticks = v.parse().unwrap_or(3),
            ("--config", Some(v)) => config_path = Some(v),
            _ => {
                eprintln!("usage: tick --prometheus URL [--shard i/n] [--ticks N] [--config FILE]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let mut config = match config_path {
        Some(p) => match Config::load(std::path::Path::new(&p)) {
            Ok(c) => c.analyzer,
            Err(e) => {
                eprintln!("tick: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        None => Config::default().analyzer,
    };
    if let Some(u) = url {
        config.prometheus_url = u;
    }
    if let Some(s) = shard {
        config.shard = s;
    }
    config.query_timeout = std::time::Duration::from_millis(120_000);
    let prom = PromClient::from_config(&config).expect("prometheus client");
    let analytics = Analytics::new(&config, prom, TokioClock::shared());
    for round in 1..=ticks {
        let started = tokio::time::Instant::now();
        analytics.tick().await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "round {round} shard {} seconds {secs:.3} series {} degraded {}",
            config.shard,
            analytics.series_count(),
            analytics.is_degraded()
        );
    }
    std::process::ExitCode::SUCCESS
}
