//! The `[rules]` section of `deepwatch.toml`: the one spec `deepwatch rules` turns into
//! Prometheus, Alertmanager, Grafana, Kubernetes and long-term-storage files. Thresholds,
//! SLOs, receivers, scrape targets, maintenance windows and scaling all live here so the
//! generated files never disagree with each other. Durations are integer `_secs` fields.

use super::{Path, Problems};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Scrape interval of every job (and Grafana's `timeInterval`).
    pub scrape_interval_secs: u64,
    /// Evaluation interval of the fast rule groups.
    pub evaluation_interval_secs: u64,
    /// Evaluation interval of the paging group (the critical latency alert and its quantile):
    /// shorter than `evaluation_interval_secs` so a page does not wait for an evaluation.
    pub page_evaluation_interval_secs: u64,
    /// `--storage.tsdb.retention.time` of the single (non-federated) Prometheus.
    pub retention_days: u64,
    /// Where `docs/runbooks/` is served: alerts link to `<runbook_base_url>/<AlertName>.md`.
    pub runbook_base_url: String,
    /// Grafana's external URL, for dashboard links in alerts.
    pub grafana_url: String,
    /// Logs view opened by data links; `${__from}`/`${__to}` and `$instance` are filled by Grafana.
    pub logs_url: String,
    pub thresholds: Thresholds,
    pub slos: Vec<Slo>,
    pub receivers: Receivers,
    pub targets: Targets,
    pub maintenance: Vec<MaintenanceWindow>,
    pub kubernetes: Kubernetes,
    pub long_term: LongTerm,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            scrape_interval_secs: 5,
            evaluation_interval_secs: 5,
            page_evaluation_interval_secs: 1,
            retention_days: 30,
            runbook_base_url: "https://runbooks.example.com/deepwatch".into(),
            grafana_url: "http://127.0.0.1:3000".into(),
            logs_url: "http://127.0.0.1:3000/explore".into(),
            thresholds: Thresholds::default(),
            slos: vec![
                Slo {
                    name: "availability".into(),
                    kind: SloKind::Availability,
                    objective: 0.999,
                    threshold_secs: 0.0,
                },
                Slo {
                    name: "latency".into(),
                    kind: SloKind::Latency,
                    objective: 0.99,
                    threshold_secs: 2.0,
                },
            ],
            receivers: Receivers::default(),
            targets: Targets::default(),
            maintenance: vec![MaintenanceWindow {
                name: "weekly-maintenance".into(),
                weekdays: vec!["sunday".into()],
                start: "02:00".into(),
                end: "04:00".into(),
                location: "Asia/Shanghai".into(),
            }],
            kubernetes: Kubernetes::default(),
            long_term: LongTerm::default(),
        }
    }
}

/// Enter above the first threshold, hold while above `recover`, fire after `consecutive`
/// scrape samples and stay firing `hold_secs` after the value last sat above `recover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HoldThreshold {
    pub quantile: f64,
    pub enter_secs: f64,
    pub recover_secs: f64,
    pub consecutive: u64,
    pub hold_secs: u64,
}

impl Default for HoldThreshold {
    fn default() -> Self {
        HoldThreshold {
            quantile: 0.99,
            enter_secs: 2.0,
            recover_secs: 1.5,
            consecutive: 3,
            hold_secs: 600,
        }
    }
}

/// A warning/critical pair with one recovery threshold (hysteresis): the alert enters above
/// `warning` (or `critical`) and clears only once the value is back below `recover`.
/// `quantile` is used by latency thresholds only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    pub warning: f64,
    pub critical: f64,
    pub recover: f64,
    pub for_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
}

const fn level(warning: f64, critical: f64, recover: f64, for_secs: u64) -> Level {
    Level { warning, critical, recover, for_secs, quantile: None }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Critical request latency with hysteresis and a recovery hold.
    pub latency: HoldThreshold,
    /// GPU utilization ratio.
    pub gpu_utilization: Level,
    /// Request latency at `quantile` (seconds), the "inference latency" pair.
    pub inference_latency: Level,
    /// Process memory growth in MB (10^6 bytes) per minute.
    pub memory_leak_mb_per_min: Level,
    /// GPU memory used / total.
    pub gpu_memory: Level,
    /// Engine KV-cache usage ratio (engines preallocate GPU memory, so this is the real pressure).
    pub kv_cache: Level,
    /// Failed requests / all requests.
    pub error_ratio: Level,
    /// Time to first token at `quantile` (seconds).
    pub ttft: Level,
    /// Share of CPU time spent in iowait.
    pub cpu_iowait: Level,
    /// Inter-node TCP connect latency at `quantile` (seconds).
    pub inter_node_latency: Level,
    /// P2: decode speed this much below the same time last week.
    pub performance_drop_ratio: f64,
    /// Probe accuracy this much (relative) below its 7-day average.
    pub accuracy_drop_ratio: f64,
    /// How long a target may be absent or failing before alerting.
    pub target_down_for_secs: u64,
    /// Requests waiting in one engine's queue.
    pub queue_depth: Level,
    /// Engine queue time at `quantile` (seconds): how long requests wait to be scheduled.
    pub queue_time: Level,
    /// Engine preemptions (vLLM) or retractions (SGLang) per second.
    pub preemptions_per_sec: Level,
    /// CPU wait: seconds per second some task waited for a CPU (PSI `cpu` `some`); 0.05 is
    /// 50 ms of every second.
    pub cpu_wait: Level,
    /// Host memory in use (1 - MemAvailable / MemTotal).
    pub host_memory: Level,
    /// Filesystem space in use (1 - available / size).
    pub disk_space: Level,
    /// Corrected ECC errors per hour on one GPU (uncorrected ones are always critical).
    pub ecc_corrected_per_hour: f64,
    /// PCIe replays per minute on one GPU (link-level retransmissions).
    pub pcie_replays_per_min: f64,
    /// Oldest CUDA driver API version the engines need (`12.1`): GPUs reporting an older one
    /// alert as a failed dependency check.
    pub min_cuda_version: String,
    /// A Pushgateway group (batch job) not pushed for this long is stale.
    pub push_stale_secs: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            latency: HoldThreshold::default(),
            gpu_utilization: level(0.85, 0.95, 0.75, 60),
            inference_latency: Level { quantile: Some(0.5), ..level(0.18, 0.25, 0.15, 60) },
            memory_leak_mb_per_min: level(10.0, 50.0, 5.0, 300),
            gpu_memory: level(0.9, 0.95, 0.8, 60),
            kv_cache: level(0.9, 0.97, 0.8, 60),
            error_ratio: level(0.01, 0.05, 0.005, 60),
            ttft: Level { quantile: Some(0.99), ..level(0.2, 1.0, 0.15, 60) },
            cpu_iowait: level(0.2, 0.4, 0.1, 120),
            inter_node_latency: Level { quantile: Some(0.99), ..level(0.001, 0.005, 0.00075, 60) },
            performance_drop_ratio: 0.3,
            accuracy_drop_ratio: 0.05,
            target_down_for_secs: 60,
            queue_depth: level(10.0, 50.0, 2.0, 60),
            queue_time: Level { quantile: Some(0.9), ..level(1.0, 5.0, 0.5, 60) },
            preemptions_per_sec: level(0.1, 1.0, 0.02, 120),
            cpu_wait: level(0.05, 0.2, 0.03, 60),
            host_memory: level(0.9, 0.95, 0.85, 120),
            disk_space: level(0.85, 0.95, 0.8, 300),
            ecc_corrected_per_hour: 100.0,
            pcie_replays_per_min: 10.0,
            min_cuda_version: "12.1".into(),
            push_stale_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloKind {
    /// Good events are requests that did not fail.
    Availability,
    /// Good events are requests faster than `threshold_secs` (a bucket edge).
    Latency,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    pub name: String,
    pub kind: SloKind,
    /// Target share of good events over 30 days, e.g. 0.999.
    pub objective: f64,
    /// Latency SLOs only: the request-duration bucket edge that counts as fast enough.
    #[serde(default)]
    pub threshold_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Receivers {
    /// Critical alerts: phone/SMS gateway webhook.
    pub phone_webhook_url: String,
    /// Critical alerts also go to the analyzer (root cause, remediation).
    pub analyzer_webhook_url: String,
    pub wecom: WeCom,
    pub email: Email,
    /// The bearer token Alertmanager sends to the analyzer. Never read from `[rules]`:
    /// `Config::rules_spec` fills it from `remediation.webhook_token(_file)`, so the generated
    /// receiver and the daemon cannot disagree.
    #[serde(skip)]
    pub analyzer_authorization: Option<WebhookAuthorization>,
}

/// `http_config.authorization` of a generated webhook receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAuthorization {
    /// The token itself (it ends up in alertmanager.yml).
    Credentials(String),
    /// A file Alertmanager reads the token from (`credentials_file`).
    CredentialsFile(String),
}

impl Default for Receivers {
    fn default() -> Self {
        Receivers {
            phone_webhook_url: "http://127.0.0.1:9095/sms".into(),
            analyzer_webhook_url: "http://127.0.0.1:9466/webhook/alertmanager".into(),
            wecom: WeCom::default(),
            email: Email::default(),
            analyzer_authorization: None,
        }
    }
}

/// WeCom (企业微信) application messages through Alertmanager's `wechat_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeCom {
    pub api_url: String,
    pub corp_id: String,
    pub agent_id: String,
    pub api_secret: String,
    pub to_party: String,
}

impl Default for WeCom {
    fn default() -> Self {
        WeCom {
            api_url: "https://qyapi.weixin.qq.com/cgi-bin/".into(),
            corp_id: "ww0000000000000000".into(),
            agent_id: "1000002".into(),
            api_secret: "change-me".into(),
            to_party: "1".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Email {
    /// `host:port` of the SMTP server.
    pub smarthost: String,
    pub from: String,
    pub to: String,
    pub require_tls: bool,
}

impl Default for Email {
    fn default() -> Self {
        Email {
            smarthost: "127.0.0.1:25".into(),
            from: "deepwatch@example.com".into(),
            to: "oncall@example.com".into(),
            require_tls: false,
        }
    }
}

/// Static scrape targets (`host:port`) per job, and Kubernetes service discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Targets {
    pub agents: Vec<String>,
    pub gateways: Vec<String>,
    pub analyzer: Vec<String>,
    pub node_exporter: Vec<String>,
    pub pushgateway: Vec<String>,
    pub alertmanager: Vec<String>,
    /// Also discover pods annotated `deepwatch.io/scrape: "true"` in `kubernetes.namespace`.
    pub kubernetes_sd: bool,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            agents: vec!["127.0.0.1:9844".into()],
            gateways: vec!["127.0.0.1:9845".into()],
            analyzer: vec!["127.0.0.1:9466".into()],
            node_exporter: vec!["127.0.0.1:9100".into()],
            pushgateway: vec!["127.0.0.1:9091".into()],
            alertmanager: vec!["127.0.0.1:9093".into()],
            kubernetes_sd: true,
        }
    }
}

/// A recurring window during which warning and info alerts are muted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub name: String,
    /// `monday` .. `sunday`.
    pub weekdays: Vec<String>,
    /// `HH:MM`, in `location`.
    pub start: String,
    pub end: String,
    /// IANA time zone, e.g. `Asia/Shanghai` or `UTC`.
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Kubernetes {
    pub namespace: String,
    /// The image the repository's Dockerfile builds (`docker build -t deepwatch:<version> .`),
    /// pushed to a registry the cluster pulls from.
    pub image: String,
    /// Address the pods bind their served ports to: `0.0.0.0` so Services and Prometheus reach
    /// them on the pod IP (`::` on IPv6-only clusters).
    pub bind_address: String,
    /// The engine Deployment KEDA scales.
    pub engine_deployment: String,
    /// Prometheus URL KEDA queries.
    pub prometheus_url: String,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Target load per replica (queue + running over capacity, or KV-cache usage), 0-1.
    pub target_load: f64,
    /// Scale in only while the load is below this share of the target (hysteresis).
    pub scale_in_below: f64,
    /// Scale-down stabilization window.
    pub scale_in_stabilization_secs: u64,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Kubernetes {
            namespace: "deepwatch".into(),
            image: DEFAULT_IMAGE.into(),
            bind_address: "0.0.0.0".into(),
            engine_deployment: "deepseek-vllm".into(),
            prometheus_url: "http://prometheus-operated.monitoring.svc:9090".into(),
            min_replicas: 3,
            max_replicas: 10,
            target_load: 0.8,
            scale_in_below: 0.7,
            scale_in_stabilization_secs: 300,
        }
    }
}

/// The tag the Dockerfile's documented build gives (README, "Deploy").
pub const DEFAULT_IMAGE: &str = concat!("deepwatch:", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LongTerm {
    /// remote_write endpoint (VictoriaMetrics `/api/v1/write` or Thanos receive).
    pub remote_write_url: String,
    /// Edge Prometheus keeps raw 5 s data this long.
    pub edge_retention_days: u64,
    /// The federating long-retention Prometheus keeps the 1-minute aggregates this long.
    pub long_retention_days: u64,
    /// Edge Prometheus servers the long-retention and the global-view ones federate from.
    pub federate_from: Vec<String>,
    /// This edge's `cluster` external label: it rides on every series the edge federates or
    /// remote-writes and on every alert it sends, so the global view keeps clusters apart.
    /// Unique per edge Prometheus.
    pub cluster: String,
}

impl Default for LongTerm {
    fn default() -> Self {
        LongTerm {
            remote_write_url: "http://127.0.0.1:8428/api/v1/write".into(),
            edge_retention_days: 7,
            long_retention_days: 365,
            federate_from: vec!["127.0.0.1:9090".into()],
            cluster: "cluster-1".into(),
        }
    }
}

const WEEKDAYS: &[&str] =
    &["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

fn hh_mm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440 && text.len() == 5).then_some(h * 60 + m)
}

/// `12.4` -> (12, 4); `None` unless MAJOR.MINOR with small integers.
pub fn cuda_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    let (major, minor) = (major.parse().ok()?, minor.parse().ok()?);
    (major < 100 && minor < 100).then_some((major, minor))
}

/// `for`, hold and staleness durations are bounded like every other config duration.
const MAX_WINDOW_SECS: u64 = super::duration::MAX_WINDOW.as_secs();

impl Level {
    fn validate(&self, path: &Path, problems: &mut Problems, max: f64) {
        problems.range(&path.field("for_secs"), self.for_secs, 0, MAX_WINDOW_SECS);
        problems.range(&path.field("recover"), self.recover, 0.0, max);
        problems.range(&path.field("warning"), self.warning, 0.0, max);
        problems.range(&path.field("critical"), self.critical, 0.0, max);
        if self.recover >= self.warning {
            problems.push(&path.field("recover"), "must be below warning (hysteresis)");
        }
        if self.warning > self.critical {
            problems.push(&path.field("critical"), "must not be below warning");
        }
        if let Some(q) = self.quantile {
            if !(q > 0.0 && q < 1.0) {
                problems.push(&path.field("quantile"), format!("must be in (0, 1), got {q}"));
            }
        }
    }
}

impl RulesConfig {
    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        problems.range(&path.field("scrape_interval_secs"), self.scrape_interval_secs, 1, 300);
        problems.range(
            &path.field("evaluation_interval_secs"),
            self.evaluation_interval_secs,
            1,
            300,
        );
        problems.range(
            &path.field("page_evaluation_interval_secs"),
            self.page_evaluation_interval_secs,
            1,
            self.evaluation_interval_secs.max(1),
        );
        problems.positive(&path.field("retention_days"), self.retention_days);
        problems.http_url(&path.field("runbook_base_url"), &self.runbook_base_url);
        problems.http_url(&path.field("grafana_url"), &self.grafana_url);
        problems.http_url(&path.field("logs_url"), &self.logs_url);

        let t = &self.thresholds;
        let tp = path.field("thresholds");
        let lat = tp.field("latency");
        if t.latency.recover_secs >= t.latency.enter_secs || t.latency.recover_secs <= 0.0 {
            problems.push(&lat.field("recover_secs"), "must be above 0 and below enter_secs");
        }
        problems.range(&lat.field("consecutive"), t.latency.consecutive, 1, 100);
        problems.range(&lat.field("hold_secs"), t.latency.hold_secs, 0, MAX_WINDOW_SECS);
        let down = t.target_down_for_secs;
        problems.range(&tp.field("target_down_for_secs"), down, 0, MAX_WINDOW_SECS);
        if !(t.latency.quantile > 0.0 && t.latency.quantile < 1.0) {
            problems.push(&lat.field("quantile"), "must be in (0, 1)");
        }
        let f = f64::MAX;
        t.gpu_utilization.validate(&tp.field("gpu_utilization"), problems, 1.0);
        t.inference_latency.validate(&tp.field("inference_latency"), problems, f);
        t.memory_leak_mb_per_min.validate(&tp.field("memory_leak_mb_per_min"), problems, f);
        t.gpu_memory.validate(&tp.field("gpu_memory"), problems, 1.0);
        t.kv_cache.validate(&tp.field("kv_cache"), problems, 1.0);
        t.error_ratio.validate(&tp.field("error_ratio"), problems, 1.0);
        t.ttft.validate(&tp.field("ttft"), problems, f);
        t.cpu_iowait.validate(&tp.field("cpu_iowait"), problems, 1.0);
        t.inter_node_latency.validate(&tp.field("inter_node_latency"), problems, f);
        problems.range(&tp.field("performance_drop_ratio"), t.performance_drop_ratio, 0.0, 1.0);
        problems.range(&tp.field("accuracy_drop_ratio"), t.accuracy_drop_ratio, 0.0, 1.0);
        t.queue_depth.validate(&tp.field("queue_depth"), problems, f);
        t.queue_time.validate(&tp.field("queue_time"), problems, f);
        t.preemptions_per_sec.validate(&tp.field("preemptions_per_sec"), problems, f);
        t.cpu_wait.validate(&tp.field("cpu_wait"), problems, 1.0);
        t.host_memory.validate(&tp.field("host_memory"), problems, 1.0);
        t.disk_space.validate(&tp.field("disk_space"), problems, 1.0);
        problems.positive(&tp.field("ecc_corrected_per_hour"), t.ecc_corrected_per_hour);
        problems.positive(&tp.field("pcie_replays_per_min"), t.pcie_replays_per_min);
        if cuda_version(&t.min_cuda_version).is_none() {
            problems.push(
                &tp.field("min_cuda_version"),
                format!("must be MAJOR.MINOR, got {:?}", t.min_cuda_version),
            );
        }
        problems.range(&tp.field("push_stale_secs"), t.push_stale_secs, 1, MAX_WINDOW_SECS);

        let mut names = std::collections::HashSet::new();
        for (i, slo) in self.slos.iter().enumerate() {
            let p = path.field("slos").index(i);
            let valid_name = !slo.name.is_empty()
                && slo
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_name {
                problems.push(&p.field("name"), "must be non-empty snake_case");
            }
            if !names.insert(&slo.name) {
                problems.push(&p.field("name"), format!("duplicate SLO name {:?}", slo.name));
            }
            if !(slo.objective > 0.5 && slo.objective < 1.0) {
                problems.push(
                    &p.field("objective"),
                    format!("must be in (0.5, 1), got {}", slo.objective),
                );
            }
            if slo.kind == SloKind::Latency && slo.threshold_secs <= 0.0 {
                problems.push(&p.field("threshold_secs"), "latency SLOs need a threshold > 0");
            }
        }

        let r = path.field("receivers");
        problems.http_url(&r.field("phone_webhook_url"), &self.receivers.phone_webhook_url);
        problems.http_url(&r.field("analyzer_webhook_url"), &self.receivers.analyzer_webhook_url);
        let w = &self.receivers.wecom;
        problems.http_url(&r.field("wecom").field("api_url"), &w.api_url);
        for (name, value) in
            [("corp_id", &w.corp_id), ("agent_id", &w.agent_id), ("to_party", &w.to_party)]
        {
            problems.non_empty(&r.field("wecom").field(name), value);
        }
        let e = &self.receivers.email;
        if e.smarthost.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
            problems.push(&r.field("email").field("smarthost"), "must be host:port");
        }
        for (name, value) in [("from", &e.from), ("to", &e.to)] {
            if !value.contains('@') {
                problems.push(
                    &r.field("email").field(name),
                    format!("must be an e-mail address, got {value:?}"),
                );
            }
        }

        let tg = path.field("targets");
        for (name, list) in [
            ("agents", &self.targets.agents),
            ("gateways", &self.targets.gateways),
            ("analyzer", &self.targets.analyzer),
            ("node_exporter", &self.targets.node_exporter),
            ("pushgateway", &self.targets.pushgateway),
            ("alertmanager", &self.targets.alertmanager),
        ] {
            for (i, target) in list.iter().enumerate() {
                let port = target.rsplit_once(':').and_then(|(h, p)| (!h.is_empty()).then_some(p));
                if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                    problems.push(
                        &tg.field(name).index(i),
                        format!("must be host:port, got {target:?}"),
                    );
                }
            }
        }

        for (i, m) in self.maintenance.iter().enumerate() {
            let p = path.field("maintenance").index(i);
            problems.non_empty(&p.field("name"), &m.name);
            for (j, d) in m.weekdays.iter().enumerate() {
                if !WEEKDAYS.contains(&d.as_str()) {
                    problems.push(&p.field("weekdays").index(j), format!("unknown weekday {d:?}"));
                }
            }
            match (hh_mm(&m.start), hh_mm(&m.end)) {
                (Some(s), Some(e)) if s < e => {}
                (None, _) => {
                    problems.push(&p.field("start"), format!("must be HH:MM, got {:?}", m.start))
                }
                (_, None) => {
                    problems.push(&p.field("end"), format!("must be HH:MM, got {:?}", m.end))
                }
                _ => problems.push(&p.field("end"), "must be after start"),
            }
            problems.non_empty(&p.field("location"), &m.location);
        }

        let k = &self.kubernetes;
        let kp = path.field("kubernetes");
        problems.non_empty(&kp.field("namespace"), &k.namespace);
        problems.non_empty(&kp.field("image"), &k.image);
        if k.bind_address.parse::<std::net::IpAddr>().is_err() {
            problems.push(
                &kp.field("bind_address"),
                format!("must be an IP address like 0.0.0.0, got {:?}", k.bind_address),
            );
        }
        problems.http_url(&kp.field("prometheus_url"), &k.prometheus_url);
        problems.positive(&kp.field("min_replicas"), k.min_replicas);
        if k.max_replicas < k.min_replicas {
            problems.push(&kp.field("max_replicas"), "must not be below min_replicas");
        }
        problems.range(&kp.field("target_load"), k.target_load, 0.05, 1.0);
        problems.range(&kp.field("scale_in_below"), k.scale_in_below, 0.0, 0.99);
        problems.range(
            &kp.field("scale_in_stabilization_secs"),
            k.scale_in_stabilization_secs,
            0,
            3600,
        );

        let lt = path.field("long_term");
        problems.http_url(&lt.field("remote_write_url"), &self.long_term.remote_write_url);
        problems.positive(&lt.field("edge_retention_days"), self.long_term.edge_retention_days);
        let cluster = &self.long_term.cluster;
        let label_value_ok = !cluster.is_empty()
            && cluster.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !label_value_ok {
            problems.push(
                &lt.field("cluster"),
                format!(
                    "must be a non-empty name of letters, digits, '-', '_' or '.', got {cluster:?}"
                ),
            );
        }
        if self.long_term.long_retention_days < self.long_term.edge_retention_days {
            problems
                .push(&lt.field("long_retention_days"), "must not be below edge_retention_days");
        }
    }
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
[rules]
# `deepwatch rules --config deepwatch.toml --out DIR` turns this section into Prometheus,
# Alertmanager, Grafana, Kubernetes and long-term-storage files (committed under deploy/).
scrape_interval_secs = 5
evaluation_interval_secs = 5
# The critical latency alert and its quantile are evaluated this often, so a page does not
# wait up to a whole evaluation interval after the scrape that shows the fault.
page_evaluation_interval_secs = 1
# Retention of a single Prometheus (--storage.tsdb.retention.time).
retention_days = 30
# Alerts carry runbook_url = <runbook_base_url>/<AlertName>.md (serve or link docs/runbooks/
# there) and a Grafana dashboard link.
runbook_base_url = "https://runbooks.example.com/deepwatch"
grafana_url = "http://127.0.0.1:3000"
# Where data links from GPU and latency panels open logs for the same time range.
logs_url = "http://127.0.0.1:3000/explore"

[rules.thresholds]
# P2: decode speed (1 / mean TPOT) this much below the same time last week.
performance_drop_ratio = 0.3
# info: probe accuracy this much (relative) below its 7-day average.
accuracy_drop_ratio = 0.05
target_down_for_secs = 60
# Corrected ECC errors per hour and PCIe replays per minute on one GPU (warnings; any
# uncorrected ECC error is critical).
ecc_corrected_per_hour = 100.0
pcie_replays_per_min = 10.0
# Dependency check: GPUs whose driver supports an older CUDA API than this alert.
min_cuda_version = "12.1"
# A batch job's Pushgateway group not pushed for this long is stale.
push_stale_secs = 3600

# Critical latency: fire when the quantile of request duration is above enter_secs on
# `consecutive` scrape samples; stay firing while above recover_secs; clear hold_secs after it
# last was above recover_secs. Thresholds must sit on bucket edges (the generator warns).
[rules.thresholds.latency]
quantile = 0.99
enter_secs = 2.0
recover_secs = 1.5
consecutive = 3
hold_secs = 600

# Warning/critical pairs: enter above warning (critical), clear below recover.
[rules.thresholds.gpu_utilization]
warning = 0.85
critical = 0.95
recover = 0.75
for_secs = 60

# "Inference latency": request duration at this quantile, in seconds.
[rules.thresholds.inference_latency]
warning = 0.18
critical = 0.25
recover = 0.15
for_secs = 60
quantile = 0.5

[rules.thresholds.memory_leak_mb_per_min]
warning = 10.0
critical = 50.0
recover = 5.0
for_secs = 300

# GPU memory used / total. Engines preallocate (vLLM 90 %), so kv_cache is the real pressure.
[rules.thresholds.gpu_memory]
warning = 0.9
critical = 0.95
recover = 0.8
for_secs = 60

[rules.thresholds.kv_cache]
warning = 0.9
critical = 0.97
recover = 0.8
for_secs = 60

[rules.thresholds.error_ratio]
warning = 0.01
critical = 0.05
recover = 0.005
for_secs = 60

[rules.thresholds.ttft]
warning = 0.2
critical = 1.0
recover = 0.15
for_secs = 60
quantile = 0.99

[rules.thresholds.cpu_iowait]
warning = 0.2
critical = 0.4
recover = 0.1
for_secs = 120

[rules.thresholds.inter_node_latency]
warning = 0.001
critical = 0.005
recover = 0.00075
for_secs = 60
quantile = 0.99

# Requests waiting in one engine's queue.
[rules.thresholds.queue_depth]
warning = 10.0
critical = 50.0
recover = 2.0
for_secs = 60

# Engine queue time (scheduling wait) at this quantile, in seconds.
[rules.thresholds.queue_time]
warning = 1.0
critical = 5.0
recover = 0.5
for_secs = 60
quantile = 0.9

# Engine preemptions (vLLM) / retractions (SGLang) per second: KV-cache saturation.
[rules.thresholds.preemptions_per_sec]
warning = 0.1
critical = 1.0
recover = 0.02
for_secs = 120

# CPU wait: seconds per second some task waited for a CPU (PSI); 0.05 = 50 ms each second.
[rules.thresholds.cpu_wait]
warning = 0.05
critical = 0.2
recover = 0.03
for_secs = 60

# Host memory in use (1 - MemAvailable / MemTotal).
[rules.thresholds.host_memory]
warning = 0.9
critical = 0.95
recover = 0.85
for_secs = 120

# Filesystem space in use.
[rules.thresholds.disk_space]
warning = 0.85
critical = 0.95
recover = 0.8
for_secs = 300

# SLOs over 30 days, alerted with multi-window multi-burn-rate rules
# (1h/5m x14.4 and 6h/30m x6 page; 1d/2h x3 and 3d/6h x1 ticket).
[[rules.slos]]
name = "availability"
kind = "availability"
objective = 0.999
threshold_secs = 0.0

[[rules.slos]]
name = "latency"
kind = "latency"
objective = 0.99
threshold_secs = 2.0

# critical -> phone/SMS webhook + analyzer webhook; warning -> WeCom; info -> e-mail.
[rules.receivers]
phone_webhook_url = "http://127.0.0.1:9095/sms"
analyzer_webhook_url = "http://127.0.0.1:9466/webhook/alertmanager"

[rules.receivers.wecom]
api_url = "https://qyapi.weixin.qq.com/cgi-bin/"
corp_id = "ww0000000000000000"
agent_id = "1000002"
api_secret = "change-me"
to_party = "1"

[rules.receivers.email]
smarthost = "127.0.0.1:25"
from = "deepwatch@example.com"
to = "oncall@example.com"
require_tls = false

# Static scrape targets (host:port) per job.
[rules.targets]
agents = ["127.0.0.1:9844"]
gateways = ["127.0.0.1:9845"]
analyzer = ["127.0.0.1:9466"]
node_exporter = ["127.0.0.1:9100"]
pushgateway = ["127.0.0.1:9091"]
alertmanager = ["127.0.0.1:9093"]
# Also discover pods annotated deepwatch.io/scrape: "true" in kubernetes.namespace.
kubernetes_sd = true

# Warning and info alerts are muted inside these windows (Alertmanager time_intervals).
[[rules.maintenance]]
name = "weekly-maintenance"
weekdays = ["sunday"]
start = "02:00"
end = "04:00"
location = "Asia/Shanghai"

[rules.kubernetes]
namespace = "deepwatch"
# Built from the repository's Dockerfile (`docker build -t deepwatch:0.1.0 .`) and pushed to a
# registry the cluster pulls from; name that registry here (registry.example.com/deepwatch:0.1.0).
image = "deepwatch:0.1.0"
# The pods serve /metrics, /healthz and the proxy on this address (0.0.0.0: reachable on the
# pod IP by Services and Prometheus; "::" on IPv6-only clusters).
bind_address = "0.0.0.0"
# KEDA scales this engine Deployment on queue depth and KV-cache load per replica.
engine_deployment = "deepseek-vllm"
prometheus_url = "http://prometheus-operated.monitoring.svc:9090"
min_replicas = 3
max_replicas = 10
target_load = 0.8
# Scale in only while load < scale_in_below x target, after the stabilization window.
scale_in_below = 0.7
scale_in_stabilization_secs = 300

# Past one Prometheus (docs/scaling.md). Each edge keeps 5 s data for edge_retention_days and
# labels everything it sends with its cluster; a federating Prometheus keeps the 1-minute
# aggregates for long_retention_days; a global-view Prometheus federates every recording-rule
# series from federate_from and evaluates long-term/rules/global.yml; remote_write sends the
# recording-rule series to VictoriaMetrics (or Thanos receive), where vmalert can evaluate
# long-term/rules/global-vmalert.yml.
[rules.long_term]
remote_write_url = "http://127.0.0.1:8428/api/v1/write"
edge_retention_days = 7
long_retention_days = 365
federate_from = ["127.0.0.1:9090"]
cluster = "cluster-1"
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn wrong_fixture_reports_every_problem_with_its_path() {
        let text = r#"
[rules]
scrape_interval_secs = 0
runbook_base_url = "ftp://x"
[rules.thresholds.gpu_utilization]
warning = 0.85
critical = 0.80
recover = 0.9
for_secs = 60
[[rules.slos]]
name = "Bad Name"
kind = "latency"
objective = 1.5
[rules.receivers.email]
smarthost = "nohost"
[rules.targets]
agents = ["nope"]
[[rules.maintenance]]
name = "w"
weekdays = ["funday"]
start = "25:00"
end = "04:00"
location = "UTC"
[rules.kubernetes]
min_replicas = 5
max_replicas = 3
bind_address = "localhost"
"#;
        let config = Config::from_toml_str(text).unwrap();
        let err = config.validate().unwrap_err().to_string();
        for expected in [
            "rules.scrape_interval_secs: must be between 1 and 300, got 0",
            "rules.runbook_base_url: must be an http or https URL",
            "rules.thresholds.gpu_utilization.recover: must be below warning",
            "rules.thresholds.gpu_utilization.critical: must not be below warning",
            "rules.slos[0].name: must be non-empty snake_case",
            "rules.slos[0].objective: must be in (0.5, 1), got 1.5",
            "rules.slos[0].threshold_secs: latency SLOs need a threshold > 0",
            "rules.receivers.email.smarthost: must be host:port",
            "rules.targets.agents[0]: must be host:port",
            "rules.maintenance[0].weekdays[0]: unknown weekday \"funday\"",
            "rules.maintenance[0].start: must be HH:MM",
            "rules.kubernetes.max_replicas: must not be below min_replicas",
            "rules.kubernetes.bind_address: must be an IP address like 0.0.0.0, got \"localhost\"",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in\n{err}");
        }
    }

    #[test]
    fn unknown_threshold_key_is_named() {
        let err = Config::from_toml_str("[rules.thresholds.kv_cache]\nwarnng = 0.9\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("warnng"), "{err}");
    }

    #[test]
    fn default_validates() {
        let mut problems = Problems::default();
        RulesConfig::default().validate(&Path::root("rules"), &mut problems);
        assert!(problems.is_empty(), "{problems}");
    }
}
