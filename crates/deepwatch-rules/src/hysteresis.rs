//! Threshold alerts with hysteresis. An alert enters above its threshold and, once firing,
//! stays firing while the value is above the recovery threshold: the expression ORs in
//! `value > recover and on(ids) ALERTS{alertname, alertstate="firing", severity}`. Each builder
//! also writes the promtool cases that prove it: must not fire (too short, or only inside the
//! band), must fire, must stay firing in the band, must recover (and, with a hold, that a blip
//! restarts the hold).

use crate::model::{run, series_text, values, Alert, AlertCheck, Labels, TestCase};
use crate::promql::{num, series};
use crate::Ctx;
use deepwatch_core::config::rules::{HoldThreshold, Level};

/// What a threshold alert watches.
pub struct Watched<'a> {
    pub alertname: &'a str,
    /// Recorded (or raw) series the thresholds compare against.
    pub series: String,
    /// Labels identifying one alert instance, for `on(...)`.
    pub ids: &'a [&'a str],
    /// Labels of one example series, used by the generated tests.
    pub example: Labels,
    /// Multiplier from config units to series units (MB/min -> bytes/s).
    pub scale: f64,
    pub dashboard: &'static str,
    pub what: &'a str,
    pub unit: &'a str,
}

fn alerts_sel(alertname: &str, severity: &str) -> String {
    series("ALERTS")
        .eq("alertname", alertname)
        .eq("alertstate", "firing")
        .eq("severity", severity)
        .to_string()
}

/// `x > enter or (x > recover and on(ids) ALERTS{...})`.
pub fn hysteresis_expr(
    x: &str,
    enter: f64,
    recover: f64,
    ids: &[&str],
    alertname: &str,
    severity: &str,
) -> String {
    format!(
        "{x} > {} or ({x} > {} and on ({}) {})",
        num(enter),
        num(recover),
        ids.join(", "),
        alerts_sel(alertname, severity)
    )
}

fn with_severity(example: &Labels, severity: &str) -> Labels {
    let mut l = example.clone();
    l.push(("severity".into(), severity.into()));
    l
}

/// A warning/critical pair sharing one alertname, one recovery threshold.
pub fn level_pair(ctx: &Ctx<'_>, w: &Watched<'_>, level: &Level) -> (Vec<Alert>, TestCase) {
    let recover = level.recover * w.scale;
    let fmt = |v: f64| format!("{}{}", num(v), w.unit);
    let mut alerts = Vec::new();
    for (severity, enter) in [("warning", level.warning), ("critical", level.critical)] {
        alerts.push(Alert {
            name: w.alertname.to_string(),
            expr: hysteresis_expr(
                &w.series,
                enter * w.scale,
                recover,
                w.ids,
                w.alertname,
                severity,
            ),
            for_secs: ctx.scaled(level.for_secs),
            keep_firing_secs: 0,
            severity,
            labels: Vec::new(),
            summary: format!("{} above {} ({severity})", w.what, fmt(enter)),
            description: format!(
                "{} of {} has been above {} for {}; the alert clears once it is back below {}.",
                w.what,
                ids_text(w.ids),
                fmt(enter),
                crate::promql::dur(ctx.scaled(level.for_secs)),
                fmt(level.recover)
            ),
            dashboard: w.dashboard,
            condition: format!(
                "{} > {} (`{}`); stays firing until below {}",
                w.what,
                fmt(enter),
                w.series,
                fmt(level.recover)
            ),
        });
    }
    (alerts, pair_test(ctx, w, level))
}

fn ids_text(ids: &[&str]) -> String {
    ids.iter().map(|l| format!("{l} {{{{ $labels.{l} }}}}")).collect::<Vec<_>>().join(", ")
}

/// Sample index -> eval time.
fn at(ctx: &Ctx<'_>, idx: u64) -> u64 {
    idx * ctx.eval()
}

fn pair_test(ctx: &Ctx<'_>, w: &Watched<'_>, level: &Level) -> TestCase {
    let e = ctx.eval();
    let nf = ctx.scaled(level.for_secs).div_ceil(e);
    let s = w.scale;
    let band = (level.recover + level.warning) / 2.0 * s;
    let low = level.recover / 2.0 * s;
    let high = (level.critical * 1.2).max(level.critical + (level.critical - level.warning)) * s;
    let warn_only = (level.warning + level.critical) / 2.0 * s;
    let mut runs = Vec::new();
    let mut idx = 0;
    let mut push = |v: f64, n: u64, runs: &mut Vec<String>| {
        runs.push(run(v, n));
        let start = idx;
        idx += n;
        start
    };
    let mut checks = Vec::new();
    let none = |t: u64| AlertCheck { at_secs: t, alertname: w.alertname.into(), firing: vec![] };
    let both = |t: u64| AlertCheck {
        at_secs: t,
        alertname: w.alertname.into(),
        firing: vec![with_severity(&w.example, "critical"), with_severity(&w.example, "warning")],
    };
    // Inside the band without having fired: must not fire.
    let b = push(band, nf + 2, &mut runs);
    checks.push(none(at(ctx, b + nf + 1)));
    // A spike shorter than `for`: must not fire.
    if nf > 0 {
        let spike = push(high, nf, &mut runs);
        checks.push(none(at(ctx, spike + nf - 1)));
        push(low, 2, &mut runs);
    }
    // Above critical long enough: both fire, not one evaluation earlier.
    let start = push(high, nf + 2, &mut runs);
    if nf > 0 {
        checks.push(none(at(ctx, start + nf - 1)));
    }
    checks.push(both(at(ctx, start + nf)));
    // Back inside the band: both stay firing (hysteresis).
    let band2 = push(band, 3, &mut runs);
    checks.push(both(at(ctx, band2 + 2)));
    // Below recover: both resolve at once.
    let rec = push(low, 2, &mut runs);
    checks.push(none(at(ctx, rec)));
    // Between warning and critical: only the warning fires.
    let warn = push(warn_only, nf + 2, &mut runs);
    checks.push(AlertCheck {
        at_secs: at(ctx, warn + nf),
        alertname: w.alertname.into(),
        firing: vec![with_severity(&w.example, "warning")],
    });
    push(low, 2, &mut runs);
    TestCase {
        name: format!(
            "{}: warning/critical with recovery below {}",
            w.alertname,
            num(level.recover)
        ),
        interval_secs: e,
        series: vec![(series_text(&w.series, &w.example), values(&runs))],
        alerts: checks,
        exprs: vec![],
    }
}

/// The critical latency alert: `consecutive` scrape samples above `enter`, hysteresis down to
/// `recover`, and `keep_firing_for` so it clears only after `hold_secs` below `recover`.
pub fn hold_alert(ctx: &Ctx<'_>, w: &Watched<'_>, h: &HoldThreshold) -> (Alert, Vec<TestCase>) {
    // Cases step by scrape samples, the unit of `consecutive`.
    let e = ctx.scrape();
    let at = |_: &Ctx<'_>, idx: u64| idx * e;
    let hold = ctx.scaled(h.hold_secs);
    let alert = Alert {
        name: w.alertname.to_string(),
        expr: hysteresis_expr(&w.series, h.enter_secs, h.recover_secs, w.ids, w.alertname, "critical"),
        // `consecutive` samples: the first above `enter` starts `for`, the last one ends it.
        for_secs: (h.consecutive.saturating_sub(1)) * ctx.scrape(),
        keep_firing_secs: hold,
        severity: "critical",
        labels: Vec::new(),
        summary: format!("{} above {}{} on {} evaluations", w.what, num(h.enter_secs), w.unit, h.consecutive),
        description: format!(
            "{} of {} exceeded {}{} on {} consecutive evaluations. It resolves only after {} below {}{}.",
            w.what,
            ids_text(w.ids),
            num(h.enter_secs),
            w.unit,
            h.consecutive,
            crate::promql::dur(hold),
            num(h.recover_secs),
            w.unit
        ),
        dashboard: w.dashboard,
        condition: format!(
            "{} > {}{} (`{}`) on {} consecutive evaluations; stays firing until {} below {}{}",
            w.what,
            num(h.enter_secs),
            w.unit,
            w.series,
            h.consecutive,
            crate::promql::dur(hold),
            num(h.recover_secs),
            w.unit
        ),
    };
    let n = h.consecutive;
    let high = h.enter_secs * 1.5;
    let band = (h.enter_secs + h.recover_secs) / 2.0;
    let low = h.recover_secs / 2.0;
    let hold_evals = hold.div_ceil(e);
    let firing = |t: u64| AlertCheck {
        at_secs: t,
        alertname: w.alertname.into(),
        firing: vec![with_severity(&w.example, "critical")],
    };
    let none = |t: u64| AlertCheck { at_secs: t, alertname: w.alertname.into(), firing: vec![] };

    // Case 1: fire on the n-th evaluation, hold in the band, clear `hold` after the band.
    let mut runs = vec![run(low, 2)];
    let mut checks = Vec::new();
    let mut idx = 2;
    if n > 1 {
        runs.push(run(high, n - 1)); // one evaluation short: must not fire
        checks.push(none(at(ctx, idx + n - 2)));
        idx += n - 1;
        runs.push(run(low, 1));
        idx += 1;
    }
    let start = idx;
    runs.push(run(high, n + 1));
    idx += n + 1;
    if n > 1 {
        checks.push(none(at(ctx, start + n - 2)));
    }
    checks.push(firing(at(ctx, start + n - 1)));
    let band_start = idx;
    runs.push(run(band, 3));
    idx += 3;
    checks.push(firing(at(ctx, band_start + 2)));
    let below = idx;
    runs.push(run(low, hold_evals + 4));
    checks.push(firing(at(ctx, below + hold_evals - 1)));
    checks.push(none(at(ctx, below + hold_evals)));
    let case1 = TestCase {
        name: format!(
            "{}: fires after {n} evaluations, clears {} after recovery",
            w.alertname,
            crate::promql::dur(hold)
        ),
        interval_secs: e,
        series: vec![(series_text(&w.series, &w.example), values(&runs))],
        alerts: checks,
        exprs: vec![],
    };

    // Case 2: a blip above `recover` during the hold restarts it.
    let mut runs = vec![run(high, n + 1)];
    let below = n + 1;
    let blip = below + hold_evals / 2;
    runs.push(run(low, blip - below));
    runs.push(run(band, 1));
    runs.push(run(low, hold_evals + 4));
    let checks = vec![
        firing(at(ctx, n - 1)),
        firing(at(ctx, below + hold_evals)), // would have cleared here without the blip
        firing(at(ctx, blip + hold_evals)),
        none(at(ctx, blip + 1 + hold_evals)),
    ];
    let case2 = TestCase {
        name: format!("{}: a blip above {} restarts the hold", w.alertname, num(h.recover_secs)),
        interval_secs: e,
        series: vec![(series_text(&w.series, &w.example), values(&runs))],
        alerts: checks,
        exprs: vec![],
    };
    (alert, vec![case1, case2])
}
