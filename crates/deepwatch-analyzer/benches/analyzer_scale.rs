//! Baseline fit and scoring at scale: N synthetic seasonal series of 7 days at one point per
//! minute (10,080 points each), fitted (`Baseline::prepare`, only when a detector judges
//! against the seasonal band) and scored point by point with the given detectors (default
//! band,shift), on T threads. Then the online tick: the first `--tick-series` scorers, warm
//! from that week, each take one new point (`SeriesScorer::score_from` on the new index, as
//! `Analytics::tick` does after its fetch), timed over `--ticks` rounds. A plain `main` (not
//! criterion): one pass over 10,000 series is the measurement. `bench/analyzer_baseline.sh`
//! runs it and Prophet on the same series (dumped as CSV with `--dump-csv`).
//!
//! cargo bench -p deepwatch-analyzer --bench analyzer_scale -- --series 10000 --threads 2 \
//!   --detectors surprise --tick-series 1000

use deepwatch_analyzer::baseline::{Baseline, Grid, Prepared, SeasonalMedian};
use deepwatch_analyzer::detect::{series_detector, SeriesScorer};
use deepwatch_analyzer::offline::synth::traffic;
use deepwatch_core::config::analyzer::AnalyzerConfig;
use std::io::Write;
use std::time::{Duration, Instant};

struct Options {
    series: usize,
    threads: usize,
    dump_dir: Option<String>,
    dump: usize,
    detectors: Vec<String>,
    tick_series: usize,
    ticks: usize,
}

fn options() -> Options {
    let mut o = Options {
        series: 10_000,
        threads: 2,
        dump_dir: None,
        dump: 20,
        detectors: vec!["band".into(), "shift".into()],
        tick_series: 0,
        ticks: 20,
    };
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs this main without `--bench`: a smoke pass over a few
    // series proves it still runs, the measurement is `cargo bench` (or the flags below).
    if !args.iter().any(|a| a == "--bench") {
        o.series = 20;
    }
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--series" => o.series = value.parse().expect("--series N"),
            "--threads" => o.threads = value.parse().expect("--threads N"),
            "--dump-csv" => o.dump_dir = Some(value),
            "--dump" => o.dump = value.parse().expect("--dump N"),
            "--detectors" => o.detectors = value.split(',').map(str::to_string).collect(),
            "--tick-series" => o.tick_series = value.parse().expect("--tick-series N"),
            "--ticks" => o.ticks = value.parse().expect("--ticks N"),
            _ => {
                i += 1; // cargo's own flags (--bench)
                continue;
            }
        }
        i += 2;
    }
    o
}

#[derive(Default)]
struct Timings {
    fit: Vec<Duration>,
    score: Vec<Duration>,
    anomalous_points: usize,
    /// Scorers kept warm for the tick measurement.
    warm: Vec<SeriesScorer>,
}

#[allow(clippy::disallowed_methods)] // a benchmark measures wall time
fn run(series: &[Grid], config: &AnalyzerConfig, names: &[String], keep: usize) -> Timings {
    let mut t = Timings::default();
    for grid in series {
        let baseline = SeasonalMedian::from_config(&config.baseline, 0.0);
        let detectors = names.iter().filter_map(|d| series_detector(d, config, 0.0)).collect();
        let mut scorer = SeriesScorer::new(baseline, detectors);
        let start = Instant::now();
        let prepared = if scorer.uses_baseline() {
            scorer.baseline.prepare(grid)
        } else {
            Prepared::default()
        };
        t.fit.push(start.elapsed());
        let start = Instant::now();
        let verdicts = scorer.score_prepared(grid, &prepared, 0);
        t.score.push(start.elapsed());
        t.anomalous_points +=
            verdicts.iter().filter(|v| v.score().is_some_and(|s| s >= 0.5)).count();
        if t.warm.len() < keep {
            t.warm.push(scorer);
        }
    }
    t
}

/// One online round per tick over warm scorers: each series gets one new point and is judged.
#[allow(clippy::disallowed_methods)] // a benchmark measures wall time
fn ticks(grids: &[Grid], scorers: &mut [SeriesScorer], rounds: usize) -> Vec<Duration> {
    let mut grids: Vec<Grid> = grids.iter().take(scorers.len()).cloned().collect();
    let mut out = Vec::with_capacity(rounds);
    for round in 0..rounds {
        for g in &mut grids {
            // The next minute continues the series' last day.
            let next = g.values[g.len() - 1440 + round % 1440];
            g.values.push(next);
        }
        let start = Instant::now();
        for (g, scorer) in grids.iter().zip(scorers.iter_mut()) {
            let verdicts = scorer.score_from(g, g.len() - 1);
            std::hint::black_box(verdicts);
        }
        out.push(start.elapsed());
    }
    out
}

fn median_ms(d: &mut [Duration]) -> f64 {
    d.sort();
    d.get(d.len() / 2).map_or(0.0, |x| x.as_secs_f64() * 1e3)
}

#[allow(clippy::disallowed_methods)] // a benchmark measures wall time
fn main() {
    let o = options();
    // Seven days hold one weekly cycle only, so the daily period is the one to fit (the weekly
    // model would still be warming up).
    let mut config = AnalyzerConfig::default();
    config.baseline.periods = vec![std::time::Duration::from_secs(86_400)];
    let grids: Vec<Grid> = (0..o.series)
        .map(|i| {
            let s = traffic(i as u64 + 1, 0.05, 7, 1, None, 0);
            Grid { start: s.start, step: s.step, values: s.values }
        })
        .collect();
    if let Some(dir) = &o.dump_dir {
        std::fs::create_dir_all(dir).expect("dump dir");
        for (i, g) in grids.iter().take(o.dump).enumerate() {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(format!("{dir}/series_{i:05}.csv")).expect("csv"),
            );
            writeln!(f, "timestamp,value").unwrap();
            for (k, v) in g.values.iter().enumerate() {
                writeln!(f, "{},{v}", g.time_of(k)).unwrap();
            }
        }
    }
    let points: usize = grids.iter().map(Grid::len).sum();
    let chunk = o.series.div_ceil(o.threads.max(1));
    let start = Instant::now();
    let mut parts: Vec<Timings> = std::thread::scope(|scope| {
        let handles: Vec<_> = grids
            .chunks(chunk.max(1))
            .enumerate()
            .map(|(i, c)| {
                let keep = if i == 0 { o.tick_series } else { 0 };
                let (config, names) = (&config, &o.detectors);
                scope.spawn(move || run(c, config, names, keep))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut fit: Vec<Duration> = parts.iter().flat_map(|p| p.fit.clone()).collect();
    let mut score: Vec<Duration> = parts.iter().flat_map(|p| p.score.clone()).collect();
    let fit_total: f64 = fit.iter().map(Duration::as_secs_f64).sum();
    let score_total: f64 = score.iter().map(Duration::as_secs_f64).sum();
    let anomalous: usize = parts.iter().map(|p| p.anomalous_points).sum();
    println!(
        "series {} points {points} threads {} detectors {}",
        o.series,
        o.threads,
        o.detectors.join(",")
    );
    println!("wall_seconds {wall:.2}");
    println!("fit_cpu_seconds {fit_total:.2} score_cpu_seconds {score_total:.2}");
    println!("fit_ms_per_series_median {:.3}", median_ms(&mut fit));
    println!("score_ms_per_series_median {:.3}", median_ms(&mut score));
    println!("points_per_second {:.0}", points as f64 / wall);
    println!("anomalous_points {anomalous} ({:.4} %)", anomalous as f64 / points as f64 * 100.0);
    let mut warm = std::mem::take(&mut parts[0].warm);
    if !warm.is_empty() {
        let mut rounds = ticks(&grids, &mut warm, o.ticks);
        let n = warm.len();
        let max = rounds.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3);
        println!(
            "tick_series {n} ticks {} tick_ms_median {:.3} tick_ms_max {max:.3} (one thread)",
            o.ticks,
            median_ms(&mut rounds)
        );
    }
}
