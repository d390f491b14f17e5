//! Event-level evaluation of a detector's scores against labelled incidents: flagged points
//! (score >= 0.5) close together form one alert; an alert overlapping an incident (or starting
//! within `tolerance` points after it) detects it, any other alert is a false positive.
//! Precision, recall and detection delay follow, as an operator would count them.

use super::synth::Incident;

/// Counts for one series or summed over many.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventStats {
    pub incidents: usize,
    pub detected: usize,
    pub alerts: usize,
    pub false_positives: usize,
    /// Delay of each detected incident, in points, from its start to the first flagged point.
    pub delays: Vec<f64>,
}

impl EventStats {
    pub fn add(&mut self, other: &EventStats) {
        self.incidents += other.incidents;
        self.detected += other.detected;
        self.alerts += other.alerts;
        self.false_positives += other.false_positives;
        self.delays.extend(&other.delays);
    }

    pub fn recall(&self) -> Option<f64> {
        (self.incidents > 0).then(|| self.detected as f64 / self.incidents as f64)
    }

    pub fn precision(&self) -> Option<f64> {
        (self.alerts > 0).then(|| (self.alerts - self.false_positives) as f64 / self.alerts as f64)
    }

    pub fn median_delay(&self) -> Option<f64> {
        crate::baseline::median(&self.delays)
    }
}

/// Alerts: runs of flagged points from `from` on, runs closer than `merge` points joined.
pub fn alerts(scores: &[Option<f64>], from: usize, merge: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, s) in scores.iter().enumerate().skip(from) {
        if s.is_some_and(|s| s >= 0.5) {
            match out.last_mut() {
                Some(last) if i <= last.1 + merge => last.1 = i + 1,
                _ => out.push((i, i + 1)),
            }
        }
    }
    out
}

/// Evaluates scores (one per point) against incidents, over points `from..`.
pub fn evaluate(
    scores: &[Option<f64>],
    incidents: &[Incident],
    from: usize,
    tolerance: usize,
) -> EventStats {
    let alerts = alerts(scores, from, 5);
    let mut stats =
        EventStats { incidents: incidents.len(), alerts: alerts.len(), ..EventStats::default() };
    for inc in incidents {
        let window_end = inc.end + tolerance;
        let first = (inc.start..window_end.min(scores.len()))
            .find(|&i| scores[i].is_some_and(|s| s >= 0.5));
        if let Some(i) = first {
            stats.detected += 1;
            stats.delays.push((i - inc.start) as f64);
        }
    }
    stats.false_positives = alerts
        .iter()
        .filter(|(a, b)| !incidents.iter().any(|inc| *a < inc.end + tolerance && *b > inc.start))
        .count();
    stats
}

/// Scores a labelled series exactly as `deepwatch analyze detect --csv` would: rendered as CSV
/// text with Unix-second timestamps, parsed, and scored with `--period auto`.
pub fn score_labelled(
    series: &super::synth::Labelled,
    detectors: &[String],
    config: &deepwatch_core::config::analyzer::AnalyzerConfig,
) -> Result<Vec<Option<f64>>, super::OfflineError> {
    let mut csv = String::with_capacity(series.values.len() * 24);
    csv.push_str("timestamp,value\n");
    for (t, v) in series.times().zip(&series.values) {
        csv.push_str(&format!("{t},{v}\n"));
    }
    let rows = super::parse_csv(&csv)?;
    Ok(super::score(&rows, &super::Period::Auto, detectors, config)?.scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::synth::IncidentKind;

    #[test]
    fn alerts_overlapping_incidents_count_others_are_false_positives() {
        let mut scores = vec![Some(0.1); 100];
        scores[20] = Some(0.9);
        scores[22] = Some(0.9); // merged with 20
        scores[70] = Some(0.8); // nothing there
        let incidents = [
            Incident { kind: IncidentKind::Spike, start: 18, end: 25 },
            Incident { kind: IncidentKind::Spike, start: 40, end: 45 },
        ];
        let s = evaluate(&scores, &incidents, 0, 2);
        assert_eq!(s.alerts, 2);
        assert_eq!(s.detected, 1);
        assert_eq!(s.false_positives, 1);
        assert_eq!(s.delays, vec![2.0]);
        assert_eq!(s.recall(), Some(0.5));
        assert_eq!(s.precision(), Some(0.5));
    }
}
