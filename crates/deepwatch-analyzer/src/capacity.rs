//! Capacity planning from Prometheus history: per model, the peak demand over the history
//! window, the replicas serving it now, the headroom they leave at the target load, and the
//! replicas the design rules recommend (1.5x the peak at 80 % per replica, within 3..=10).
//! Used by `deepwatch analyze capacity` and, on an interval, by the daemon, which exports
//! `deepwatch_capacity_recommended_replicas{model}` for KEDA or a human to act on.

use crate::prom::{PromClient, PromError};
use crate::remediate::scaling::{ScaleDecision, ScalingRules};
use deepwatch_core::catalog::analyzer::CAPACITY_RECOMMENDED_REPLICAS;
use deepwatch_core::config::remediation::ScalingConfig;
use deepwatch_core::expo::MetricSink;
use deepwatch_core::metrics::{Encode, GaugeVec};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error(transparent)]
    Prometheus(#[from] PromError),
    #[error("demand query returned no series between {start} and {end}: {query}")]
    NoData { query: String, start: String, end: String },
}

/// The plan for one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelCapacity {
    pub model: String,
    /// Highest demand in the window (in the unit of `demand_query`).
    pub peak_demand: f64,
    /// When it happened (Unix seconds).
    pub peak_at: f64,
    /// Demand at the end of the window.
    pub current_demand: f64,
    /// Replicas serving the model now, when the replicas query knows.
    pub current_replicas: Option<u32>,
    /// Load per replica at the peak with today's replicas (1.0 = every replica full).
    pub peak_load_ratio: Option<f64>,
    /// Share of today's capacity at the target load left unused at the peak (negative: short).
    pub headroom_ratio: Option<f64>,
    /// Replicas for `peak_factor` x the peak at the target load, within min..=max.
    pub recommended_replicas: u32,
    /// What the scaling rules would do now: `scale_out`, `scale_in` or `hold`.
    pub decision_now: Option<&'static str>,
}

/// Inputs of a plan.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub rules: ScalingRules,
    pub replica_capacity: f64,
    pub demand_query: String,
    pub replicas_query: String,
    /// Window end and length, and resolution, in seconds.
    pub end: f64,
    pub window_secs: f64,
    pub step_secs: f64,
}

impl PlanInput {
    pub fn from_config(c: &ScalingConfig, end: f64) -> PlanInput {
        PlanInput {
            rules: ScalingRules::from(c),
            replica_capacity: c.replica_capacity,
            demand_query: c.demand_query.clone(),
            replicas_query: c.replicas_query.clone(),
            end,
            window_secs: c.history.as_secs_f64(),
            step_secs: c.history_step.as_secs_f64(),
        }
    }
}

fn model_of(labels: &BTreeMap<String, String>) -> String {
    labels.get("model").cloned().unwrap_or_else(|| "all".to_string())
}

/// Reads the history and plans every model it finds.
pub async fn plan(
    prom: &PromClient,
    input: &PlanInput,
) -> Result<Vec<ModelCapacity>, CapacityError> {
    let start = input.end - input.window_secs;
    let series = prom.query_range(&input.demand_query, start, input.end, input.step_secs).await?;
    let replicas = prom.query(&input.replicas_query, Some(input.end)).await?;
    let replicas: BTreeMap<String, u32> = replicas
        .iter()
        .filter(|s| s.value.is_finite() && s.value >= 0.0)
        .map(|s| (model_of(&s.labels), s.value.round() as u32))
        .collect();
    let mut demand: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in series {
        demand.entry(model_of(&s.labels)).or_default().extend(s.points);
    }
    demand.retain(|_, points| points.iter().any(|p| p.1.is_finite()));
    if demand.is_empty() {
        return Err(CapacityError::NoData {
            query: input.demand_query.clone(),
            start: iso(start),
            end: iso(input.end),
        });
    }
    Ok(demand
        .into_iter()
        .map(|(model, points)| plan_model(&model, &points, replicas.get(&model).copied(), input))
        .collect())
}

/// The plan for one model's demand history (pure, for tests and offline use).
pub fn plan_model(
    model: &str,
    points: &[(f64, f64)],
    current_replicas: Option<u32>,
    input: &PlanInput,
) -> ModelCapacity {
    let finite = points.iter().filter(|p| p.1.is_finite());
    let (peak_at, peak_demand) =
        finite.clone().fold((0.0, 0.0), |best, p| if p.1 > best.1 { *p } else { best });
    let current_demand = finite.max_by(|a, b| a.0.total_cmp(&b.0)).map(|p| p.1).unwrap_or(0.0);
    let cap = input.replica_capacity;
    let rules = &input.rules;
    let per_replica = |r: u32| (r > 0).then_some(r as f64 * cap);
    let peak_load_ratio = current_replicas.and_then(per_replica).map(|c| peak_demand / c);
    let headroom_ratio = current_replicas.map(|r| rules.headroom_ratio(r, peak_demand, cap));
    let decision_now = current_replicas.filter(|r| *r > 0).map(|r| {
        match rules.decide(r, current_demand / (r as f64 * cap)) {
            ScaleDecision::Out { .. } => "scale_out",
            ScaleDecision::In { .. } => "scale_in",
            ScaleDecision::Hold { .. } => "hold",
        }
    });
    ModelCapacity {
        model: model.to_string(),
        peak_demand,
        peak_at,
        current_demand,
        current_replicas,
        peak_load_ratio,
        headroom_ratio,
        recommended_replicas: rules.planned_replicas(peak_demand, cap),
        decision_now,
    }
}

fn iso(t: f64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{t}"))
}

/// A fixed-width table for the terminal.
pub fn render_table(plans: &[ModelCapacity], input: &PlanInput) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Capacity over {} .. {} (step {} s); {} per replica at 100 %, target {:.0} %, plan {}x peak, replicas {}..={}",
        iso(input.end - input.window_secs),
        iso(input.end),
        input.step_secs,
        input.replica_capacity,
        input.rules.target_load_ratio * 100.0,
        input.rules.peak_factor,
        input.rules.min_replicas,
        input.rules.max_replicas
    );
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>11} {:<23} {:>12} {:>9} {:>11} {:>9}",
        "model", "replicas", "peak", "peak at", "load@peak", "headroom", "recommended", "now"
    );
    let pct =
        |v: Option<f64>| v.map(|v| format!("{:+.0}%", v * 100.0)).unwrap_or_else(|| "-".into());
    for p in plans {
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>11.1} {:<23} {:>12} {:>9} {:>11} {:>9}",
            p.model,
            p.current_replicas.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            p.peak_demand,
            iso(p.peak_at),
            p.peak_load_ratio.map(|v| format!("{:.0}%", v * 100.0)).unwrap_or_else(|| "-".into()),
            pct(p.headroom_ratio),
            p.recommended_replicas,
            p.decision_now.unwrap_or("-"),
        );
    }
    out
}

/// Pretty JSON of the plans, for `--format json`.
pub fn to_json(plans: &[ModelCapacity]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(plans)
}

/// The daemon's gauge of recommended replicas.
pub struct CapacityGauge(GaugeVec);

impl Default for CapacityGauge {
    fn default() -> Self {
        CapacityGauge(GaugeVec::new(&CAPACITY_RECOMMENDED_REPLICAS))
    }
}

impl CapacityGauge {
    pub fn update(&self, plans: &[ModelCapacity]) {
        for p in plans {
            self.0.set(&[&p.model], p.recommended_replicas as f64);
        }
    }
}

impl Encode for CapacityGauge {
    fn encode(&self, sink: &mut MetricSink) {
        self.0.encode(sink);
    }
}

/// `30s`, `15m`, `24h`, `7d`, `2w`, or plain seconds.
pub fn parse_duration_secs(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 =
        number.parse().map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 24h, 7d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, m, h, d, w)")),
    };
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PlanInput {
        PlanInput::from_config(&ScalingConfig::default(), 1_800_000_000.0)
    }

    #[test]
    fn the_peak_sets_the_plan_and_today_sets_the_decision() {
        // A day with a 1000-sequence peak; 256 per replica: 1500 / 204.8 -> 8 replicas.
        let points: Vec<(f64, f64)> =
            (0..100).map(|i| (i as f64 * 60.0, if i == 40 { 1000.0 } else { 300.0 })).collect();
        let p = plan_model("deepseek-chat", &points, Some(4), &input());
        assert_eq!(p.peak_demand, 1000.0);
        assert_eq!(p.peak_at, 2400.0);
        assert_eq!(p.recommended_replicas, 8);
        // 4 replicas x 256 at 80 % = 819.2 usable; the peak overshoots by 22 %.
        assert!((p.headroom_ratio.unwrap() + 0.2207).abs() < 1e-3, "{:?}", p.headroom_ratio);
        assert!((p.peak_load_ratio.unwrap() - 0.9765625).abs() < 1e-9);
        // Now: 300 on 4 replicas = 29 % load, below 56 %: the rules would scale in.
        assert_eq!(p.decision_now, Some("scale_in"));
        let unknown = plan_model("m", &points, None, &input());
        assert_eq!((unknown.headroom_ratio, unknown.decision_now), (None, None));
        let table = render_table(&[p], &input());
        assert!(table.contains("deepseek-chat") && table.contains("-22%"), "{table}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_secs("7d"), Ok(604_800));
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("15m"), Ok(900));
        assert!(parse_duration_secs("7y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration_secs("d").is_err());
    }
}
