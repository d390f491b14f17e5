//! Condition alerts: an expression that must hold for `for` before the alert fires, and a
//! recovery hold (`keep_firing_for`) that keeps it firing until the condition has been gone
//! that long. States read from gauges (an engine stalled, a GPU off the bus) and events read
//! from counters (an XID, an uncorrected ECC error, a failed remediation) both fit.
//!
//! `case` writes the promtool case that proves one such alert from a scenario of good and bad
//! samples: nothing fires while good; a spike shorter than `for` does not fire; a sustained
//! condition fires on time (to the evaluation, for gauges); a short gap does not resolve it (no
//! flapping); and it resolves once the condition has been gone for the hold.

use crate::model::{series_text, Alert, AlertCheck, Labels, TestCase};
use crate::promql::num;
use crate::Ctx;

/// How one input series behaves while the scenario is good or bad.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// A gauge: its value while good and while bad; `None` means the series is absent (a
    /// staleness marker when it disappears, then no samples).
    Gauge { good: Option<f64>, bad: Option<f64> },
    /// A counter that stays flat while good and grows by `per_sample` while bad. With
    /// `appears`, the series does not exist before the first bad sample (counters created on
    /// their first event, such as XID codes).
    Counter { per_sample: f64, appears: bool },
    /// A counter that grows by `per_sample` while good and stays flat while bad (successful
    /// requests that stop while failures go on).
    Stalls { per_sample: f64 },
    /// A counter that grows while good and restarts from zero on every other sample while bad
    /// (a crash loop: the process behind it keeps restarting).
    Restarts,
    /// A Unix timestamp that follows the clock while good and freezes while bad (the last
    /// push of a batch job).
    Clock,
}

/// A scenario for one alertname: its input series and the alerts expected while it fires.
pub struct Scenario {
    pub name: String,
    pub inputs: Vec<(String, Labels, Input)>,
    /// Every alert of the alertname firing during the bad phase (labels, severity included).
    pub fired: Vec<Labels>,
    /// Evaluations the condition may take to turn true after the inputs turn bad: 0 for a
    /// comparison of the latest sample or `increase(x[w]) > 0`, the window (plus one) for a
    /// rate above a threshold, the threshold for `time() - x > threshold`.
    pub on_lag: u64,
    /// Evaluations the condition may stay true after the inputs turn good: 0 for a
    /// comparison of the latest sample, the window (plus one) for anything over a window.
    pub off_lag: u64,
}

impl Scenario {
    /// A comparison of the latest samples: true exactly while bad.
    pub fn exact(name: &str, inputs: Vec<(String, Labels, Input)>, fired: Vec<Labels>) -> Self {
        Scenario { name: name.into(), inputs, fired, on_lag: 0, off_lag: 0 }
    }

    /// `increase(x[w]) > 0` over counters: true from the first event until the window has
    /// passed the last one (`window` in evaluations).
    pub fn events(
        name: &str,
        inputs: Vec<(String, Labels, Input)>,
        fired: Vec<Labels>,
        window: u64,
    ) -> Self {
        Scenario { name: name.into(), inputs, fired, on_lag: 0, off_lag: window + 1 }
    }

    /// A rate over a window compared with a threshold: may lag either way by the window.
    pub fn windowed(
        name: &str,
        inputs: Vec<(String, Labels, Input)>,
        fired: Vec<Labels>,
        window: u64,
    ) -> Self {
        Scenario { name: name.into(), inputs, fired, on_lag: window + 1, off_lag: window + 1 }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Good,
    Bad,
}

/// Renders sample values in promtool's expanding notation: runs with a constant step become
/// `a+bxn`, absent samples `_` (a `stale` marker where a series disappears).
fn render(samples: &[Option<f64>]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < samples.len() {
        match samples[i] {
            None => {
                let was_present = i > 0 && samples[i - 1].is_some();
                if was_present {
                    out.push("stale".into());
                    i += 1;
                    continue;
                }
                let mut j = i;
                while j < samples.len() && samples[j].is_none() {
                    j += 1;
                }
                // `_xN` is N missing samples (unlike `axN`, which is N + 1 values).
                out.push(if j - i == 1 { "_".into() } else { format!("_x{}", j - i) });
                i = j;
            }
            Some(first) => {
                let step = match samples.get(i + 1) {
                    Some(Some(next)) => next - first,
                    _ => 0.0,
                };
                let mut j = i + 1;
                while j < samples.len()
                    && samples[j]
                        .is_some_and(|v| (v - (first + step * (j - i) as f64)).abs() < 1e-9)
                {
                    j += 1;
                }
                let n = j - i - 1;
                out.push(match (n, step == 0.0) {
                    (0, _) => num(first),
                    (_, true) => format!("{}x{n}", num(first)),
                    (_, false) if step > 0.0 => format!("{}+{}x{n}", num(first), num(step)),
                    (_, false) => format!("{}-{}x{n}", num(first), num(-step)),
                });
                i = j;
            }
        }
    }
    out.join(" ")
}

/// Values of one input over the phases, one sample per evaluation of `eval_secs`.
fn samples(input: Input, phases: &[Phase], eval_secs: u64) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(phases.len());
    let mut counter: Option<f64> = None;
    let mut clock = 0.0;
    let mut restarts = 0u64;
    for (i, phase) in phases.iter().enumerate() {
        let bad = *phase == Phase::Bad;
        out.push(match input {
            Input::Gauge { good, bad: b } => {
                if bad {
                    b
                } else {
                    good
                }
            }
            Input::Counter { per_sample, appears } => {
                counter = match (counter, bad) {
                    (None, false) if appears => None,
                    (None, false) => Some(100.0),
                    (None, true) if appears => Some(per_sample),
                    (None, true) => Some(100.0 + per_sample),
                    (Some(c), true) => Some(c + per_sample),
                    (Some(c), false) => Some(c),
                };
                counter
            }
            Input::Stalls { per_sample } => {
                counter = match (counter, bad) {
                    (None, _) => Some(100.0),
                    (Some(c), false) => Some(c + per_sample),
                    (Some(c), true) => Some(c),
                };
                counter
            }
            Input::Restarts => {
                let next = match (counter, bad) {
                    (None, _) => 1000.0,
                    (Some(c), false) => c + 10.0,
                    (Some(_), true) => {
                        restarts += 1;
                        if restarts % 2 == 1 {
                            0.0
                        } else {
                            5.0
                        }
                    }
                };
                counter = Some(next);
                counter
            }
            Input::Clock => {
                if !bad {
                    clock = (i as u64 * eval_secs) as f64;
                }
                Some(clock)
            }
        });
    }
    out
}

/// The promtool case for `alert` under `scenario` (see the module docs for what it checks).
pub fn case(ctx: &Ctx<'_>, alert: &Alert, scenario: Scenario) -> TestCase {
    let e = ctx.eval();
    let nf = alert.for_secs.div_ceil(e);
    let nk = alert.keep_firing_secs.div_ceil(e);
    let (on_lag, off_lag) = (scenario.on_lag, scenario.off_lag);
    let exact = on_lag == 0 && off_lag == 0;
    let mut phases: Vec<Phase> = Vec::new();
    let push = |phase: Phase, n: u64, phases: &mut Vec<Phase>| {
        let start = phases.len() as u64;
        phases.extend(std::iter::repeat_n(phase, n as usize));
        start
    };
    let name = alert.name.as_str();
    let none = |idx: u64| AlertCheck { at_secs: idx * e, alertname: name.into(), firing: vec![] };
    let firing = |idx: u64| AlertCheck {
        at_secs: idx * e,
        alertname: name.into(),
        firing: scenario.fired.clone(),
    };
    let mut checks = Vec::new();

    // Good long enough for every window to fill: nothing fires.
    let warm = push(Phase::Good, on_lag.max(off_lag) + 3, &mut phases);
    checks.push(none(warm + on_lag.max(off_lag) + 2));
    // A spike one evaluation shorter than `for` does not fire.
    if exact && nf >= 2 {
        let spike = push(Phase::Bad, nf - 1, &mut phases);
        push(Phase::Good, 2, &mut phases);
        checks.push(none(spike + nf - 2));
        checks.push(none(spike + nf));
    }
    // Sustained: fires `for` after the condition holds (exactly, when it holds at once).
    let start = push(Phase::Bad, nf + on_lag + 3, &mut phases);
    if nf >= 1 {
        checks.push(none(start + nf - 1));
    }
    checks.push(firing(start + nf + on_lag));
    // A gap shorter than the hold does not resolve it (when the condition comes back within
    // the hold: not for staleness, which takes its whole threshold to return).
    if nk >= 1 && on_lag + 1 < nk {
        let gap = push(Phase::Good, 1, &mut phases);
        push(Phase::Bad, 2, &mut phases);
        checks.push(firing(gap));
        checks.push(firing(gap + 1));
    }
    // Good again: still firing within the hold, resolved after the condition has cleared
    // and the hold has passed.
    let good = push(Phase::Good, nk + off_lag + 4, &mut phases);
    if nk >= 1 {
        checks.push(firing(good + nk - 1));
    }
    checks.push(none(good + nk + off_lag));
    checks.sort_by_key(|c| c.at_secs);

    let series = scenario
        .inputs
        .iter()
        .map(|(metric, labels, input)| {
            (series_text(metric, labels), render(&samples(*input, &phases, e)))
        })
        .collect();
    TestCase {
        name: format!("{name}: {}", scenario.name),
        interval_secs: e,
        series,
        alerts: checks,
        exprs: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_runs_steps_gaps_and_staleness() {
        let s = |v: &[Option<f64>]| render(v);
        assert_eq!(s(&[Some(1.0), Some(1.0), Some(1.0)]), "1x2");
        assert_eq!(s(&[Some(0.0), Some(2.0), Some(4.0), Some(4.0)]), "0+2x2 4");
        assert_eq!(s(&[None, None, Some(1.0), None, None]), "_x2 1 stale _");
        assert_eq!(s(&[Some(5.0), Some(3.0), Some(1.0)]), "5-2x2");
        assert_eq!(s(&[None]), "_");
    }

    #[test]
    fn counters_appear_restart_stall_and_clocks_freeze() {
        use Phase::{Bad, Good};
        let phases = [Good, Good, Bad, Bad, Good];
        let c = samples(Input::Counter { per_sample: 2.0, appears: true }, &phases, 5);
        assert_eq!(c, [None, None, Some(2.0), Some(4.0), Some(4.0)]);
        let c = samples(Input::Counter { per_sample: 2.0, appears: false }, &phases, 5);
        assert_eq!(c, [Some(100.0), Some(100.0), Some(102.0), Some(104.0), Some(104.0)]);
        let r = samples(Input::Restarts, &phases, 5);
        assert_eq!(r, [Some(1000.0), Some(1010.0), Some(0.0), Some(5.0), Some(15.0)]);
        let s = samples(Input::Stalls { per_sample: 3.0 }, &phases, 5);
        assert_eq!(s, [Some(100.0), Some(103.0), Some(103.0), Some(103.0), Some(106.0)]);
        let t = samples(Input::Clock, &phases, 5);
        assert_eq!(t, [Some(0.0), Some(5.0), Some(5.0), Some(5.0), Some(20.0)]);
    }
}
