//! `TenantBudgetExceeded`: a tenant's token spend (`deepwatch_spend_total`, priced by the
//! gateway from `gateway.prices`) against its daily budget (`deepwatch_tenant_daily_budget`,
//! exported by the gateway from `gateway.daily_budgets`, so budgets change with a gateway
//! reload and no rule regeneration). Two variants share the name, told apart by `reason`:
//! `spent` (warning) when the last 24 hours spent more than the budget, and `projected`
//! (info) when the last hour's pace would spend more than the budget in a day. Tenants
//! without a budget are never alerted on.

use crate::ids::{l, names, OVERVIEW};
use crate::model::{run, series_text, values, Alert, AlertCheck, Labels, TestCase};
use crate::prometheus::jobs;
use crate::promql::{dur, num, rate, sel, sum_by};
use crate::Ctx;
use deepwatch_core::catalog::gateway;

/// The budget's period.
const DAY_SECS: u64 = 86_400;
/// Window of the pace that `projected` extrapolates to a day.
const PACE_SECS: u64 = 3_600;
/// `projected` must hold this long, so one burst does not notify.
const PACE_FOR_SECS: u64 = 900;

/// `max by (tenant) (deepwatch_tenant_daily_budget > 0)`: one budget per tenant, however
/// many gateways export it.
fn budgets() -> String {
    format!("max by (tenant) ({} > 0)", sel(&gateway::TENANT_DAILY_BUDGET))
}

/// The two `TenantBudgetExceeded` rules.
pub fn rules(ctx: &Ctx<'_>) -> Vec<Alert> {
    let day = ctx.scaled(DAY_SECS);
    let pace = ctx.scaled(PACE_SECS).max(4 * ctx.scrape());
    let spend = sel(&gateway::SPEND);
    let spent = format!(
        "{} > on (tenant) {}",
        sum_by(&["tenant"], &format!("increase({})", spend.range(&dur(day)))),
        budgets()
    );
    let projected = format!(
        "{} * {} > on (tenant) {}",
        sum_by(&["tenant"], &rate(&spend, &dur(pace))),
        day,
        budgets()
    );
    vec![
        Alert {
            name: names::TENANT_BUDGET.into(),
            expr: spent,
            for_secs: 0,
            keep_firing_secs: 0,
            severity: "warning",
            labels: l(&[("reason", "spent")]),
            summary: "Tenant {{ $labels.tenant }} spent more than its daily budget in the last 24 h".into(),
            description: format!(
                "Tenant {{{{ $labels.tenant }}}} spent more over the last {} at gateway.prices than its gateway.daily_budgets entry. Check who sends the traffic (Overview: spend by tenant), then raise the budget or rate-limit the tenant (PUT /admin/degrade).",
                dur(day)
            ),
            dashboard: OVERVIEW,
            condition: format!(
                "spend of the tenant over the last {} is above its `gateway.daily_budgets` entry",
                dur(day)
            ),
        },
        Alert {
            name: names::TENANT_BUDGET.into(),
            expr: projected,
            for_secs: ctx.scaled(PACE_FOR_SECS),
            keep_firing_secs: 0,
            severity: "info",
            labels: l(&[("reason", "projected")]),
            summary: "Tenant {{ $labels.tenant }} is on pace to exceed its daily budget".into(),
            description: format!(
                "At the pace of the last {}, tenant {{{{ $labels.tenant }}}} would spend more in a day than its gateway.daily_budgets entry (Overview: spend by tenant).",
                dur(pace)
            ),
            dashboard: OVERVIEW,
            condition: format!(
                "the tenant's spend rate over the last {} times one day is above its `gateway.daily_budgets` entry",
                dur(pace)
            ),
        },
    ]
}

fn spend_series(tenant: &str, pool: &str, values: String) -> (String, String) {
    let x = l(&[
        ("job", jobs::GATEWAY),
        ("instance", "gw-1:9845"),
        ("tenant", tenant),
        ("model", "deepseek-r1"),
        ("pool", pool),
    ]);
    (series_text(gateway::SPEND.name, &x), values)
}

fn budget_series(tenant: &str, budget: f64, n: u64) -> (String, String) {
    let x = l(&[("job", jobs::GATEWAY), ("instance", "gw-1:9845"), ("tenant", tenant)]);
    (series_text(gateway::TENANT_DAILY_BUDGET.name, &x), run(budget, n))
}

/// A counter adding `inc` per sample for `n` samples, then flat for `rest`. The flat value is
/// what promtool's `0+incxN` reaches by adding `inc` N times: `inc * N` can round below it,
/// which promtool reads as a counter reset (the whole spend again within the day).
fn spending(inc: f64, n: u64, rest: u64) -> String {
    let last = (1..n).fold(0.0, |sum, _| sum + inc);
    values(&[format!("0+{}x{}", num(inc), n - 1), run(last, rest)])
}

fn fired(tenant: &str, reason: &str, severity: &str) -> Labels {
    l(&[("reason", reason), ("severity", severity), ("tenant", tenant)])
}

/// promtool cases: a tenant spending at twice its budget's pace is told it is on pace after
/// `PACE_FOR_SECS` (not before), warned once half a day has spent the budget, the pace notice
/// clears an hour after it stops spending while the 24-hour warning stays, and the warning
/// clears once the last 24 hours hold less than the budget; a tenant with a large budget and
/// one without any never fire.
pub fn tests(ctx: &Ctx<'_>) -> Vec<TestCase> {
    // One sample a minute (scaled): a day of 5-second samples is more than promtool's
    // query engine loads at once.
    let e = ctx.eval().max(ctx.scaled(60));
    let day = ctx.scaled(DAY_SECS).div_ceil(e);
    let pace = (ctx.scaled(PACE_SECS).max(4 * ctx.scrape())).div_ceil(e);
    let pace_for = ctx.scaled(PACE_FOR_SECS).div_ceil(e);
    let budget = 10.0;
    // Twice the budget's pace: the budget is gone after half a day.
    let inc = 2.0 * budget / day as f64;
    let half = day / 2;
    let stop = half + pace + 10;
    // Spending stopped at `stop` after `stop` samples at twice the pace: the day behind falls
    // under the budget once fewer than `half` of them are in it.
    let under_budget = stop + half + 30;
    let total = under_budget + 10;
    let check = |idx: u64, firing: Vec<Labels>| AlertCheck {
        at_secs: idx * e,
        alertname: names::TENANT_BUDGET.into(),
        firing,
    };
    let projected = fired("team-a", "projected", "info");
    let spent = fired("team-a", "spent", "warning");
    let series = vec![
        // team-a spends through two pools; each alone would be on budget.
        spend_series("team-a", "blue", spending(inc / 2.0, stop, total - stop)),
        spend_series("team-a", "green", spending(inc / 2.0, stop, total - stop)),
        budget_series("team-a", budget, total),
        spend_series("team-b", "blue", spending(inc, stop, total - stop)),
        budget_series("team-b", budget * 1000.0, total),
        // team-c has no budget.
        spend_series("team-c", "blue", spending(inc * 10.0, stop, total - stop)),
    ];
    vec![TestCase {
        name: "TenantBudgetExceeded: on pace, then spent, then clear; a large or absent budget never fires"
            .into(),
        interval_secs: e,
        series,
        alerts: vec![
            check(pace_for - 1, vec![]),
            check(pace + pace_for + 2, vec![projected.clone()]),
            check(half - pace.min(half / 4).max(2), vec![projected.clone()]),
            check(half + 10, vec![spent.clone(), projected.clone()]),
            check(stop + pace + 4, vec![spent.clone()]),
            check(stop + half - 30, vec![spent]),
            check(under_budget, vec![]),
        ],
        exprs: vec![],
    }]
}
