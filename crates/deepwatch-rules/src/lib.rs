//! Generator: one `[rules]` spec in `deepwatch.toml` becomes Prometheus config, recording and
//! alert rules with promtool unit tests, Alertmanager config with route tests, Grafana
//! provisioning and dashboards, Kubernetes/KEDA manifests and long-term-storage configs.
//! Every expression is built from the metric catalog and checked with promql-parser.
#![forbid(unsafe_code)]

pub mod yaml;

pub mod alertmanager;
pub mod alerts;
pub mod canary;
pub mod check;
pub mod grafana;
pub mod hysteresis;
pub mod kube;
pub mod lts;
pub mod model;
pub mod prometheus;
pub mod promql;
#[cfg(feature = "push")]
pub mod push;
pub mod recording;
pub mod slo;
pub mod trend;

use deepwatch_core::config::rules::RulesConfig;
use std::collections::BTreeMap;
use std::path::Path;

/// How to generate. `time_scale` divides every interval, `for` and hold (never below 1 s) so an
/// end-to-end test or the demo can watch alerts fire and clear in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub time_scale: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { time_scale: 1 }
    }
}

/// The spec plus options, with the derived intervals every module uses.
pub struct Ctx<'a> {
    pub cfg: &'a RulesConfig,
    pub opts: Options,
}

impl Ctx<'_> {
    pub fn scaled(&self, secs: u64) -> u64 {
        if secs == 0 {
            return 0;
        }
        (secs / self.opts.time_scale.max(1)).max(1)
    }
    pub fn eval(&self) -> u64 {
        self.scaled(self.cfg.evaluation_interval_secs)
    }
    pub fn scrape(&self) -> u64 {
        self.scaled(self.cfg.scrape_interval_secs)
    }
    /// Rate window of the fast rules: 1 minute, but at least four scrapes.
    pub fn window_secs(&self) -> u64 {
        self.scaled(60).max(4 * self.scrape())
    }
    pub fn window(&self) -> String {
        promql::dur(self.window_secs())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("generated expression does not pass the catalog check: {0}")]
    Check(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Everything generated: relative path -> content, plus warnings (thresholds off bucket edges).
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub files: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

impl Generated {
    /// Writes every file under `dir`, creating folders.
    pub fn write_to(&self, dir: &Path) -> Result<(), GenerateError> {
        for (rel, text) in &self.files {
            let path = dir.join(rel);
            let io = |source| GenerateError::Write { path: path.display().to_string(), source };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&path, text).map_err(io)?;
        }
        Ok(())
    }
}

/// The rule files, in the order they are written.
pub fn rule_files(ctx: &Ctx<'_>) -> Vec<model::RuleFile> {
    vec![recording::file(ctx), alerts::file(ctx), slo::file(ctx), trend::file(ctx)]
}

/// Generates every file for the spec.
pub fn generate(cfg: &RulesConfig, opts: Options) -> Result<Generated, GenerateError> {
    let ctx = Ctx { cfg, opts };
    let mut out = Generated::default();
    let links =
        model::Links { runbook_base_url: &cfg.runbook_base_url, grafana_url: &cfg.grafana_url };
    let files = rule_files(&ctx);
    check::check_rule_files(&files).map_err(GenerateError::Check)?;
    for f in &files {
        out.files.insert(format!("prometheus/rules/{}.yml", f.stem), f.render_rules(&links));
        let interval = f.groups.first().map_or(ctx.eval(), |g| g.interval_secs);
        out.files.insert(
            format!("prometheus/tests/{}.test.yml", f.stem),
            f.render_tests(&links, interval),
        );
    }
    out.files.insert("prometheus/prometheus.yml".into(), prometheus::config(&ctx));
    if let Some(k8s) = prometheus::kubernetes_config(&ctx) {
        out.files.insert("prometheus/prometheus-kubernetes.yml".into(), k8s);
    }
    out.files.insert("alertmanager/alertmanager.yml".into(), alertmanager::config(&ctx));
    out.files.insert("alertmanager/test-routes.sh".into(), alertmanager::test_script());
    for (rel, text) in kube::files(&ctx, &files, &links).into_iter().chain(lts::files(&ctx)) {
        out.files.insert(rel, text);
    }
    for (rel, text) in grafana::files(&ctx) {
        out.files.insert(rel, text);
    }
    out.warnings.extend(check::bucket_warnings(cfg));
    Ok(out)
}
