//! The replica arithmetic of the design documents, in one place so the scale action, the
//! capacity report and their tests agree: keep between `min` and `max` replicas, size for a
//! target load per replica (80 %), scale in only when load falls below 70 % of that target
//! (hysteresis, like HPA's tolerance), and plan capacity for 1.5x the observed peak.

use super::{Deps, LoadSource};
use deepwatch_core::config::remediation::{ActionConfig, ScalingConfig};
use std::sync::Arc;

/// What the scaling rules say about a fleet right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleDecision {
    /// Grow from `from` to `to` replicas.
    Out { from: u32, to: u32 },
    /// Shrink from `from` to `to` replicas.
    In { from: u32, to: u32 },
    /// Stay at `replicas`.
    Hold { replicas: u32 },
}

impl ScaleDecision {
    /// The replica count after the decision.
    pub fn target(self) -> u32 {
        match self {
            ScaleDecision::Out { to, .. } | ScaleDecision::In { to, .. } => to,
            ScaleDecision::Hold { replicas } => replicas,
        }
    }
}

/// The rules, validated by the config (`min >= 1`, `max >= min`, ratios in range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingRules {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub target_load_ratio: f64,
    pub scale_in_below_ratio: f64,
    pub peak_factor: f64,
}

impl From<&ScalingConfig> for ScalingRules {
    fn from(c: &ScalingConfig) -> Self {
        ScalingRules {
            min_replicas: c.min_replicas,
            max_replicas: c.max_replicas,
            target_load_ratio: c.target_load_ratio,
            scale_in_below_ratio: c.scale_in_below_ratio,
            peak_factor: c.peak_factor,
        }
    }
}

impl Default for ScalingRules {
    fn default() -> Self {
        ScalingRules::from(&ScalingConfig::default())
    }
}

impl ScalingRules {
    fn clamp(&self, replicas: u64) -> u32 {
        let r = replicas.clamp(self.min_replicas as u64, self.max_replicas as u64);
        r as u32
    }

    /// Replicas that carry `demand` (in replica-loads: replicas x load per replica) at the
    /// target load, before clamping.
    fn needed_for(&self, demand: f64) -> u64 {
        if !demand.is_finite() || demand <= 0.0 {
            return 0;
        }
        // A hair of tolerance so 8.0000000001 / 0.8 does not round up to an extra replica.
        (demand / self.target_load_ratio - 1e-9).ceil().max(0.0) as u64
    }

    /// Decides from the current replica count and the average load per replica (0-1, may
    /// exceed 1 when requests queue). Scale out as soon as load exceeds the target; scale in
    /// only below `scale_in_below_ratio` x target, and then to the count that keeps the load at
    /// or under the target; always within min..=max.
    pub fn decide(&self, current: u32, load_per_replica: f64) -> ScaleDecision {
        let bounded = self.clamp(current as u64);
        if bounded != current {
            return if bounded > current {
                ScaleDecision::Out { from: current, to: bounded }
            } else {
                ScaleDecision::In { from: current, to: bounded }
            };
        }
        let load = if load_per_replica.is_finite() { load_per_replica.max(0.0) } else { 0.0 };
        let demand = current as f64 * load;
        if load > self.target_load_ratio {
            let to = self.clamp(self.needed_for(demand));
            if to > current {
                return ScaleDecision::Out { from: current, to };
            }
        } else if load < self.target_load_ratio * self.scale_in_below_ratio {
            let to = self.clamp(self.needed_for(demand));
            if to < current {
                return ScaleDecision::In { from: current, to };
            }
        }
        ScaleDecision::Hold { replicas: current }
    }

    /// Replicas to provision for a peak `demand` (same unit as `replica_capacity`, e.g.
    /// concurrent sequences): `peak_factor x peak / (capacity x target)`, within min..=max.
    pub fn planned_replicas(&self, peak_demand: f64, replica_capacity: f64) -> u32 {
        if replica_capacity <= 0.0 || !replica_capacity.is_finite() {
            return self.max_replicas;
        }
        self.clamp(self.needed_for(self.peak_factor * peak_demand / replica_capacity))
    }

    /// Share of `replicas`' capacity at the target load left unused at `peak_demand`
    /// (negative when the peak already exceeds it).
    pub fn headroom_ratio(&self, replicas: u32, peak_demand: f64, replica_capacity: f64) -> f64 {
        let usable = replicas as f64 * replica_capacity * self.target_load_ratio;
        if usable <= 0.0 {
            return -1.0;
        }
        1.0 - peak_demand / usable
    }
}

/// How many replicas a scale action wants, from load or from its step.
pub struct Sizing {
    pub rules: ScalingRules,
    pub step: u32,
    pub load_query: Option<String>,
    pub load: Option<Arc<dyn LoadSource>>,
}

impl Sizing {
    pub fn new(config: &ActionConfig, deps: &Deps) -> Sizing {
        Sizing {
            rules: deps.scaling,
            step: config.step.unwrap_or(1).max(1),
            load_query: config.load_query.clone(),
            load: deps.load.clone(),
        }
    }

    /// The replica count to reach from `current`, and the load it was decided on (if any).
    pub async fn desired(&self, current: u32) -> (u32, Option<f64>) {
        if let (Some(query), Some(source)) = (&self.load_query, &self.load) {
            match source.load(query).await {
                Ok(Some(load)) => return (self.rules.decide(current, load).target(), Some(load)),
                Ok(None) => tracing::warn!(%query, "load query returned nothing; scaling by step"),
                Err(err) => tracing::warn!(%query, %err, "load query failed; scaling by step"),
            }
        }
        let stepped = current.saturating_add(self.step);
        (stepped.clamp(self.rules.min_replicas, self.rules.max_replicas), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::BoxFuture;
    use futures_util::FutureExt;
    use proptest::prelude::*;

    fn rules() -> ScalingRules {
        ScalingRules::default()
    }

    #[test]
    fn defaults_are_the_design_numbers() {
        let r = rules();
        assert_eq!((r.min_replicas, r.max_replicas), (3, 10));
        assert_eq!((r.target_load_ratio, r.scale_in_below_ratio, r.peak_factor), (0.8, 0.7, 1.5));
    }

    #[test]
    fn scales_out_above_target_to_the_count_that_meets_it() {
        // 4 replicas at 100 % = 4 replica-loads; at 80 % each that needs 5.
        assert_eq!(rules().decide(4, 1.0), ScaleDecision::Out { from: 4, to: 5 });
        // 4 at 90 % = 3.6 -> 4.5 -> 5.
        assert_eq!(rules().decide(4, 0.9), ScaleDecision::Out { from: 4, to: 5 });
        // 3x surge on 6 replicas at 80 %: 14.4 loads -> 18 -> capped at 10.
        assert_eq!(rules().decide(6, 2.4), ScaleDecision::Out { from: 6, to: 10 });
    }

    #[test]
    fn holds_between_the_scale_in_threshold_and_the_target() {
        // Exactly at target, and anywhere in [0.56, 0.8]: hold.
        assert_eq!(rules().decide(5, 0.8), ScaleDecision::Hold { replicas: 5 });
        assert_eq!(rules().decide(5, 0.6), ScaleDecision::Hold { replicas: 5 });
        assert_eq!(rules().decide(5, 0.56), ScaleDecision::Hold { replicas: 5 });
    }

    #[test]
    fn scales_in_only_below_seventy_percent_of_target() {
        // 8 replicas at 50 % (< 56 %) = 4 loads -> 5 replicas at 80 %.
        assert_eq!(rules().decide(8, 0.5), ScaleDecision::In { from: 8, to: 5 });
        // Never below min.
        assert_eq!(rules().decide(4, 0.1), ScaleDecision::In { from: 4, to: 3 });
        assert_eq!(rules().decide(3, 0.0), ScaleDecision::Hold { replicas: 3 });
    }

    #[test]
    fn out_of_bounds_counts_are_brought_into_range_first() {
        assert_eq!(rules().decide(1, 0.1), ScaleDecision::Out { from: 1, to: 3 });
        assert_eq!(rules().decide(12, 0.9), ScaleDecision::In { from: 12, to: 10 });
        assert_eq!(rules().decide(10, 5.0), ScaleDecision::Hold { replicas: 10 });
    }

    #[test]
    fn plans_for_one_and_a_half_times_the_peak() {
        // Peak 1000 concurrent sequences, 256 per replica: 1500 / (256 x 0.8) = 7.3 -> 8.
        assert_eq!(rules().planned_replicas(1000.0, 256.0), 8);
        assert_eq!(rules().planned_replicas(10.0, 256.0), 3);
        assert_eq!(rules().planned_replicas(1e6, 256.0), 10);
        // Exactly on an integer boundary: 1.5 x 512 / (256 x 0.8) = 3.75 -> 4, and
        // 1.5 x 546.1333 / 204.8 = 4.0000 -> 4, not 5.
        assert_eq!(rules().planned_replicas(512.0, 256.0), 4);
        assert_eq!(rules().planned_replicas(204.8 * 4.0 / 1.5, 256.0), 4);
        let h = rules().headroom_ratio(5, 512.0, 256.0);
        assert!((h - 0.5).abs() < 1e-9, "{h}");
    }

    proptest! {
        #[test]
        fn decisions_stay_in_bounds_and_meet_the_target(current in 0u32..20, load in 0.0f64..5.0) {
            let r = rules();
            let d = r.decide(current, load);
            let to = d.target();
            prop_assert!((r.min_replicas..=r.max_replicas).contains(&to));
            let demand = current as f64 * load;
            if let (ScaleDecision::In { to, .. }, true) = (d, current <= r.max_replicas) {
                // Scaling in (other than down to max) never pushes the rest over the target.
                prop_assert!(demand / to as f64 <= r.target_load_ratio + 1e-9);
            }
            if let ScaleDecision::Out { to, .. } = d {
                prop_assert!(to > current);
            }
        }

        #[test]
        fn scale_in_never_undoes_a_scale_out(current in 3u32..10, load in 0.81f64..3.0) {
            // Right after scaling out, the new per-replica load is never low enough to scale in.
            let r = rules();
            if let ScaleDecision::Out { to, .. } = r.decide(current, load) {
                let after = current as f64 * load / to as f64;
                let again = r.decide(to, after);
                prop_assert!(!matches!(again, ScaleDecision::In { .. }), "{:?}", again);
            }
        }
    }

    struct Fixed(Option<f64>);
    impl LoadSource for Fixed {
        fn load<'a>(&'a self, _q: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
            let v = self.0;
            async move { Ok(v) }.boxed()
        }
    }

    fn sizing(load: Option<Option<f64>>, step: u32) -> Sizing {
        Sizing {
            rules: ScalingRules::default(),
            step,
            load_query: load.map(|_| "q".to_string()),
            load: load.map(|l| Arc::new(Fixed(l)) as Arc<dyn LoadSource>),
        }
    }

    #[tokio::test]
    async fn sizing_follows_load_when_measured_and_step_otherwise() {
        // 4 replicas at 120 % -> 4.8 loads -> 6 at 80 %.
        assert_eq!(sizing(Some(Some(1.2)), 1).desired(4).await, (6, Some(1.2)));
        // Within target: stay.
        assert_eq!(sizing(Some(Some(0.7)), 1).desired(4).await, (4, Some(0.7)));
        // No data: step.
        assert_eq!(sizing(Some(None), 2).desired(4).await, (6, None));
        assert_eq!(sizing(None, 1).desired(4).await, (5, None));
        // Never beyond max, and a pool below min grows to min.
        assert_eq!(sizing(None, 3).desired(9).await, (10, None));
        assert_eq!(sizing(None, 1).desired(10).await, (10, None));
        assert_eq!(sizing(None, 1).desired(1).await, (3, None));
    }
}
