//! Offline scoring (`deepwatch analyze detect --csv FILE`): reads `timestamp,value` rows
//! (ISO-8601 or Unix seconds), snaps them to a grid at their median spacing, finds the seasonal
//! periods (or takes the one given), and scores every row with the same baseline and detectors
//! as the online analyzer (`SeriesScorer`); detectors that need no seasonal baseline (the
//! default `surprise`) see the rows themselves, one point per row. Each row is judged from the
//! rows before it only, so the scores are what the online analyzer would have said at that
//! moment. Rows still warming up score 0 and are marked in the `warming_up` column.
//!
//! `synth` generates labelled series and `eval` measures detectors on them.

pub mod eval;
pub mod synth;

use crate::baseline::{Grid, SeasonalMedian};
use crate::detect::{series_detector, SeriesScorer};
use deepwatch_core::config::analyzer::{AnalyzerConfig, SERIES_DETECTORS};
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("line {line}: {reason}")]
    Parse { line: usize, reason: String },
    #[error("line {line}: no data rows (expected timestamp,value rows)")]
    Empty { line: usize },
    #[error("line {line}: only one data row; scoring needs a history")]
    OneRow { line: usize },
    #[error("unknown detector {0:?} (one of surprise, band, shift, leak, accuracy)")]
    UnknownDetector(String),
    #[error("period must be auto, none or a number of seconds of at least 2 steps, got {0:?}")]
    Period(String),
}

/// One input row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Line of the input it came from (1-based).
    pub line: usize,
    /// The timestamp as written, echoed in the output.
    pub timestamp: String,
    /// Unix seconds.
    pub time: f64,
    pub value: f64,
}

/// Seasonality of the offline series.
#[derive(Debug, Clone, PartialEq)]
pub enum Period {
    /// Daily and weekly seasonality where the data shows it (autocorrelation), none otherwise.
    Auto,
    /// No seasonality: a trailing median and MAD.
    None,
    /// One period, in seconds.
    Secs(f64),
}

impl std::str::FromStr for Period {
    type Err = OfflineError;
    fn from_str(s: &str) -> Result<Period, OfflineError> {
        match s.trim() {
            "auto" => Ok(Period::Auto),
            "none" | "0" => Ok(Period::None),
            other => match other.parse::<f64>() {
                Ok(secs) if secs > 0.0 && secs.is_finite() => Ok(Period::Secs(secs)),
                _ => Err(OfflineError::Period(s.to_string())),
            },
        }
    }
}

/// Parses `timestamp,value` CSV; a header row is optional, blank lines and `#` comments skipped.
/// Rows must be in time order (an earlier timestamp is an error naming both lines), and at least
/// two are needed. A repeated timestamp is kept (real exports hold them; `duplicates` lists them
/// and `reject_duplicates` makes them an error).
pub fn parse_csv(text: &str) -> Result<Vec<Row>, OfflineError> {
    let mut rows: Vec<Row> = Vec::new();
    let mut previous_line = 0;
    let mut lines = 0;
    for (i, raw) in text.lines().enumerate() {
        lines = i + 1;
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut fields = trimmed.splitn(3, ',').map(|f| f.trim().trim_matches('"'));
        let (Some(ts), Some(v)) = (fields.next(), fields.next()) else {
            return Err(OfflineError::Parse { line, reason: "expected timestamp,value".into() });
        };
        if rows.is_empty() && ts.eq_ignore_ascii_case("timestamp") {
            continue;
        }
        let time = parse_timestamp(ts).ok_or_else(|| OfflineError::Parse {
            line,
            reason: format!("timestamp {ts:?} is neither ISO-8601 nor Unix seconds"),
        })?;
        let value: f64 = v.parse().map_err(|_| OfflineError::Parse {
            line,
            reason: format!("value {v:?} is not a number"),
        })?;
        if !value.is_finite() {
            return Err(OfflineError::Parse { line, reason: format!("value {v:?} is not finite") });
        }
        if let Some(last) = rows.last() {
            if time < last.time {
                return Err(OfflineError::Parse {
                    line,
                    reason: format!(
                        "timestamp {ts:?} is earlier than the timestamp of line {previous_line} (rows must be sorted by time)"
                    ),
                });
            }
        }
        previous_line = line;
        rows.push(Row { line, timestamp: ts.to_string(), time, value });
    }
    match rows.len() {
        0 => Err(OfflineError::Empty { line: lines + 1 }),
        1 => Err(OfflineError::OneRow { line: previous_line }),
        _ => Ok(rows),
    }
}

/// Pairs of lines `(first, repeat)` whose rows carry the same timestamp.
pub fn duplicates(rows: &[Row]) -> Vec<(usize, usize)> {
    rows.windows(2).filter(|w| w[0].time == w[1].time).map(|w| (w[0].line, w[1].line)).collect()
}

/// An error naming the first repeated timestamp, for callers that want each timestamp once.
pub fn reject_duplicates(rows: &[Row]) -> Result<(), OfflineError> {
    let Some(w) = rows.windows(2).find(|w| w[0].time == w[1].time) else { return Ok(()) };
    Err(OfflineError::Parse {
        line: w[1].line,
        reason: format!(
            "timestamp {:?} repeats the timestamp of line {} (each timestamp once)",
            w[1].timestamp, w[0].line
        ),
    })
}

/// ISO-8601 / RFC 3339 (with or without offset, `T` or space) or Unix seconds.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    if let Ok(secs) = text.parse::<f64>() {
        return secs.is_finite().then_some(secs);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis() as f64 / 1000.0);
    }
    for format in
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
    {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis() as f64 / 1000.0);
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%z") {
        return Some(t.timestamp_millis() as f64 / 1000.0);
    }
    None
}

/// Median spacing of the sorted distinct timestamps (the grid step).
pub fn median_step(rows: &[Row]) -> f64 {
    let mut times: Vec<f64> = rows.iter().map(|r| r.time).collect();
    times.sort_by(f64::total_cmp);
    let diffs: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).collect();
    crate::baseline::median(&diffs).unwrap_or(60.0)
}

/// Periods (seconds) among one day and one week whose autocorrelation is at least 0.3, with
/// at least two full periods of data.
pub fn detect_periods(grid: &Grid) -> Vec<f64> {
    let span = grid.len() as f64 * grid.step;
    [86_400.0, 604_800.0]
        .into_iter()
        .filter(|p| span >= 2.0 * p && *p >= 10.0 * grid.step)
        .filter(|p| autocorrelation(&grid.values, (p / grid.step).round() as usize) >= 0.3)
        .collect()
}

/// Autocorrelation at `lag` over pairs where both values are present.
pub fn autocorrelation(values: &[f64], lag: usize) -> f64 {
    if lag == 0 || lag >= values.len() {
        return 0.0;
    }
    let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let mean = present.iter().sum::<f64>() / present.len().max(1) as f64;
    let var: f64 = present.iter().map(|v| (v - mean).powi(2)).sum();
    if var <= 0.0 {
        return 0.0;
    }
    let mut cov = 0.0;
    let mut pairs = 0usize;
    for i in lag..values.len() {
        let (a, b) = (values[i], values[i - lag]);
        if !a.is_nan() && !b.is_nan() {
            cov += (a - mean) * (b - mean);
            pairs += 1;
        }
    }
    if pairs == 0 {
        return 0.0;
    }
    cov / pairs as f64 / (var / present.len() as f64)
}

/// What offline scoring did.
#[derive(Debug, Clone)]
pub struct Scored {
    pub step: f64,
    pub periods: Vec<f64>,
    /// One per input row, in input order; `None` while warming up.
    pub scores: Vec<Option<f64>>,
}

/// Scores rows with the named detectors and the `[analyzer]` baseline settings.
pub fn score(
    rows: &[Row],
    period: &Period,
    detectors: &[String],
    config: &AnalyzerConfig,
) -> Result<Scored, OfflineError> {
    if rows.is_empty() {
        return Err(OfflineError::Empty { line: 1 });
    }
    let step = median_step(rows);
    let points: Vec<(f64, f64)> = rows.iter().map(|r| (r.time, r.value)).collect();
    let grid = Grid::from_points(&points, step);
    let periods = match period {
        Period::Auto => detect_periods(&grid),
        Period::None => Vec::new(),
        Period::Secs(p) if *p >= 2.0 * step => vec![*p],
        Period::Secs(p) => return Err(OfflineError::Period(p.to_string())),
    };
    let mut built = Vec::new();
    for name in detectors {
        if !SERIES_DETECTORS.contains(&name.as_str()) {
            return Err(OfflineError::UnknownDetector(name.clone()));
        }
        built.extend(series_detector(name, config, 0.0));
    }
    let baseline = SeasonalMedian::from_config(&config.baseline, 0.0).with_periods(periods.clone());
    let mut scorer = SeriesScorer::new(baseline, built);
    if !scorer.uses_baseline() {
        // Detectors with their own per-point state judge every row in order, one point per row:
        // rows closer than the median step (irregular exports) keep a score of their own
        // instead of sharing a grid slot, and gaps cost nothing.
        let sequence =
            Grid { start: rows[0].time, step, values: points.iter().map(|p| p.1).collect() };
        let scores = scorer.score_from(&sequence, 0).iter().map(|v| v.score()).collect();
        return Ok(Scored { step, periods, scores });
    }
    let verdicts = scorer.score_from(&grid, 0);
    let mut by_index = vec![None; grid.len()];
    for v in &verdicts {
        by_index[v.index] = v.score();
    }
    let scores = rows
        .iter()
        .map(|r| grid.index_of(r.time).and_then(|i| by_index.get(i).copied().flatten()))
        .collect();
    Ok(Scored { step, periods, scores })
}

/// Writes `timestamp,value,anomaly_score,warming_up` rows. The score is never empty: a row
/// still warming up scores 0 and has `warming_up` 1.
pub fn write_csv(
    rows: &[Row],
    scores: &[Option<f64>],
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(out, "timestamp,value,anomaly_score,warming_up")?;
    for (row, score) in rows.iter().zip(scores) {
        match score {
            Some(s) => writeln!(out, "{},{},{:.6},0", row.timestamp, row.value, s)?,
            None => writeln!(out, "{},{},0,1", row.timestamp, row.value)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_every_supported_form() {
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000.0));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20Z"), Some(1_700_000_000.0));
        assert_eq!(parse_timestamp("2023-11-14T23:13:20+01:00"), Some(1_700_000_000.0));
        assert_eq!(parse_timestamp("2023-11-14 22:13:20"), Some(1_700_000_000.0));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20.500"), Some(1_700_000_000.5));
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let err = parse_csv("timestamp,value\n1,2\n2,abc\n").unwrap_err().to_string();
        assert_eq!(err, "line 3: value \"abc\" is not a number");
        let err = parse_csv("timestamp,value\nnoon,2\n").unwrap_err().to_string();
        assert!(err.starts_with("line 2: timestamp \"noon\""), "{err}");
        let err = parse_csv("timestamp,value\n").unwrap_err().to_string();
        assert_eq!(err, "line 2: no data rows (expected timestamp,value rows)");
        let err = parse_csv("").unwrap_err().to_string();
        assert!(err.starts_with("line 1: no data rows"), "{err}");
        let err = parse_csv("timestamp,value\n1,2\n").unwrap_err().to_string();
        assert_eq!(err, "line 2: only one data row; scoring needs a history");
    }

    #[test]
    fn unsorted_and_repeated_timestamps_name_both_lines() {
        let rows = parse_csv("timestamp,value\n1,2\n\n2,3\n2,4\n3,1\n").unwrap();
        assert_eq!(rows.len(), 4, "a repeated timestamp is kept");
        assert_eq!(duplicates(&rows), vec![(4, 5)]);
        let err = reject_duplicates(&rows).unwrap_err().to_string();
        assert_eq!(
            err,
            "line 5: timestamp \"2\" repeats the timestamp of line 4 (each timestamp once)"
        );
        assert!(reject_duplicates(&rows[..2]).is_ok());
        let text = "timestamp,value\n2024-01-01 00:05:00,1\n2024-01-01 00:00:00,2\n";
        let err = parse_csv(text).unwrap_err().to_string();
        assert!(err.starts_with("line 3: timestamp \"2024-01-01 00:00:00\" is earlier"), "{err}");
    }

    #[test]
    fn the_default_detector_scores_each_row_even_two_in_one_step() {
        let mut text = String::from("timestamp,value\n");
        for i in 0..400 {
            let wiggle = ((i as f64 * 12.9898).sin() * 43_758.545).fract().abs();
            text.push_str(&format!("{},{}\n", 1_700_000_000 + i * 60, 10.0 + wiggle));
            if i == 300 {
                // A second row one second later, far off: it shares the grid slot of row 300.
                text.push_str(&format!("{},100\n", 1_700_000_000 + i * 60 + 1));
            }
        }
        let rows = parse_csv(&text).unwrap();
        let scored =
            score(&rows, &Period::Auto, &["surprise".to_string()], &AnalyzerConfig::default())
                .unwrap();
        assert_eq!(scored.scores.len(), 401);
        assert!(scored.scores[300].unwrap() < 0.5, "the normal row keeps its own score");
        assert!(scored.scores[301].unwrap() > 0.9, "the far-off row is the anomaly");
    }

    #[test]
    fn period_flag_parses() {
        assert_eq!("auto".parse::<Period>().unwrap(), Period::Auto);
        assert_eq!("86400".parse::<Period>().unwrap(), Period::Secs(86_400.0));
        assert!("-5".parse::<Period>().is_err());
    }

    #[test]
    fn every_row_gets_a_line_in_order_and_a_spike_scores_high() {
        let mut text = String::from("timestamp,value\n");
        for i in 0..300 {
            let v = if i == 250 { 100.0 } else { 10.0 + (i % 5) as f64 * 0.2 };
            text.push_str(&format!("{},{v}\n", 1_700_000_000 + i * 60));
        }
        let rows = parse_csv(&text).unwrap();
        let detectors = vec!["band".to_string(), "shift".to_string()];
        let scored = score(&rows, &Period::Auto, &detectors, &AnalyzerConfig::default()).unwrap();
        assert!(scored.periods.is_empty(), "5 hours hold no daily period");
        assert_eq!(scored.scores.len(), 300);
        assert!(scored.scores[10].is_none(), "warming up at first");
        assert!(scored.scores[250].unwrap() > 0.9);
        assert!(scored.scores[200].unwrap() < 0.5);
        let mut out = Vec::new();
        write_csv(&rows, &scored.scores, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.lines().count(), 301);
        assert!(out.lines().nth(11).unwrap().ends_with(",0,1"), "warming-up rows score 0, marked");
        assert!(out.lines().nth(251).unwrap().ends_with(",0"), "scored rows are not warming up");
    }
}
