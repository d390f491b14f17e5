//! One dashboard panel as the panel modules describe it (`engine_panels`, `node_panels`,
//! `service_panels`) before `grafana` lays it out: title, Grafana panel type, unit and
//! (expression, legend) targets. A leaf, so the panel modules and `grafana` share it without
//! importing each other.

/// Series per panel: with at most this many series and `grafana::MAX_DATA_POINTS` points each,
/// a panel stays under 5,000 points.
pub const MAX_SERIES: usize = 10;

/// Grafana's rate window for the panel's step.
pub const WINDOW: &str = "$__rate_interval";

pub struct PanelSpec {
    pub title: &'static str,
    pub kind: &'static str,
    pub unit: &'static str,
    pub targets: Vec<(String, &'static str)>,
    /// Targets are histogram buckets (`sum by (le)`) drawn as a heatmap (`format: heatmap`).
    pub bucket_heatmap: bool,
}

/// A panel of plain series.
pub fn panel(
    title: &'static str,
    kind: &'static str,
    unit: &'static str,
    targets: Vec<(String, &'static str)>,
) -> PanelSpec {
    PanelSpec { title, kind, unit, targets, bucket_heatmap: false }
}

/// At most `MAX_SERIES` series, as every dashboard query.
pub fn topk(expr: &str) -> String {
    format!("topk({MAX_SERIES}, {expr})")
}
