//! Applying a changed `[gateway]` section to a running gateway (SIGHUP in the CLI): pool
//! weights and upstream lists, fault rules, prices and budgets change in place; what cannot
//! change without a restart (listeners, keys, timeouts, the set of pools, scanner) is
//! reported, not silently ignored. Each reload writes a `config_reload` event, each refused one
//! a `config_reload_failed` event.

use crate::state::Shared;
use deepwatch_core::config::gateway::GatewayConfig;
use deepwatch_core::config::{Path, Problems};
use deepwatch_core::http::redact_urls;
use serde::Serialize;

/// What a reload changed, and what it could not.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ReloadReport {
    pub applied: Vec<String>,
    pub needs_restart: Vec<String>,
}

/// A reload that could not happen (the file does not parse, or fails validation): a
/// `config_reload_failed` event, so `deepwatch_deploy_events_total` counts it and the generated
/// alert sees it, not only stderr. The running config stays as it was.
pub fn refused(shared: &Shared, why: &str) {
    shared.events.record("config_reload_failed", "all", redact_urls(why).into_owned());
}

/// Validates `new` and applies what can change at run time.
pub fn apply(shared: &Shared, new: &GatewayConfig) -> Result<ReloadReport, Problems> {
    let mut problems = Problems::default();
    new.validate(&Path::root("gateway"), &mut problems);
    if !problems.is_empty() {
        refused(shared, &problems.to_string());
        return Err(problems);
    }
    let mut report = ReloadReport::default();
    let old = &shared.cfg;
    for pool_cfg in &new.pools {
        let Some(pool) = shared.pools.get(&pool_cfg.name) else {
            report.needs_restart.push(format!("new pool {:?}", pool_cfg.name));
            continue;
        };
        if pool.weight() != pool_cfg.weight {
            if shared.rollouts.controls(&pool.name) {
                report
                    .needs_restart
                    .push(format!("weight of {:?}: a running rollout controls it", pool.name));
            } else {
                shared.pools.set_weight(pool, pool_cfg.weight);
                report.applied.push(format!("{} weight {}%", pool.name, pool_cfg.weight));
            }
        }
        let wanted: Vec<String> =
            pool_cfg.upstreams.iter().map(|u| crate::pools::normalize_url(u)).collect();
        for u in &wanted {
            if shared.pools.add_upstream(pool, u) {
                report.applied.push(format!("{} + {}", pool.name, redact_urls(u)));
            }
        }
        for u in pool.upstreams().iter() {
            if !wanted.contains(&u.url) && shared.pools.remove_upstream(pool, &u.url) {
                report.applied.push(format!("{} - {}", pool.name, u.shown));
            }
        }
    }
    for pool in shared.pools.all() {
        if !new.pools.iter().any(|p| p.name == pool.name) {
            report.needs_restart.push(format!("removed pool {:?}", pool.name));
        }
    }
    if new.faults.rules != old.faults.rules && shared.faults.enabled {
        match shared.faults.set(new.faults.rules.clone()) {
            Ok(_) => report.applied.push("fault rules".into()),
            Err(e) => report.needs_restart.push(format!("fault rules: {e}")),
        }
    }
    if new.prices != old.prices {
        shared.metrics.set_prices(new.prices.clone());
        report.applied.push("prices".into());
    }
    if new.daily_budgets != old.daily_budgets {
        shared.metrics.set_budgets(&new.daily_budgets);
        report.applied.push("daily budgets".into());
    }
    let restart_only = [
        ("listen", old.listen != new.listen),
        ("admin_listen", old.admin_listen != new.admin_listen),
        ("admin_token", old.admin_token != new.admin_token),
        (
            "api_keys",
            old.api_keys != new.api_keys
                || old.require_api_key != new.require_api_key
                || old.pin_keys != new.pin_keys,
        ),
        ("scanner", old.scanner != new.scanner),
        ("retry", old.retry != new.retry),
        ("rollout defaults", old.rollout != new.rollout),
        ("request_log", old.request_log != new.request_log),
        ("faults.enabled", old.faults.enabled != new.faults.enabled),
        (
            "timeouts and limits",
            old.max_body_bytes != new.max_body_bytes
                || old.upstream_connect_timeout != new.upstream_connect_timeout
                || old.upstream_header_timeout != new.upstream_header_timeout
                || old.upstream_idle_timeout != new.upstream_idle_timeout
                || old.keepalive_interval != new.keepalive_interval
                || old.client_header_timeout != new.client_header_timeout,
        ),
    ];
    for (what, changed) in restart_only {
        if changed {
            report.needs_restart.push(what.to_string());
        }
    }
    let detail = format!(
        "applied: [{}]; needs restart: [{}]",
        report.applied.join(", "),
        report.needs_restart.join(", ")
    );
    shared.events.record("config_reload", "all", detail);
    Ok(report)
}
