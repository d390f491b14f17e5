//! Generator: one `[rules]` spec in `deepwatch.toml` becomes Prometheus config, recording and
//! alert rules with promtool unit tests, Alertmanager config with route tests, Grafana
//! provisioning and dashboards, Kubernetes/KEDA manifests, systemd units and long-term-storage
//! configs.
//! Every expression is built from the metric catalog and checked with promql-parser.
#![forbid(unsafe_code)]

pub mod yaml;

pub mod alertmanager;
pub mod alerts;
pub mod canary;
pub mod check;
pub mod condition;
pub mod cost;
pub mod coverage;
pub mod docs;
pub mod engine;
pub mod engine_panels;
pub mod events;
pub mod gpu;
pub mod grafana;
pub mod hysteresis;
pub mod ids;
pub mod kube;
pub mod lts;
pub mod model;
pub mod node;
pub mod node_panels;
pub mod page;
pub mod panel;
pub mod pipeline;
pub mod prometheus;
pub use deepwatch_core::promql;
pub mod recording;
pub mod service_panels;
pub mod slo;
pub mod systemd;
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
    /// Evaluation interval of the paging group (never longer than the other groups').
    pub fn page_eval(&self) -> u64 {
        self.scaled(self.cfg.page_evaluation_interval_secs).min(self.eval())
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
    #[error("cannot render the configuration for the ConfigMap: {0}")]
    Config(String),
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
    vec![
        recording::file(ctx),
        page::file(ctx),
        alerts::file(ctx),
        engine::file(ctx),
        gpu::file(ctx),
        node::file(ctx),
        pipeline::file(ctx),
        events::file(ctx),
        slo::file(ctx),
        trend::file(ctx),
    ]
}

/// Generates every file for the spec. The Kubernetes ConfigMap carries the default
/// configuration with this `[rules]` section; `generate_with_config` carries a given file.
pub fn generate(cfg: &RulesConfig, opts: Options) -> Result<Generated, GenerateError> {
    let config = deepwatch_core::config::Config { rules: cfg.clone(), ..Default::default() };
    let text = toml::to_string(&config).map_err(|e| GenerateError::Config(e.to_string()))?;
    generate_with_config(cfg, &text, opts)
}

/// Generates every file for the spec; `config_toml` is the deepwatch.toml the spec came from,
/// which the Kubernetes ConfigMap hands to the pods unchanged.
pub fn generate_with_config(
    cfg: &RulesConfig,
    config_toml: &str,
    opts: Options,
) -> Result<Generated, GenerateError> {
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
    let kube_files = kube::files(&ctx, &files, &links, config_toml);
    for (rel, text) in kube_files.into_iter().chain(lts::files(&ctx)) {
        out.files.insert(rel, text);
    }
    for (rel, text) in systemd::files() {
        out.files.insert(rel, text);
    }
    for (rel, text) in grafana::files(&ctx) {
        out.files.insert(rel, text);
    }
    out.warnings.extend(check::bucket_warnings(cfg));
    Ok(out)
}
