//! `CanaryFailing`: while the gateway runs a rollout (`deepwatch_rollout_step > 0` for the
//! canary pool), the canary is compared with the other pools serving the same model over the
//! same window, as the gateway's own step judge does, but from Prometheus: a backstop when the
//! in-process judge is misconfigured or lacks samples, and the trigger of the analyzer's
//! default `rollback_canary` policy. Two variants share the name, told apart by `reason`:
//! `errors` (canary error ratio more than `ERROR_RATIO_INCREASE` above the stable pools') and
//! `ttft` (canary TTFT p95 above `TTFT_P95_RATIO` times the stable pools' plus
//! `TTFT_SLACK_SECS`). Both need `MIN_REQUESTS` canary requests in the window, so one failed
//! request of three never rolls a release back. Severity warning: WeCom, and the analyzer's
//! webhook through the route for remediable alerts.

use crate::ids::{l, names, MODEL};
use crate::model::{series_text, Alert, AlertCheck, Labels, TestCase};
use crate::prometheus::jobs;
use crate::promql::{dur, num, rate, sel, sum_by, Sel};
use crate::recording::ERROR_OUTCOMES;
use crate::Ctx;
use deepwatch_core::catalog::gateway;

/// "Clearly worse": error ratio this much (absolute) above the stable pools'.
pub const ERROR_RATIO_INCREASE: f64 = 0.05;
/// "Clearly worse": TTFT p95 above this multiple of the stable pools' ...
pub const TTFT_P95_RATIO: f64 = 1.5;
/// ... plus this much (bucket interpolation noise on fast models).
pub const TTFT_SLACK_SECS: f64 = 0.1;
/// Canary requests the window must hold before the canary is judged.
pub const MIN_REQUESTS: u64 = 10;

/// Labels of one canary alert instance.
const IDS: &[&str] = &["model", "model_version", "pool"];

/// Comparison window: 2 minutes (scaled), at least four scrapes.
pub fn window_secs(ctx: &Ctx<'_>) -> u64 {
    ctx.scaled(120).max(4 * ctx.scrape())
}

/// `(max by (pool) (deepwatch_rollout_step) > 0)`: pools that are the canary of a running rollout.
fn canary_pools() -> String {
    format!("(max by (pool) ({}) > 0)", sel(&gateway::ROLLOUT_STEP))
}

/// Error ratio by `labels` of `rate(requests[w])` series filtered by `filter` (`and`/`unless`).
fn error_ratio(labels: &[&str], w: &str, filter: &str) -> String {
    let req = sel(&gateway::REQUESTS);
    let total = sum_by(labels, &format!("{} {filter}", rate(&req, w)));
    let errors = sum_by(
        labels,
        &format!("{} {filter}", rate(&req.clone().re("outcome", ERROR_OUTCOMES), w)),
    );
    format!("(({errors} or {total} * 0) / {total})")
}

fn p95(labels: &[&str], w: &str, filter: &str) -> String {
    let mut with_le = labels.to_vec();
    with_le.push("le");
    let buckets = sel(&gateway::TIME_TO_FIRST_TOKEN).bucket();
    format!(
        "histogram_quantile(0.95, {})",
        sum_by(&with_le, &format!("{} {filter}", rate(&buckets, w)))
    )
}

/// `and on (model, pool) (sum by (model, pool) (increase(x[w])) >= MIN_REQUESTS)`.
fn enough(counter: &Sel, w: &str) -> String {
    format!(
        "and on (model, pool) ({} >= {MIN_REQUESTS})",
        sum_by(&["model", "pool"], &format!("increase({})", counter.range(w)))
    )
}

/// The two `CanaryFailing` rules.
pub fn rules(ctx: &Ctx<'_>) -> Vec<Alert> {
    let w = dur(window_secs(ctx));
    let w = w.as_str();
    let is_canary = format!("and on (pool) {}", canary_pools());
    let not_canary = format!("unless on (pool) {}", canary_pools());
    let errors = format!(
        "{} > on (model) group_left () ({} + {}) {}",
        error_ratio(IDS, w, &is_canary),
        error_ratio(&["model"], w, &not_canary),
        num(ERROR_RATIO_INCREASE),
        enough(&sel(&gateway::REQUESTS), w)
    );
    let ttft = format!(
        "{} > on (model) group_left () ({} * {} + {}) {}",
        p95(IDS, w, &is_canary),
        p95(&["model"], w, &not_canary),
        num(TTFT_P95_RATIO),
        num(TTFT_SLACK_SECS),
        enough(&sel(&gateway::TIME_TO_FIRST_TOKEN).count(), w)
    );
    let for_secs = ctx.scaled(60);
    let alert = |expr: String, reason: &str, what: String| {
        Alert {
        name: names::CANARY_FAILING.into(),
        expr,
        for_secs,
        keep_firing_secs: 0,
        severity: "warning",
        labels: l(&[("reason", reason)]),
        summary: format!(
            "Canary {{{{ $labels.pool }}}} ({{{{ $labels.model_version }}}}) of {{{{ $labels.model }}}} is clearly worse than the stable pools: {what}"
        ),
        description: format!(
            "During a rollout, the canary pool {{{{ $labels.pool }}}} {what} over the last {w} (at least {MIN_REQUESTS} canary requests). Roll back (POST /admin/rollouts/rollback), or let the analyzer's rollback_canary policy do it."
        ),
        dashboard: MODEL,
        condition: format!("during a rollout, compared with the stable pools over {w} (at least {MIN_REQUESTS} canary requests), {what}"),
    }
    };
    vec![
        alert(
            errors,
            "errors",
            format!(
                "its error ratio is more than {} points above theirs",
                num(ERROR_RATIO_INCREASE * 100.0)
            ),
        ),
        alert(
            ttft,
            "ttft",
            format!(
                "its TTFT p95 is above {} x theirs + {}s",
                num(TTFT_P95_RATIO),
                num(TTFT_SLACK_SECS)
            ),
        ),
    ]
}

/// Counter values (promtool notation) adding `inc` per sample over consecutive segments
/// `(inc, samples)`; the first sample is 0.
fn counter(segments: &[(f64, u64)]) -> String {
    let mut out = Vec::new();
    let mut value: Option<f64> = None;
    for &(inc, n) in segments {
        if n == 0 {
            continue;
        }
        let start = value.map_or(0.0, |v| v + inc);
        out.push(if n == 1 {
            num(start)
        } else {
            format!("{}+{}x{}", num(start), num(inc), n - 1)
        });
        value = Some(start + inc * (n - 1) as f64);
    }
    out.join(" ")
}

/// Gauge values: `v` for `n` samples per segment.
fn gauge(segments: &[(f64, u64)]) -> String {
    let runs: Vec<String> = segments.iter().map(|&(v, n)| crate::model::run(v, n)).collect();
    crate::model::values(&runs)
}

fn pool_labels(pool: &str, version: &str) -> Labels {
    l(&[
        ("model", "deepseek-r1"),
        ("model_version", version),
        ("pool", pool),
        ("endpoint", "/v1/chat/completions"),
        ("tenant", "default"),
    ])
}

fn requests(pool: &str, version: &str, outcome: &str, values: String) -> (String, String) {
    let mut x = pool_labels(pool, version);
    x.push(("outcome".into(), outcome.into()));
    x.push(("code".into(), if outcome == "ok" { "200" } else { "502" }.into()));
    (series_text(gateway::REQUESTS.name, &x), values)
}

fn step(pool: &str, values: String) -> (String, String) {
    let x = l(&[("job", jobs::GATEWAY), ("instance", "gw-1:9845"), ("pool", pool)]);
    (series_text(gateway::ROLLOUT_STEP.name, &x), values)
}

/// TTFT histogram series of one pool: `fast` requests per sample under 0.5 s and `slow`
/// ones between 1 and 2.5 s, per segment.
fn ttft(pool: &str, version: &str, segments: &[(f64, f64, u64)]) -> Vec<(String, String)> {
    let name = |suffix: &str| format!("{}{suffix}", gateway::TIME_TO_FIRST_TOKEN.name);
    let mut out = Vec::new();
    for (le, share) in [("0.5", 0), ("1", 0), ("2.5", 1), ("+Inf", 1)] {
        let mut x = pool_labels(pool, version);
        x.push(("le".into(), le.into()));
        let segs: Vec<(f64, u64)> =
            segments.iter().map(|&(f, s, n)| (f + if share == 1 { s } else { 0.0 }, n)).collect();
        out.push((series_text(&name("_bucket"), &x), counter(&segs)));
    }
    let segs: Vec<(f64, u64)> = segments.iter().map(|&(f, s, n)| (f + s, n)).collect();
    out.push((series_text(&name("_count"), &pool_labels(pool, version)), counter(&segs)));
    out
}

fn fired(reason: &str) -> Labels {
    l(&[
        ("model", "deepseek-r1"),
        ("model_version", "v2"),
        ("pool", "green"),
        ("reason", reason),
        ("severity", "warning"),
    ])
}

/// promtool cases: fires only during a rollout, on errors and on slow first tokens, never on
/// a slightly worse or barely used canary, and clears when the rollout ends or the canary
/// recovers.
pub fn tests(ctx: &Ctx<'_>) -> Vec<TestCase> {
    let e = ctx.eval();
    let win = window_secs(ctx).div_ceil(e);
    let nf = ctx.scaled(60).div_ceil(e);
    let check = |idx: u64, firing: Vec<Labels>| AlertCheck {
        at_secs: idx * e,
        alertname: names::CANARY_FAILING.into(),
        firing,
    };
    let mut out = Vec::new();

    // Case 1: green fails 20 % of its requests throughout; it is a canary only from `start`
    // to `end`. Blue serves cleanly, its TTFT equals green's.
    let start = win + 4;
    let end = start + nf + 6;
    let total = end + 5;
    let mut series = vec![
        requests("blue", "v1", "ok", counter(&[(20.0, total)])),
        requests("blue", "v1", "upstream_error", counter(&[(0.0, total)])),
        requests("green", "v2", "ok", counter(&[(8.0, total)])),
        requests("green", "v2", "upstream_error", counter(&[(2.0, total)])),
        step("green", gauge(&[(0.0, start), (1.0, end - start), (0.0, total - end)])),
        step("blue", gauge(&[(0.0, total)])),
    ];
    series.extend(ttft("blue", "v1", &[(10.0, 0.0, total)]));
    series.extend(ttft("green", "v2", &[(10.0, 0.0, total)]));
    out.push(TestCase {
        name: "CanaryFailing: canary errors fire only while its rollout runs".into(),
        interval_secs: e,
        series,
        alerts: vec![
            check(start - 1, vec![]),
            check(start + nf + 1, vec![fired("errors")]),
            check(end + 1, vec![]),
        ],
        exprs: vec![],
    });

    // Case 2: a rollout runs throughout. Green fails 2 % against blue's 1 % (not clearly
    // worse) and turns slow to the first token from `slow` to `fast`.
    let slow = win + 2;
    let fast = slow + win + nf + 4;
    let total = fast + win + 4;
    let mut series = vec![
        requests("blue", "v1", "ok", counter(&[(99.0, total)])),
        requests("blue", "v1", "upstream_error", counter(&[(1.0, total)])),
        requests("green", "v2", "ok", counter(&[(9.8, total)])),
        requests("green", "v2", "upstream_error", counter(&[(0.2, total)])),
        step("green", gauge(&[(2.0, total)])),
        step("blue", gauge(&[(0.0, total)])),
    ];
    series.extend(ttft("blue", "v1", &[(100.0, 0.0, total)]));
    series.extend(ttft(
        "green",
        "v2",
        &[(10.0, 0.0, slow), (0.0, 10.0, fast - slow), (10.0, 0.0, total - fast)],
    ));
    out.push(TestCase {
        name: "CanaryFailing: slow first tokens fire, a slightly worse error ratio does not".into(),
        interval_secs: e,
        series,
        alerts: vec![
            check(slow - 1, vec![]),
            check(slow + win + nf, vec![fired("ttft")]),
            check(fast + win + 2, vec![]),
        ],
        exprs: vec![],
    });

    // Case 3: a canary with a trickle of requests, half of them failing, is not judged.
    let total = win + nf + 10;
    let mut series = vec![
        requests("blue", "v1", "ok", counter(&[(20.0, total)])),
        requests("green", "v2", "ok", counter(&[(0.05, total)])),
        requests("green", "v2", "upstream_error", counter(&[(0.05, total)])),
        step("green", gauge(&[(1.0, total)])),
        step("blue", gauge(&[(0.0, total)])),
    ];
    series.extend(ttft("blue", "v1", &[(20.0, 0.0, total)]));
    series.extend(ttft("green", "v2", &[(0.0, 0.1, total)]));
    out.push(TestCase {
        name: "CanaryFailing: a canary with too few requests is not judged".into(),
        interval_secs: e,
        series,
        alerts: vec![check(total - 2, vec![])],
        exprs: vec![],
    });
    out
}
