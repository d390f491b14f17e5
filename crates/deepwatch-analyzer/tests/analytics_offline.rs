//! Offline scoring of a committed CSV fixture (ISO-8601 timestamps): a noisy three-hour cycle
//! with one spike at row 500, scored without seasonality. The baseline must follow the cycle
//! (no alarms on it) and flag the spike; every row comes back once, in order, with its own
//! timestamp text.

use deepwatch_analyzer::offline::{parse_csv, score, write_csv, Period};
use deepwatch_core::config::analyzer::AnalyzerConfig;

const FIXTURE: &str = include_str!("fixtures/analytics/cycle_with_spike.csv");

#[test]
fn a_slow_cycle_is_followed_and_the_spike_stands_out() {
    let rows = parse_csv(FIXTURE).unwrap();
    assert_eq!(rows.len(), 600);
    let detectors = vec!["band".to_string(), "shift".to_string()];
    let scored = score(&rows, &Period::None, &detectors, &AnalyzerConfig::default()).unwrap();
    assert_eq!(scored.step, 60.0);
    let flagged: Vec<usize> =
        (0..rows.len()).filter(|&i| scored.scores[i].is_some_and(|s| s >= 0.5)).collect();
    assert_eq!(flagged, vec![500], "only the spike");
    let mut out = Vec::new();
    write_csv(&rows, &scored.scores, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "timestamp,value,anomaly_score,warming_up");
    assert_eq!(lines.len(), 601);
    assert!(lines[501].starts_with("2024-03-04T08:20:00Z,"), "{}", lines[501]);
}
