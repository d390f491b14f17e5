//! Grafana: datasource and dashboard provisioning plus four dashboards (Overview, Resources,
//! Model, Incidents). Variables for datasource, model, model_version and instance; threshold
//! lines drawn from the `threshold:*` recording rules; deploy and maintenance annotations;
//! data links from GPU and latency panels to logs and the node view of the same time range;
//! `$__rate_interval` and `maxDataPoints` keep every panel under 5,000 points.

use crate::ids::{INCIDENTS, MODEL, OVERVIEW, RESOURCES};
use crate::panel::PanelSpec;
use crate::promql::{dur, sel, series};
use crate::recording::Names;
use crate::slo;
use crate::Ctx;
use deepwatch_core::catalog::{agent, analyzer, gateway};
use serde_json::{json, Value};

/// Points per series; with at most `MAX_SERIES` series a panel stays under 5,000 points.
pub const MAX_DATA_POINTS: u64 = 500;
pub use crate::panel::MAX_SERIES;
/// Buckets a length heatmap may draw (vLLM's 1-2-5 series up to 128k context is 16 edges + Inf);
/// heatmap panels ask for fewer points so they stay under 5,000 too.
pub const MAX_HEATMAP_BUCKETS: usize = 25;
const DS: &str = "${datasource}";

fn ds() -> Value {
    json!({ "type": "prometheus", "uid": DS })
}

fn model_filter() -> String {
    r#"model=~"$model", model_version=~"$model_version""#.to_string()
}

/// A recorded request-level series filtered by the dashboard variables.
fn req(name: &str) -> String {
    format!("{name}{{{}}}", model_filter())
}

/// A per-GPU series filtered by the `$instance` and `$gpu` variables.
fn gpu(name: &str) -> String {
    format!(r#"{name}{{instance=~"$instance", gpu=~"$gpu"}}"#)
}

fn inst(name: &str) -> String {
    format!(r#"{name}{{instance=~"$instance"}}"#)
}

fn topk(expr: &str) -> String {
    format!("topk({MAX_SERIES}, {expr})")
}

struct Panel {
    title: &'static str,
    kind: &'static str,
    unit: &'static str,
    targets: Vec<(String, &'static str)>,
    links: bool,
    /// Targets are histogram buckets (`sum by (le)`) drawn as a heatmap.
    bucket_heatmap: bool,
}

impl From<PanelSpec> for Panel {
    fn from(e: PanelSpec) -> Panel {
        Panel {
            title: e.title,
            kind: e.kind,
            unit: e.unit,
            targets: e.targets,
            links: false,
            bucket_heatmap: e.bucket_heatmap,
        }
    }
}

fn p(
    title: &'static str,
    kind: &'static str,
    unit: &'static str,
    targets: Vec<(String, &'static str)>,
) -> Panel {
    Panel { title, kind, unit, targets, links: false, bucket_heatmap: false }
}

fn links(ctx: &Ctx<'_>) -> Value {
    let grafana = ctx.cfg.grafana_url.trim_end_matches('/');
    json!([
        { "title": "Logs of ${__field.labels.instance}", "targetBlank": true,
          "url": format!("{}?orgId=1&${{__url_time_range}}&var-instance=${{__field.labels.instance}}", ctx.cfg.logs_url) },
        { "title": "Node view", "targetBlank": false,
          "url": format!("{grafana}/d/{RESOURCES}?${{__url_time_range}}&var-instance=${{__field.labels.instance}}") },
    ])
}

fn render_panel(ctx: &Ctx<'_>, id: usize, panel: &Panel, x: u64, y: u64) -> Value {
    let targets: Vec<Value> = panel
        .targets
        .iter()
        .enumerate()
        .map(|(i, (expr, legend))| {
            let mut target = json!({ "datasource": ds(), "expr": expr, "legendFormat": legend,
                    "refId": ((b'A' + i as u8) as char).to_string(), "interval": "" });
            if panel.bucket_heatmap {
                target["format"] = json!("heatmap");
            }
            target
        })
        .collect();
    let mut defaults = json!({ "unit": panel.unit, "custom": {} });
    if panel.links {
        defaults["links"] = links(ctx);
    }
    // Series whose legend is a threshold name are drawn as dashed lines.
    let overrides = json!([{
        "matcher": { "id": "byRegexp", "options": "^(warning|critical|recover)$" },
        "properties": [
            { "id": "custom.lineStyle", "value": { "fill": "dash", "dash": [10, 10] } },
            { "id": "custom.lineWidth", "value": 1 }
        ]
    }]);
    let max_points = if panel.bucket_heatmap {
        MAX_DATA_POINTS * MAX_SERIES as u64 / MAX_HEATMAP_BUCKETS as u64
    } else {
        MAX_DATA_POINTS
    };
    let mut options = json!({ "legend": { "displayMode": "list", "placement": "bottom" } });
    if panel.bucket_heatmap {
        // The buckets are already counts per `le`: no re-bucketing by Grafana.
        options["calculate"] = json!(false);
        options["yAxis"] = json!({ "unit": panel.unit });
    }
    json!({
        "id": id, "type": panel.kind, "title": panel.title, "datasource": ds(),
        "gridPos": { "h": 8, "w": 12, "x": x, "y": y },
        "maxDataPoints": max_points, "interval": dur(ctx.scrape()),
        "fieldConfig": { "defaults": defaults, "overrides": overrides },
        "options": options,
        "targets": targets,
    })
}

fn query_var(name: &str, label: &str, source: &str) -> Value {
    json!({ "name": name, "type": "query", "datasource": ds(), "refresh": 2, "multi": true,
            "includeAll": true, "allValue": ".*", "current": { "text": "All", "value": "$__all" },
            "query": { "query": format!("label_values({source}, {label})"), "refId": "var" } })
}

fn variables() -> Value {
    json!({ "list": [
        // `${DS_PROMETHEUS}` is the `__inputs` entry: an import through the UI substitutes the
        // chosen data source; a provisioned file falls back to the default Prometheus.
        { "name": "datasource", "type": "datasource", "query": "prometheus",
          "current": { "text": "${DS_PROMETHEUS}", "value": "${DS_PROMETHEUS}" } },
        query_var("model", "model", &Names::request_rate()),
        query_var("model_version", "model_version", &format!("{}{{model=~\"$model\"}}", Names::request_rate())),
        query_var("instance", "instance", "up"),
        query_var("gpu", "gpu", &format!("{}{{instance=~\"$instance\"}}", sel(&agent::GPU_UTILIZATION))),
    ]})
}

/// Minute-of-week offsets of the time zones we know without a tz database.
fn utc_offset_minutes(location: &str) -> Option<i64> {
    match location {
        "UTC" | "Etc/UTC" | "GMT" => Some(0),
        "Asia/Shanghai" | "Asia/Hong_Kong" | "Asia/Singapore" | "Asia/Taipei" => Some(480),
        "Asia/Tokyo" | "Asia/Seoul" => Some(540),
        "Asia/Kolkata" => Some(330),
        _ => None,
    }
}

/// Maintenance windows as a PromQL annotation: true while the UTC minute of the week is
/// inside a window.
pub fn maintenance_expr(ctx: &Ctx<'_>) -> Option<String> {
    const DAYS: [&str; 7] =
        ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
    let minute = "(day_of_week() * 1440 + hour() * 60 + minute())";
    let mut parts = Vec::new();
    for m in &ctx.cfg.maintenance {
        let offset = utc_offset_minutes(&m.location)?;
        let hm = |t: &str| {
            t.split_once(':')
                .and_then(|(h, mm)| Some(h.parse::<i64>().ok()? * 60 + mm.parse::<i64>().ok()?))
        };
        let (start, end) = (hm(&m.start)?, hm(&m.end)?);
        for d in &m.weekdays {
            let day = DAYS.iter().position(|x| x == d)? as i64;
            let s = (day * 1440 + start - offset).rem_euclid(10080);
            let e = s + (end - start);
            parts.push(format!("({minute} >= {s} and {minute} < {e})"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" or "))
}

fn annotations(ctx: &Ctx<'_>) -> Value {
    let mut list = vec![
        json!({ "name": "Annotations & Alerts", "builtIn": 1, "type": "dashboard", "enable": true, "hide": true,
                "datasource": { "type": "grafana", "uid": "-- Grafana --" }, "iconColor": "rgba(0, 211, 255, 1)" }),
        json!({ "name": "Deploys", "enable": true, "datasource": ds(), "iconColor": "blue",
                "target": { "refId": "Anno", "expr": format!("changes({}[2m]) > 0", sel(&gateway::DEPLOY_EVENTS)), "interval": "30s" },
                "titleFormat": "{{event}} {{pool}}", "tagKeys": "event,pool", "textFormat": "deploy event" }),
    ];
    if let Some(expr) = maintenance_expr(ctx) {
        list.push(json!({ "name": "Maintenance", "enable": true, "datasource": ds(), "iconColor": "orange",
                          "target": { "refId": "Anno", "expr": expr, "interval": "5m" }, "titleFormat": "maintenance window" }));
    }
    json!({ "list": list })
}

fn dashboard(ctx: &Ctx<'_>, uid: &str, title: &str, panels: Vec<Panel>) -> Value {
    let rendered: Vec<Value> = panels
        .iter()
        .enumerate()
        .map(|(i, panel)| render_panel(ctx, i + 1, panel, (i as u64 % 2) * 12, (i as u64 / 2) * 8))
        .collect();
    let mut kinds: Vec<&str> = panels.iter().map(|p| p.kind).collect();
    kinds.sort();
    kinds.dedup();
    let mut requires = vec![
        json!({ "type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0" }),
        json!({ "type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0" }),
    ];
    requires.extend(
        kinds.iter().map(|k| json!({ "type": "panel", "id": k, "name": k, "version": "" })),
    );
    json!({
        // Import through the UI (Dashboards > New > Import): one data-source input.
        "__inputs": [{ "name": "DS_PROMETHEUS", "label": "Prometheus", "description": "",
                       "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus" }],
        "__elements": {},
        "__requires": requires,
        "id": null,
        "uid": uid, "title": title, "tags": ["deepwatch"], "schemaVersion": 39, "version": 1,
        "editable": true, "refresh": "30s", "time": { "from": "now-6h", "to": "now" },
        "timezone": "browser", "graphTooltip": 1,
        "templating": variables(), "annotations": annotations(ctx),
        "links": [{ "title": "deepwatch", "type": "dashboards", "tags": ["deepwatch"], "asDropdown": true,
                    "icon": "external link", "includeVars": true, "keepTime": true, "targetBlank": false, "tooltip": "" }],
        "panels": rendered,
    })
}

fn thresholds(recorded: &str) -> (String, &'static str) {
    (series(&Names::threshold(recorded)).to_string(), "{{threshold}}")
}

pub fn dashboards(ctx: &Ctx<'_>) -> Vec<(&'static str, Value)> {
    let t = &ctx.cfg.thresholds;
    let lat = Names::latency(t.latency.quantile);
    let ttft = Names::ttft(t.ttft.quantile.unwrap_or(0.99));
    let budget_ratio = format!("{} / (1 - {})", slo::ratio_name("1h"), slo::OBJECTIVE);
    let spend = gateway::SPEND.name;
    let budget = gateway::TENANT_DAILY_BUDGET.name;
    let mut latency = p(
        "Latency p50 / p99",
        "timeseries",
        "s",
        vec![
            (topk(&req(&Names::latency(0.5))), "p50 {{model}} {{pool}}"),
            (topk(&req(&lat)), "p99 {{model}} {{pool}}"),
            thresholds(&lat),
        ],
    );
    latency.links = true;
    let overview = vec![
        p(
            "Request rate",
            "stat",
            "reqps",
            vec![(format!("sum({})", req(&Names::request_rate())), "req/s")],
        ),
        p(
            "Error ratio",
            "stat",
            "percentunit",
            vec![(format!("max({})", req(&Names::error_ratio())), "errors")],
        ),
        p(
            "SLO error budget remaining",
            "gauge",
            "percentunit",
            vec![(series(slo::BUDGET_REMAINING).to_string(), "{{slo}}")],
        ),
        p("SLO burn rate (1h)", "stat", "none", vec![(budget_ratio, "{{slo}}")]),
        latency,
        p(
            "Time to first token",
            "timeseries",
            "s",
            vec![(topk(&req(&ttft)), "{{model}} {{pool}}"), thresholds(&ttft)],
        ),
        p(
            "Tokens per second",
            "timeseries",
            "none",
            vec![
                (
                    format!("sum by (model) ({})", req(&Names::completion_tokens_rate())),
                    "completion {{model}}",
                ),
                (
                    format!("sum by (model) ({})", req(&Names::prompt_tokens_rate())),
                    "prompt {{model}}",
                ),
            ],
        ),
        p(
            "Error ratio by model",
            "timeseries",
            "percentunit",
            vec![
                (topk(&req(&Names::error_ratio())), "{{model}} {{pool}}"),
                thresholds(&Names::error_ratio()),
            ],
        ),
        p(
            "Spend per hour by tenant",
            "timeseries",
            "none",
            vec![(
                topk(&format!("sum by (tenant) (rate({spend}[$__rate_interval])) * 3600")),
                "{{tenant}}",
            )],
        ),
        p(
            "Spend by tenant over the range, and daily budgets",
            "bargauge",
            "none",
            vec![
                (
                    topk(&format!("sum by (tenant) (increase({spend}[$__range]))")),
                    "spent {{tenant}}",
                ),
                (topk(&format!("max by (tenant) ({budget})")), "daily budget {{tenant}}"),
            ],
        ),
    ];
    let overview: Vec<Panel> = overview
        .into_iter()
        .chain(crate::service_panels::gateway().into_iter().map(Panel::from))
        .collect();
    let gpu_util = gpu(&Names::gpu_utilization());
    let mut heat = p(
        "GPU utilization heatmap",
        "heatmap",
        "percentunit",
        vec![(topk(&gpu_util), "{{instance}} gpu{{gpu}}")],
    );
    heat.links = true;
    let mut gpu_lines = p(
        "GPU utilization",
        "timeseries",
        "percentunit",
        vec![(topk(&gpu_util), "{{instance}} gpu{{gpu}}"), thresholds(&Names::gpu_utilization())],
    );
    gpu_lines.links = true;
    let resources = vec![
        heat,
        gpu_lines,
        p(
            "GPU memory used",
            "timeseries",
            "percentunit",
            vec![
                (topk(&gpu(&Names::gpu_memory_ratio())), "{{instance}} gpu{{gpu}}"),
                thresholds(&Names::gpu_memory_ratio()),
            ],
        ),
        p(
            "GPU temperature and power",
            "timeseries",
            "celsius",
            vec![
                (topk(&gpu(agent::GPU_TEMPERATURE.name)), "temp {{instance}} gpu{{gpu}}"),
                (topk(&gpu(agent::GPU_POWER.name)), "watts {{instance}} gpu{{gpu}}"),
            ],
        ),
        p(
            "CPU load and iowait",
            "timeseries",
            "none",
            vec![
                (
                    topk(&format!(
                        r#"{}{{instance=~"$instance", window="1m"}}"#,
                        agent::HOST_LOAD.name
                    )),
                    "load {{instance}}",
                ),
                (topk(&inst(&Names::iowait_ratio())), "iowait {{instance}}"),
                thresholds(&Names::iowait_ratio()),
            ],
        ),
        p(
            "KV-cache usage",
            "timeseries",
            "percentunit",
            vec![
                (topk(&inst(&Names::kv_cache())), "{{instance}} {{engine}}"),
                thresholds(&Names::kv_cache()),
            ],
        ),
    ];
    let resources: Vec<Panel> = resources
        .into_iter()
        .chain(crate::node_panels::panels().into_iter().map(Panel::from))
        .collect();
    let prompt = sel(&gateway::PROMPT_TOKENS);
    let completion = sel(&gateway::COMPLETION_TOKENS);
    let mut per_version = p(
        "Latency p99 by model version",
        "timeseries",
        "s",
        vec![(topk(&format!("max by (model_version) ({})", req(&lat))), "{{model_version}}")],
    );
    per_version.links = true;
    let mut model = vec![
        p(
            "Traffic by model version",
            "piechart",
            "reqps",
            vec![(
                format!("sum by (model_version) ({})", req(&Names::request_rate())),
                "{{model_version}}",
            )],
        ),
        per_version,
        p(
            "Token consumption",
            "table",
            "none",
            vec![
                (
                    topk(&format!(
                        r#"sum by (model, model_version) (increase({}{{{}}}[$__range]))"#,
                        prompt.name(),
                        model_filter()
                    )),
                    "prompt",
                ),
                (
                    topk(&format!(
                        r#"sum by (model, model_version) (increase({}{{{}}}[$__range]))"#,
                        completion.name(),
                        model_filter()
                    )),
                    "completion",
                ),
            ],
        ),
        p(
            "Spend by model and pool",
            "table",
            "none",
            vec![(
                topk(&format!(
                    r#"sum by (model, pool) (increase({spend}{{model=~"$model"}}[$__range]))"#
                )),
                "spend",
            )],
        ),
        p(
            "Probe accuracy",
            "timeseries",
            "percentunit",
            vec![(
                topk(&format!("{}{{{}}}", analyzer::PROBE_ACCURACY.name, model_filter())),
                "{{model}} {{model_version}}",
            )],
        ),
        p(
            "Output drift",
            "timeseries",
            "none",
            vec![
                (
                    topk(&format!("{}{{{}}}", analyzer::DRIFT_DIVERGENCE.name, model_filter())),
                    "{{kind}} {{model_version}}",
                ),
                (
                    topk(&format!("{}{{{}}}", analyzer::DRIFT_THRESHOLD.name, model_filter())),
                    "threshold {{kind}}",
                ),
            ],
        ),
    ];
    model.extend(crate::engine_panels::panels().into_iter().map(Panel::from));
    let incidents = vec![
        p(
            "Firing alerts",
            "table",
            "none",
            vec![(r#"ALERTS{alertstate="firing"}"#.to_string(), "{{alertname}} {{severity}}")],
        ),
        p(
            "Anomaly scores",
            "timeseries",
            "none",
            vec![(topk(&series(analyzer::ANOMALY_SCORE.name).to_string()), "{{series}} {{model}}")],
        ),
        p(
            "Baseline bands",
            "timeseries",
            "none",
            vec![
                (
                    topk(&series(analyzer::BASELINE_EXPECTED.name).to_string()),
                    "expected {{series}}",
                ),
                (topk(&series(analyzer::BASELINE_LOWER.name).to_string()), "lower {{series}}"),
                (topk(&series(analyzer::BASELINE_UPPER.name).to_string()), "upper {{series}}"),
            ],
        ),
        p(
            "Remediation actions",
            "timeseries",
            "none",
            vec![(
                topk(&format!(
                    "sum by (action, outcome) (increase({}[$__rate_interval]))",
                    analyzer::REMEDIATION_ACTIONS.name
                )),
                "{{action}} {{outcome}}",
            )],
        ),
    ];
    let incidents: Vec<Panel> = incidents
        .into_iter()
        .chain(crate::service_panels::analyzer().into_iter().map(Panel::from))
        .collect();
    vec![
        ("overview", dashboard(ctx, OVERVIEW, "deepwatch / Overview", overview)),
        ("resources", dashboard(ctx, RESOURCES, "deepwatch / Resources", resources)),
        ("model", dashboard(ctx, MODEL, "deepwatch / Model", model)),
        ("incidents", dashboard(ctx, INCIDENTS, "deepwatch / Incidents", incidents)),
    ]
}

pub fn files(ctx: &Ctx<'_>) -> Vec<(String, String)> {
    let prom_url = format!(
        "http://{}",
        ctx.cfg.long_term.federate_from.first().map_or("127.0.0.1:9090", String::as_str)
    );
    let datasource = crate::ymap! {
        "apiVersion" => 1,
        "datasources" => crate::yseq![crate::ymap! {
            "name" => "Prometheus", "type" => "prometheus", "uid" => "deepwatch-prometheus",
            "access" => "proxy", "url" => prom_url.as_str(), "isDefault" => true,
            "jsonData" => crate::ymap! { "timeInterval" => dur(ctx.scrape()), "httpMethod" => "POST", "prometheusType" => "Prometheus", "prometheusVersion" => "2.42.0" },
        }],
    };
    let provider = crate::ymap! {
        "apiVersion" => 1,
        "providers" => crate::yseq![crate::ymap! {
            "name" => "deepwatch", "orgId" => 1, "folder" => "deepwatch", "type" => "file",
            "disableDeletion" => false, "updateIntervalSeconds" => 30, "allowUiUpdates" => false,
            "options" => crate::ymap! { "path" => "/var/lib/grafana/dashboards/deepwatch", "foldersFromFilesStructure" => false },
        }],
    };
    let mut out = vec![
        ("grafana/provisioning/datasources/deepwatch.yaml".to_string(), datasource.render()),
        ("grafana/provisioning/dashboards/deepwatch.yaml".to_string(), provider.render()),
    ];
    for (name, dash) in dashboards(ctx) {
        let text = serde_json::to_string_pretty(&dash).unwrap_or_default() + "\n";
        out.push((format!("grafana/dashboards/{name}.json"), text));
    }
    out
}
