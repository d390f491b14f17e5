//! The `[agent]` section of `deepwatch.toml`: where the node agent listens, which collectors run,
//! and what they watch (processes, inference engines, log files, peer nodes). Durations are
//! written as integers with their unit in the key (`interval_ms`, `window_secs`) and held as
//! `Duration` (`duration.rs`).

use super::duration::{MAX_INTERVAL, MAX_TIMEOUT, MAX_WINDOW};
use super::{Path, Problems};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Default listen address. 9100 is node_exporter, 9400 dcgm-exporter, 9835 nvidia_gpu_exporter,
/// 9256 process-exporter, 9464 OpenTelemetry's Prometheus exporter, 9000 TGI's metrics port and
/// 9090-9094 the Prometheus stack itself; 9844 clashes with none of the exporters a GPU node
/// usually runs.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9844";

/// Default `procfs_root`: this machine's (or this container's) own /proc.
pub const DEFAULT_PROCFS_ROOT: &str = "/proc";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Address `/metrics` and `/healthz` are served on.
    pub listen: String,
    /// Where procfs is read (host, process and GPU-process collectors). In a container the
    /// host's /proc is mounted elsewhere, e.g. `/host/proc` with `hostPID` in Kubernetes.
    pub procfs_root: String,
    pub collectors: CollectorsConfig,
    pub gpu: GpuConfig,
    pub host: HostConfig,
    pub process: ProcessConfig,
    pub engines: Vec<EngineConfig>,
    pub logs: Vec<LogFileConfig>,
    pub peers: Vec<PeerConfig>,
    pub push: AgentPushConfig,
}

/// Push mode, for nodes Prometheus cannot reach: every interval the agent sends its whole
/// `/metrics`, either PUT to a Pushgateway group `job/<job>/instance/<instance>` or as
/// Prometheus remote_write to VictoriaMetrics or Prometheus' receiver. Empty `url` = off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentPushConfig {
    pub url: String,
    pub protocol: PushProtocol,
    #[serde(rename = "interval_ms", with = "crate::config::duration::millis")]
    pub interval: Duration,
    #[serde(rename = "timeout_ms", with = "crate::config::duration::millis")]
    pub timeout: Duration,
    pub job: String,
    /// Empty means this host's name.
    pub instance: String,
    /// Labels added to every pushed series (a remote_write series, or the Pushgateway
    /// grouping key), such as `cluster`; `job` and `instance` are set above.
    pub labels: BTreeMap<String, String>,
    /// remote_write: samples kept while the receiver is down or failing; beyond it the oldest
    /// are dropped and counted (`deepwatch_agent_push_samples_total{outcome="dropped"}`).
    pub max_buffer_samples: u64,
}

/// How push mode sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushProtocol {
    /// PUT the text exposition to a Pushgateway group (the group keeps the latest push only).
    #[default]
    Pushgateway,
    /// Prometheus remote_write 1.0 (snappy protobuf), every sample timestamped, buffered and
    /// retried while the receiver is down.
    RemoteWrite,
}

impl Default for AgentPushConfig {
    fn default() -> Self {
        AgentPushConfig {
            url: String::new(),
            protocol: PushProtocol::Pushgateway,
            interval: Duration::from_millis(15000),
            timeout: Duration::from_millis(5000),
            job: "deepwatch_agent".to_string(),
            instance: String::new(),
            labels: BTreeMap::new(),
            max_buffer_samples: 1_000_000,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            listen: DEFAULT_LISTEN.to_string(),
            procfs_root: DEFAULT_PROCFS_ROOT.to_string(),
            collectors: CollectorsConfig::default(),
            gpu: GpuConfig::default(),
            host: HostConfig::default(),
            process: ProcessConfig::default(),
            engines: Vec::new(),
            logs: Vec::new(),
            peers: Vec::new(),
            push: AgentPushConfig::default(),
        }
    }
}

/// Which collectors run. A disabled collector exports nothing, not even `collector_up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorsConfig {
    pub gpu: bool,
    pub host: bool,
    pub process: bool,
    pub engine: bool,
    pub logs: bool,
    pub peers: bool,
}

impl Default for CollectorsConfig {
    fn default() -> Self {
        CollectorsConfig {
            gpu: true,
            host: true,
            process: true,
            engine: true,
            logs: true,
            peers: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// Path of the NVML library; empty means the system's `libnvidia-ml.so.1`.
    pub nvml_library: String,
    /// Export device memory per process (pid, process name).
    pub process_memory: bool,
    /// Count XID error events (a background thread waits on NVML events).
    pub xid_events: bool,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig { nvml_library: String::new(), process_memory: true, xid_events: true }
    }
}

/// Which host resources to skip, as regular expressions (node_exporter's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    pub filesystem_types_exclude: String,
    pub mountpoints_exclude: String,
    pub disk_devices_exclude: String,
    pub interfaces_exclude: String,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            filesystem_types_exclude: "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$".to_string(),
            mountpoints_exclude: "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)".to_string(),
            disk_devices_exclude: "^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$".to_string(),
            interfaces_exclude: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Watch the agent itself (label `process="deepwatch-agent"`).
    pub include_self: bool,
    /// How often a background sampler records each process's RSS for the growth rate.
    #[serde(rename = "sample_interval_ms", with = "crate::config::duration::millis")]
    pub sample_interval: Duration,
    /// Window of the RSS growth rate (`deepwatch_process_memory_growth_bytes_per_second`).
    #[serde(rename = "growth_window_secs", with = "crate::config::duration::secs")]
    pub growth_window: Duration,
    pub targets: Vec<ProcessTarget>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            include_self: true,
            sample_interval: Duration::from_millis(5000),
            growth_window: Duration::from_secs(300),
            targets: Vec::new(),
        }
    }
}

/// One watched process: `name` is the `process` label; exactly one selector is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessTarget {
    pub name: String,
    /// Exact process name (`/proc/<pid>/comm`, at most 15 characters).
    pub exact_name: String,
    /// File holding the pid.
    pub pid_file: String,
    /// Regular expression matched against the command line (arguments joined by spaces).
    pub cmdline_regex: String,
}

/// Kind of inference engine behind an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Detected from the metric prefixes of each scrape.
    #[default]
    Auto,
    Vllm,
    Sglang,
    Tgi,
    Llamacpp,
    /// NVIDIA NIM: vLLM names without the `vllm:` prefix.
    Nim,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Vllm => "vllm",
            EngineKind::Sglang => "sglang",
            EngineKind::Tgi => "tgi",
            EngineKind::Llamacpp => "llamacpp",
            EngineKind::Nim => "nim",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Value of the `engine` label; unique.
    pub name: String,
    /// The engine's metrics URL, for example `http://127.0.0.1:8000/metrics`.
    pub url: String,
    pub kind: EngineKind,
    /// Value of the `model` label when the engine's metrics carry none (TGI, llama.cpp).
    pub model: String,
    #[serde(rename = "interval_ms", with = "crate::config::duration::millis")]
    pub interval: Duration,
    #[serde(rename = "timeout_ms", with = "crate::config::duration::millis")]
    pub timeout: Duration,
    /// Larger payloads are refused (`reason="too_large"`).
    pub max_body_bytes: u64,
    /// Requests running but no progress for this long: `deepwatch_engine_stalled 1`.
    #[serde(rename = "stall_after_secs", with = "crate::config::duration::secs")]
    pub stall_after: Duration,
    /// Re-export every scraped sample under its own name (with a `deepwatch_engine` label).
    pub raw: bool,
    /// At most this many raw samples are kept and re-exported per scrape; the rest are dropped
    /// and the scrape counted under `reason="too_many_series"` (normalized values are kept).
    pub max_series: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            name: String::new(),
            url: String::new(),
            kind: EngineKind::Auto,
            model: String::new(),
            interval: Duration::from_millis(5000),
            timeout: Duration::from_millis(3000),
            max_body_bytes: 16 * 1024 * 1024,
            stall_after: Duration::from_secs(60),
            raw: true,
            max_series: 20_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFileConfig {
    pub path: String,
    /// Value of the `file` label; defaults to the path.
    pub name: String,
    /// Named patterns counted in `deepwatch_log_pattern_matches_total{pattern}`.
    pub patterns: BTreeMap<String, String>,
    #[serde(rename = "poll_interval_ms", with = "crate::config::duration::millis")]
    pub poll_interval: Duration,
    /// Read the file from its beginning at start (otherwise only new lines count).
    pub from_start: bool,
}

impl Default for LogFileConfig {
    fn default() -> Self {
        LogFileConfig {
            path: String::new(),
            name: String::new(),
            patterns: BTreeMap::new(),
            poll_interval: Duration::from_millis(500),
            from_start: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerConfig {
    /// Value of the `peer` label; unique.
    pub name: String,
    /// `host:port` of a TCP port that accepts connections on the peer.
    pub address: String,
    #[serde(rename = "interval_ms", with = "crate::config::duration::millis")]
    pub interval: Duration,
    #[serde(rename = "timeout_ms", with = "crate::config::duration::millis")]
    pub timeout: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            name: String::new(),
            address: String::new(),
            interval: Duration::from_millis(5000),
            timeout: Duration::from_millis(1000),
        }
    }
}

impl AgentConfig {
    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        problems.socket_addr(&path.field("listen"), &self.listen);
        if !self.procfs_root.starts_with('/') {
            problems.push(
                &path.field("procfs_root"),
                format!("must be an absolute path, got {:?}", self.procfs_root),
            );
        }
        let host = path.field("host");
        problems
            .regex(&host.field("filesystem_types_exclude"), &self.host.filesystem_types_exclude);
        problems.regex(&host.field("mountpoints_exclude"), &self.host.mountpoints_exclude);
        problems.regex(&host.field("disk_devices_exclude"), &self.host.disk_devices_exclude);
        problems.regex(&host.field("interfaces_exclude"), &self.host.interfaces_exclude);
        self.validate_processes(&path.field("process"), problems);
        self.validate_engines(&path.field("engines"), problems);
        self.validate_logs(&path.field("logs"), problems);
        self.validate_peers(&path.field("peers"), problems);
        let push = path.field("push");
        if !self.push.url.is_empty() {
            problems.http_url(&push.field("url"), &self.push.url);
            problems.non_empty(&push.field("job"), &self.push.job);
            problems.positive_duration(
                &push.field("interval_ms"),
                self.push.interval,
                MAX_INTERVAL,
            );
            problems.positive_duration(&push.field("timeout_ms"), self.push.timeout, MAX_TIMEOUT);
            problems.positive(&push.field("max_buffer_samples"), self.push.max_buffer_samples);
            for name in self.push.labels.keys() {
                let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with("__");
                if !ok {
                    problems.push(
                        &push.field("labels").key(name),
                        "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)",
                    );
                } else if name == "job" || name == "instance" {
                    problems.push(
                        &push.field("labels").key(name),
                        format!("set {name} with agent.push.{name}, not as a label"),
                    );
                }
            }
        }
    }

    fn validate_processes(&self, path: &Path, problems: &mut Problems) {
        let p = &self.process;
        problems.positive_duration(
            &path.field("sample_interval_ms"),
            p.sample_interval,
            MAX_INTERVAL,
        );
        problems.positive_duration(&path.field("growth_window_secs"), p.growth_window, MAX_WINDOW);
        if !p.sample_interval.is_zero() && p.growth_window < 2 * p.sample_interval {
            problems.push(
                &path.field("growth_window_secs"),
                format!(
                    "must cover at least two samples ({} ms), got {} s",
                    (2 * p.sample_interval).as_millis(),
                    p.growth_window.as_secs()
                ),
            );
        }
        let mut names = HashSet::new();
        for (i, t) in p.targets.iter().enumerate() {
            let at = path.field("targets").index(i);
            problems.non_empty(&at.field("name"), &t.name);
            if !t.name.is_empty() && !names.insert(t.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate process name {:?}", t.name));
            }
            let set = [&t.exact_name, &t.pid_file, &t.cmdline_regex]
                .iter()
                .filter(|s| !s.is_empty())
                .count();
            if set != 1 {
                problems.push(
                    &at,
                    format!("set exactly one of exact_name, pid_file, cmdline_regex (got {set})"),
                );
            }
            if !t.cmdline_regex.is_empty() {
                problems.regex(&at.field("cmdline_regex"), &t.cmdline_regex);
            }
        }
    }

    fn validate_engines(&self, path: &Path, problems: &mut Problems) {
        let mut names = HashSet::new();
        for (i, e) in self.engines.iter().enumerate() {
            let at = path.index(i);
            problems.non_empty(&at.field("name"), &e.name);
            if !e.name.is_empty() && !names.insert(e.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate engine name {:?}", e.name));
            }
            problems.http_url(&at.field("url"), &e.url);
            problems.positive_duration(&at.field("interval_ms"), e.interval, MAX_INTERVAL);
            problems.positive_duration(&at.field("timeout_ms"), e.timeout, MAX_TIMEOUT);
            problems.range(&at.field("max_body_bytes"), e.max_body_bytes, 1024, 1 << 30);
            problems.range(&at.field("max_series"), e.max_series, 1, 10_000_000);
            problems.positive_duration(&at.field("stall_after_secs"), e.stall_after, MAX_WINDOW);
        }
    }

    fn validate_logs(&self, path: &Path, problems: &mut Problems) {
        for (i, l) in self.logs.iter().enumerate() {
            let at = path.index(i);
            problems.non_empty(&at.field("path"), &l.path);
            problems.positive_duration(
                &at.field("poll_interval_ms"),
                l.poll_interval,
                MAX_INTERVAL,
            );
            for (name, re) in &l.patterns {
                let key = at.field("patterns").key(name);
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    problems.push(&key, "pattern names use letters, digits and _ only");
                }
                problems.regex(&key, re);
            }
        }
    }

    fn validate_peers(&self, path: &Path, problems: &mut Problems) {
        let mut names = HashSet::new();
        for (i, p) in self.peers.iter().enumerate() {
            let at = path.index(i);
            problems.non_empty(&at.field("name"), &p.name);
            if !p.name.is_empty() && !names.insert(p.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate peer name {:?}", p.name));
            }
            let port_ok = p
                .address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                problems.push(
                    &at.field("address"),
                    format!("must be host:port like 10.0.0.2:22, got {:?}", p.address),
                );
            }
            problems.positive_duration(&at.field("interval_ms"), p.interval, MAX_INTERVAL);
            problems.positive_duration(&at.field("timeout_ms"), p.timeout, MAX_TIMEOUT);
        }
    }
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
[agent]
# Where /metrics and /healthz are served. 9844 avoids node_exporter (9100), dcgm-exporter (9400),
# nvidia_gpu_exporter (9835), process-exporter (9256), OpenTelemetry (9464) and TGI (9000).
listen = "127.0.0.1:9844"
# Where procfs is read. In a container, mount the host's /proc elsewhere and point here (the
# generated Kubernetes DaemonSet runs with hostPID and passes --procfs-root /host/proc).
procfs_root = "/proc"
# Inference engines, log files and peer nodes to watch: see the commented [[agent.engines]],
# [[agent.logs]] and [[agent.peers]] examples at the end of this section.
engines = []
logs = []
peers = []

# Collectors to run; each exports deepwatch_collector_up{collector} and
# deepwatch_collector_duration_seconds{collector}.
[agent.collectors]
gpu = true
host = true
process = true
engine = true
logs = true
peers = true

[agent.gpu]
# NVML library path; empty = the system's libnvidia-ml.so.1. No NVML means
# deepwatch_collector_up{collector="gpu"} 0 and one warning, never a crash.
nvml_library = ""
process_memory = true
xid_events = true

# Push mode for nodes Prometheus cannot reach. protocol "pushgateway": PUT /metrics to the
# Pushgateway group job/<job>/instance/<instance> every interval (url = the Pushgateway).
# protocol "remote_write": Prometheus remote_write (snappy protobuf) to VictoriaMetrics
# (url = http://vm:8428/api/v1/write) or Prometheus run with --web.enable-remote-write-receiver
# (url = http://prometheus:9090/api/v1/write); samples are timestamped and kept in a buffer of
# max_buffer_samples while the receiver is down, then sent oldest first.
# Empty url = off; empty instance = host name; labels (e.g. { cluster = "a" }) go on every series.
[agent.push]
url = ""
protocol = "pushgateway"
interval_ms = 15000
timeout_ms = 5000
job = "deepwatch_agent"
instance = ""
labels = {}
max_buffer_samples = 1000000

# Regular expressions of what the host collector skips (node_exporter's defaults).
[agent.host]
filesystem_types_exclude = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$"
mountpoints_exclude = "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
disk_devices_exclude = "^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$"
interfaces_exclude = ""

[agent.process]
# The agent watches itself as process="deepwatch-agent".
include_self = true
# RSS is sampled in the background at this interval, whatever the scrape interval, and
# deepwatch_process_memory_growth_bytes_per_second is the robust slope over the window.
sample_interval_ms = 5000
growth_window_secs = 300
# Processes to watch; set exactly one of exact_name, pid_file, cmdline_regex.
targets = []
# [[agent.process.targets]]
# name = "vllm"
# cmdline_regex = "vllm(\\.entrypoints\\.openai\\.api_server| serve)"

# Inference engines scraped on their own interval; samples are re-exported raw and normalized.
# [[agent.engines]]
# name = "vllm-0"                       # the engine label
# url = "http://127.0.0.1:8000/metrics"
# kind = "auto"                         # auto, vllm, sglang, tgi, llamacpp, nim
# model = ""                            # model label for engines whose metrics carry none
# interval_ms = 5000
# timeout_ms = 3000
# max_body_bytes = 16777216
# stall_after_secs = 60                 # running > 0 and no progress this long: stalled
# raw = true
# max_series = 20000                    # raw samples kept per scrape; more count as too_many_series

# Log files tailed (rename and truncate rotation followed); lines counted by level and pattern.
# [[agent.logs]]
# path = "/var/log/vllm/server.log"
# name = "vllm"
# poll_interval_ms = 500
# from_start = false
# patterns = { cuda_oom = "CUDA out of memory", shape_mismatch = "size mismatch|shape mismatch" }

# Peer nodes whose TCP connect latency is probed.
# [[agent.peers]]
# name = "gpu-node-2"
# address = "10.0.0.2:22"
# interval_ms = 5000
# timeout_ms = 1000
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn problems_of(toml: &str) -> String {
        let config = Config::from_toml_str(toml).unwrap();
        match config.validate() {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let text = problems_of(
            r#"
[agent]
listen = "localhost"
procfs_root = "host/proc"
[[agent.engines]]
name = "a"
url = "localhost:8000"
timeout_ms = 0
[[agent.engines]]
name = "a"
url = "http://x/metrics"
[agent.process]
targets = [{ name = "p", exact_name = "x", pid_file = "/run/x.pid" }]
[[agent.logs]]
path = "/var/log/x"
patterns = { oom = "(" }
[[agent.peers]]
name = "b"
address = "10.0.0.2"
"#,
        );
        for expected in [
            "agent.listen: must be an address like 127.0.0.1:9844, got \"localhost\"",
            "agent.procfs_root: must be an absolute path, got \"host/proc\"",
            "agent.engines[0].url: must be an http or https URL, got scheme \"localhost\"",
            "agent.engines[0].timeout_ms: must be greater than 0, got 0",
            "agent.engines[1].name: duplicate engine name \"a\"",
            "agent.process.targets[0]: set exactly one of exact_name, pid_file, cmdline_regex (got 2)",
            "agent.logs[0].patterns.oom: is not a valid regular expression",
            "agent.peers[0].address: must be host:port like 10.0.0.2:22, got \"10.0.0.2\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn a_full_engine_entry_parses() {
        let config = Config::from_toml_str(
            "[[agent.engines]]\nname = \"v\"\nurl = \"http://127.0.0.1:8000/metrics\"\nkind = \"sglang\"\n",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.agent.engines[0].kind, EngineKind::Sglang);
        assert_eq!(config.agent.engines[0].max_body_bytes, 16 * 1024 * 1024);
    }

    #[test]
    fn push_labels_and_buffer_are_checked() {
        let text = problems_of(
            r#"
[agent.push]
url = "http://127.0.0.1:8428/api/v1/write"
protocol = "remote_write"
max_buffer_samples = 0
labels = { cluster = "a", "2x" = "b", instance = "c", __name__ = "d" }
"#,
        );
        for expected in [
            "agent.push.max_buffer_samples: must be greater than 0, got 0",
            "agent.push.labels.2x: must be a Prometheus label name",
            "agent.push.labels.instance: set instance with agent.push.instance, not as a label",
            "agent.push.labels.__name__: must be a Prometheus label name",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("labels.cluster"), "{text}");
        let bad = Config::from_toml_str("[agent.push]\nprotocol = \"udp\"\n").unwrap_err();
        assert!(bad.to_string().contains("protocol"), "{bad}");
    }
}
