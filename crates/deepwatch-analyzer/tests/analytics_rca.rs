//! Root-cause ranking on injected-fault scenarios (latency on one upstream, error burst, memory
//! leak in one process, GPU saturation, load surge), each over several seeds: the injected
//! cause must rank first in most cases and in the top three in nearly all. The reports must
//! carry the timeline, the last change before the onset and a reproduction.

use deepwatch_analyzer::rca::rank_with;
use deepwatch_analyzer::rca::report::EntryKind;
use deepwatch_analyzer::rca::scenarios::{generate, Fault};
use deepwatch_core::config::analyzer::{BaselineConfig, RcaConfig};

/// Seeds per fault in this test (the benchmark script runs more).
const SEEDS: u64 = 8;

#[tokio::test]
async fn injected_causes_rank_first() {
    let config = RcaConfig::default();
    let mut top1 = 0;
    let mut top3 = 0;
    let mut total = 0;
    let mut misses = Vec::new();
    for fault in Fault::ALL {
        let mut fault_top1 = 0;
        for seed in 1..=SEEDS {
            let scenario = generate(fault, seed);
            let report = rank_with(
                &scenario.source,
                scenario.at,
                Some(scenario.alert),
                &config,
                &BaselineConfig::default(),
            )
            .await
            .unwrap();
            let position = report.candidates.iter().position(|c| scenario.is_cause(c));
            total += 1;
            if position == Some(0) {
                top1 += 1;
                fault_top1 += 1;
            } else {
                let shown: Vec<String> = report
                    .candidates
                    .iter()
                    .take(3)
                    .map(|c| format!("{} {:.2}", c.display(), c.score))
                    .collect();
                misses.push(format!(
                    "{} seed {seed}: cause at {position:?}, top {shown:?}",
                    fault.name()
                ));
            }
            if position.is_some_and(|p| p < 3) {
                top3 += 1;
            }
        }
        assert!(
            fault_top1 * 2 >= SEEDS,
            "{}: top-1 in only {fault_top1} of {SEEDS}\n{misses:#?}",
            fault.name()
        );
    }
    let (top1, top3) = (top1 as f64 / total as f64, top3 as f64 / total as f64);
    assert!(top1 >= 0.8, "top-1 {top1:.2}, top-3 {top3:.2}\n{misses:#?}");
    assert!(top3 >= 0.95, "top-3 {top3:.2}\n{misses:#?}");
}

#[tokio::test]
async fn a_report_has_timeline_changes_reproduction_and_pool_comparison() {
    let config = RcaConfig::default();
    // Find a latency scenario with a deploy step before the onset.
    let scenario = (1..50)
        .map(|seed| generate(Fault::UpstreamLatency, seed))
        .find(|s| !s.source.events.is_empty())
        .expect("some seed has a deploy event");
    let report = rank_with(
        &scenario.source,
        scenario.at,
        Some(scenario.alert),
        &config,
        &BaselineConfig::default(),
    )
    .await
    .unwrap();
    let onset = report.onset.expect("onset found");
    assert!(
        (onset - scenario.onset).abs() <= 120.0,
        "onset {onset} vs injected {}",
        scenario.onset
    );
    assert!(report.timeline.iter().any(|e| e.kind == EntryKind::Event), "{:?}", report.timeline);
    assert!(report.timeline.iter().any(|e| e.kind == EntryKind::Alert));
    assert!(report.timeline.windows(2).all(|w| w[0].time <= w[1].time), "timeline in time order");
    assert_eq!(report.changes_before_onset.len(), 1);
    let repro = report.reproduction.as_ref().expect("latency maps to a chaos command");
    assert!(repro.command.starts_with("deepwatch chaos"), "{}", repro.command);
    assert!(repro.why.contains(&scenario.target), "{}", repro.why);
    assert!(!report.comparisons.is_empty(), "blue and green serve the same model");

    let dir = tempfile::tempdir().unwrap();
    let (md, json) = report.write_to(dir.path()).unwrap();
    let markdown = std::fs::read_to_string(md).unwrap();
    assert!(markdown.contains("## Ranked candidates") && markdown.contains("## Timeline"));
    assert!(markdown.contains(&scenario.target));
    let parsed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(parsed["alert"], scenario.alert);
    assert!(parsed["candidates"].as_array().unwrap().len() >= 3);
    // The JSON reads back into the same report (the incident pages render from it), with the
    // history it was ranked with and the charts.
    let back: deepwatch_analyzer::rca::Report = serde_json::from_value(parsed).unwrap();
    let names = |r: &deepwatch_analyzer::rca::Report| {
        r.candidates.iter().map(|c| c.display()).collect::<Vec<_>>()
    };
    assert_eq!(names(&back), names(&report));
    assert_eq!(
        (back.charts.len(), back.timeline.len()),
        (report.charts.len(), report.timeline.len())
    );
    assert!(!report.history.shortened, "two hours of data is enough");
    assert!(markdown.contains("History: "), "{markdown}");
    let symptom = report.symptom.as_ref().expect("a symptom chart");
    assert!(!symptom.points.is_empty() && !symptom.band.is_empty());
    assert_eq!(report.charts.len(), 4);
    assert_eq!(report.charts[0].title, report.candidates[0].display());
}

/// The figures for docs/benchmarks.md (`bench/analyzer_rca.sh` runs this in release).
#[tokio::test]
#[ignore = "evaluation report; run by bench/analyzer_rca.sh"]
async fn evaluation_report() {
    let config = RcaConfig::default();
    println!("| fault | cases | top-1 | top-3 |");
    println!("|---|---|---|---|");
    let (mut all1, mut all3, mut all) = (0, 0, 0);
    for fault in Fault::ALL {
        let (mut t1, mut t3) = (0, 0);
        let cases = 50;
        for seed in 1000..1000 + cases {
            let s = generate(fault, seed);
            let report =
                rank_with(&s.source, s.at, Some(s.alert), &config, &BaselineConfig::default())
                    .await
                    .unwrap();
            let p = report.candidates.iter().position(|c| s.is_cause(c));
            t1 += usize::from(p == Some(0));
            t3 += usize::from(p.is_some_and(|p| p < 3));
        }
        println!(
            "| {} | {cases} | {:.2} | {:.2} |",
            fault.name(),
            t1 as f64 / cases as f64,
            t3 as f64 / cases as f64
        );
        (all1, all3, all) = (all1 + t1, all3 + t3, all + cases as usize);
    }
    println!("| all | {all} | {:.2} | {:.2} |", all1 as f64 / all as f64, all3 as f64 / all as f64);
}
