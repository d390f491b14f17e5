//! Labelled synthetic series for evaluating detectors: seasonal LLM traffic (daily double peak,
//! quieter weekends, day-to-day level wobble, slow growth) with relative noise, and process
//! memory (flat with allocation steps, or leaking). Incidents are injected into the last
//! `eval_days` days only, so earlier days are clean history; every incident is labelled with
//! its kind and extent. Deterministic per seed.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// What was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IncidentKind {
    /// 1-3 points far off (x1.6-x3 or down to 25-45 %).
    Spike,
    /// A level change of 25-50 % lasting 1-6 hours.
    LevelShift,
    /// A level change of 8-15 % lasting 2-6 hours: below the band, the CUSUM's job.
    SubtleShift,
    /// Memory climbing 2-20 MB/min until the end.
    Leak,
}

impl IncidentKind {
    pub fn name(self) -> &'static str {
        match self {
            IncidentKind::Spike => "spike",
            IncidentKind::LevelShift => "level_shift",
            IncidentKind::SubtleShift => "subtle_shift",
            IncidentKind::Leak => "leak",
        }
    }
}

/// A labelled incident: points `start..end` of the series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Incident {
    pub kind: IncidentKind,
    pub start: usize,
    pub end: usize,
}

/// A generated series with its labels.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// Unix seconds of point 0 (a Monday, 00:00 UTC).
    pub start: f64,
    pub step: f64,
    pub values: Vec<f64>,
    pub incidents: Vec<Incident>,
    /// First point of the evaluated days.
    pub eval_from: usize,
}

impl Labelled {
    pub fn times(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.values.len()).map(|i| self.start + i as f64 * self.step)
    }
}

/// 2024-01-01 00:00:00 UTC, a Monday.
pub const MONDAY: f64 = 1_704_067_200.0;
const DAY: usize = 1440;

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Seasonal request-rate-like traffic, one point per minute over `days` days; incidents of
/// `kind` (if any) injected in the last `eval_days` days, `count` of them, apart.
pub fn traffic(
    seed: u64,
    noise: f64,
    days: usize,
    eval_days: usize,
    kind: Option<IncidentKind>,
    count: usize,
) -> Labelled {
    let mut rng = StdRng::seed_from_u64(seed);
    let level = 50.0 + 450.0 * rng.random::<f64>();
    let weekend = 0.5 + 0.3 * rng.random::<f64>();
    let phase = rng.random::<f64>() * 2.0 - 1.0;
    let growth_per_week = 0.05 * rng.random::<f64>();
    let day_wobble: Vec<f64> = (0..days).map(|_| 1.0 + 0.03 * normal(&mut rng)).collect();
    let mut values = Vec::with_capacity(days * DAY);
    for i in 0..days * DAY {
        let day = i / DAY;
        let hour = (i % DAY) as f64 / 60.0 - phase;
        let bump = |center: f64, width: f64| (-((hour - center) / width).powi(2)).exp();
        // Weekends lose daytime traffic; nights look alike every day, so days join smoothly.
        let week = if day % 7 >= 5 { weekend } else { 1.0 };
        let shape =
            0.3 + week * (0.55 * bump(11.0, 3.0) + 0.5 * bump(16.0, 3.5) + 0.2 * bump(21.0, 2.0));
        let trend = 1.0 + growth_per_week * i as f64 / (7 * DAY) as f64;
        // Day-to-day level wobble, interpolated between noons so days join smoothly.
        let x = (i as f64 / DAY as f64 - 0.5).max(0.0);
        let (d0, frac) = (x.floor() as usize, x.fract());
        let wobble =
            day_wobble[d0.min(days - 1)] * (1.0 - frac) + day_wobble[(d0 + 1).min(days - 1)] * frac;
        let mean = level * shape * trend * wobble;
        values.push((mean * (1.0 + noise * normal(&mut rng))).max(0.0));
    }
    let eval_from = (days - eval_days) * DAY;
    let mut incidents = Vec::new();
    if let Some(kind) = kind {
        let slots = place(&mut rng, eval_from, values.len(), count, 8 * 60);
        for start in slots {
            let incident = inject(&mut rng, &mut values, kind, start);
            incidents.push(incident);
        }
    }
    Labelled { start: MONDAY, step: 60.0, values, incidents, eval_from }
}

/// `count` start points in `from..to`, at least `gap` apart and `gap` from the end.
fn place(rng: &mut StdRng, from: usize, to: usize, count: usize, gap: usize) -> Vec<usize> {
    let span = (to - from).saturating_sub(gap) / count.max(1);
    (0..count)
        .map(|k| from + k * span + gap / 4 + rng.random_range(0..(span.saturating_sub(gap)).max(1)))
        .collect()
}

fn inject(rng: &mut StdRng, values: &mut [f64], kind: IncidentKind, start: usize) -> Incident {
    let up = rng.random::<bool>();
    let (len, factor) = match kind {
        IncidentKind::Spike => {
            let f =
                if up { 1.6 + 1.4 * rng.random::<f64>() } else { 0.25 + 0.2 * rng.random::<f64>() };
            (rng.random_range(1..=3), f)
        }
        IncidentKind::LevelShift => {
            let m = 0.25 + 0.25 * rng.random::<f64>();
            (rng.random_range(60..=360), if up { 1.0 + m } else { 1.0 - m })
        }
        IncidentKind::SubtleShift => {
            let m = 0.08 + 0.07 * rng.random::<f64>();
            (rng.random_range(120..=360), if up { 1.0 + m } else { 1.0 - m })
        }
        IncidentKind::Leak => (values.len() - start, 1.0),
    };
    let end = (start + len).min(values.len());
    for v in &mut values[start..end] {
        *v *= factor;
    }
    Incident { kind, start, end }
}

/// Process memory (bytes), one point per minute: a flat base with noise and occasional
/// allocation steps that stay; with `leak`, a climb of 2-20 MB/min from a point in the last
/// `eval_days` days to the end.
pub fn memory(seed: u64, noise_mb: f64, days: usize, eval_days: usize, leak: bool) -> Labelled {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let base = (8.0 + 32.0 * rng.random::<f64>()) * 1e9;
    let mut level = base;
    let mut values = Vec::with_capacity(days * DAY);
    for _ in 0..days * DAY {
        if rng.random::<f64>() < 1.0 / 600.0 {
            // An allocation step (cache growth, a bigger batch) that stays, or a release.
            level += (rng.random::<f64>() - 0.4) * 1e9;
            level = level.max(base * 0.8);
        }
        values.push(level + noise_mb * 1e6 * normal(&mut rng));
    }
    let eval_from = (days - eval_days) * DAY;
    let mut incidents = Vec::new();
    if leak {
        let start = eval_from + rng.random_range(0..(eval_days * DAY / 2).max(1));
        let rate = (2.0 + 18.0 * rng.random::<f64>()) * 1e6;
        for (k, v) in values[start..].iter_mut().enumerate() {
            *v += rate * k as f64;
        }
        incidents.push(Incident { kind: IncidentKind::Leak, start, end: values.len() });
    }
    Labelled { start: MONDAY, step: 60.0, values, incidents, eval_from }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_is_seasonal_deterministic_and_labelled() {
        let a = traffic(1, 0.05, 14, 7, Some(IncidentKind::LevelShift), 3);
        let b = traffic(1, 0.05, 14, 7, Some(IncidentKind::LevelShift), 3);
        assert_eq!(a.values, b.values);
        assert_eq!(a.incidents.len(), 3);
        assert!(a.incidents.iter().all(|i| i.start >= a.eval_from && i.end <= a.values.len()));
        // Noon is busier than 4 am, and a weekday busier than Sunday.
        let at = |day: usize, hour: usize| a.values[day * DAY + hour * 60];
        assert!(at(1, 12) > 1.5 * at(1, 4));
        let weekday: f64 = a.values[DAY..2 * DAY].iter().sum();
        let sunday: f64 = a.values[6 * DAY..7 * DAY].iter().sum();
        assert!(weekday > sunday * 1.15);
        assert!(crate::offline::autocorrelation(&a.values, DAY) > 0.5);
    }

    #[test]
    fn a_leak_climbs_from_its_start() {
        let m = memory(4, 30.0, 3, 1, true);
        let inc = m.incidents[0];
        assert!(m.values[m.values.len() - 1] > m.values[inc.start] + 1e8);
    }
}
