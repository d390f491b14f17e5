//! Kubernetes manifests: the ConfigMap carrying `deepwatch.toml`, the agent DaemonSet, gateway
//! and analyzer Deployments and Services, ServiceMonitor/PodMonitor and PrometheusRule resources
//! (prometheus-operator), a KEDA ScaledObject for the engine (min/max replicas, queue depth and
//! KV-cache load per replica, scale-in hysteresis) and least-privilege RBAC (only the analyzer
//! may scale the engine) and the Grafana dashboards as a ConfigMap for Grafana's dashboard
//! sidecar (label `grafana_dashboard: "1"`). Every manifest is validated against the Kubernetes, prometheus-operator
//! and KEDA schemas in `tests/kube.rs`; every container's args parse with the CLI (tested there).

use crate::model::{Links, RuleFile};
use crate::promql::{num, sel};
use crate::yaml::Y;
use crate::{ymap, yseq, Ctx};
use deepwatch_core::catalog::agent;
use deepwatch_core::config::{
    agent as agent_cfg, analyzer as analyzer_cfg, gateway as gateway_cfg,
};
use sha2::{Digest, Sha256};

/// Where the ConfigMap's `deepwatch.toml` is mounted in every pod.
pub const CONFIG_DIR: &str = "/etc/deepwatch";
/// Writable state (the analyzer's journal, audit log and reports) under a read-only root.
pub const STATE_DIR: &str = "/var/lib/deepwatch";
/// Where the agent sees the node's /proc (with `hostPID`, the node's processes).
pub const HOST_PROC: &str = "/host/proc";
/// The unprivileged user of the image (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65532;

/// The port of a default listen address, so Services and probes follow the components.
fn port_of(listen: &str) -> i64 {
    listen.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0)
}

/// A component's pod: what it runs, which ports it serves, what it needs.
struct PodSpec<'a> {
    component: &'a str,
    /// Subcommand and flags after `deepwatch`; the config path is appended.
    args: Vec<String>,
    /// (name, port); the one named `metrics` serves `/metrics` and `/healthz`.
    ports: Vec<(&'a str, i64)>,
    /// Kubernetes API access (the analyzer's scaling).
    service_account_token: bool,
    /// (requests cpu, requests memory, limits cpu, limits memory).
    resources: (&'a str, &'a str, &'a str, &'a str),
}

fn labels(component: &str) -> Y {
    ymap! { "app.kubernetes.io/name" => "deepwatch", "app.kubernetes.io/component" => component }
}

fn meta(ctx: &Ctx<'_>, name: &str, component: &str) -> Y {
    ymap! {
        "name" => name,
        "namespace" => ctx.cfg.kubernetes.namespace.as_str(),
        "labels" => labels(component),
    }
}

fn selector(component: &str) -> Y {
    ymap! { "matchLabels" => labels(component) }
}

fn healthz(period: i64, failures: i64) -> Y {
    ymap! {
        "httpGet" => ymap! { "path" => "/healthz", "port" => "metrics" },
        "periodSeconds" => period, "timeoutSeconds" => 3, "failureThreshold" => failures,
    }
}

fn pod(ctx: &Ctx<'_>, spec: PodSpec<'_>, config_sha: &str, mounts: Vec<Y>, volumes: Vec<Y>) -> Y {
    let mut args = spec.args;
    args.extend(["--config".to_string(), format!("{CONFIG_DIR}/deepwatch.toml")]);
    let (req_cpu, req_mem, lim_cpu, lim_mem) = spec.resources;
    let ports: Vec<Y> = spec
        .ports
        .iter()
        .map(
            |(name, port)| ymap! { "name" => *name, "containerPort" => *port, "protocol" => "TCP" },
        )
        .collect();
    let mut all_mounts =
        vec![ymap! { "name" => "config", "mountPath" => CONFIG_DIR, "readOnly" => true }];
    all_mounts.extend(mounts);
    let mut all_volumes =
        vec![ymap! { "name" => "config", "configMap" => ymap! { "name" => "deepwatch-config" } }];
    all_volumes.extend(volumes);
    let container = ymap! {
        "name" => spec.component,
        "image" => ctx.cfg.kubernetes.image.as_str(),
        "imagePullPolicy" => "IfNotPresent",
        "args" => args,
        "ports" => Y::Seq(ports),
        // Started once /healthz answers; restarted after 30 s without an answer.
        "startupProbe" => healthz(2, 30),
        "livenessProbe" => healthz(10, 3),
        "readinessProbe" => healthz(5, 2),
        "resources" => ymap! {
            "requests" => ymap! { "cpu" => req_cpu, "memory" => req_mem },
            "limits" => ymap! { "cpu" => lim_cpu, "memory" => lim_mem },
        },
        "securityContext" => ymap! {
            "allowPrivilegeEscalation" => false, "privileged" => false,
            "readOnlyRootFilesystem" => true, "runAsNonRoot" => true,
            "capabilities" => ymap! { "drop" => yseq!["ALL"] },
        },
        "volumeMounts" => Y::Seq(all_mounts),
    };
    ymap! {
        "metadata" => ymap! {
            "labels" => labels(spec.component),
            // A changed deepwatch.toml rolls the pods (they read it once, at start).
            "annotations" => ymap! { "deepwatch.io/config-sha256" => config_sha },
        },
        "spec" => ymap! {
            "serviceAccountName" => format!("deepwatch-{}", spec.component),
            "automountServiceAccountToken" => spec.service_account_token,
            "securityContext" => ymap! {
                "runAsNonRoot" => true, "runAsUser" => RUN_AS_USER, "runAsGroup" => RUN_AS_USER,
                "fsGroup" => RUN_AS_USER,
                "seccompProfile" => ymap! { "type" => "RuntimeDefault" },
            },
            "containers" => yseq![container],
            "volumes" => Y::Seq(all_volumes),
        },
    }
}

fn service(ctx: &Ctx<'_>, component: &str, ports: &[(&str, i64)]) -> Y {
    let ports: Vec<Y> = ports
        .iter()
        .map(|(name, port)| ymap! { "name" => *name, "port" => *port, "targetPort" => *name, "protocol" => "TCP" })
        .collect();
    ymap! {
        "apiVersion" => "v1", "kind" => "Service", "metadata" => meta(ctx, &format!("deepwatch-{component}"), component),
        "spec" => ymap! { "selector" => labels(component), "ports" => Y::Seq(ports) },
    }
}

fn bind(ctx: &Ctx<'_>, port: i64) -> String {
    let ip = ctx.cfg.kubernetes.bind_address.as_str();
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn state_volume() -> (Vec<Y>, Vec<Y>) {
    (
        vec![ymap! { "name" => "state", "mountPath" => STATE_DIR }],
        vec![ymap! { "name" => "state", "emptyDir" => ymap! {} }],
    )
}

fn gateway(ctx: &Ctx<'_>, config_sha: &str) -> Vec<Y> {
    let proxy = port_of(gateway_cfg::DEFAULT_LISTEN);
    let admin = port_of(gateway_cfg::DEFAULT_ADMIN_LISTEN);
    let ports = [("http", proxy), ("metrics", admin)];
    let spec = PodSpec {
        component: "gateway",
        args: vec![
            "gateway".into(),
            "--listen".into(),
            bind(ctx, proxy),
            "--admin-listen".into(),
            bind(ctx, admin),
        ],
        ports: ports.to_vec(),
        service_account_token: false,
        resources: ("500m", "256Mi", "2", "1Gi"),
    };
    let (mounts, volumes) = state_volume();
    let mut template = pod(ctx, spec, config_sha, mounts, volumes);
    if let Y::Map(entries) = &mut template {
        if let Some((_, spec)) = entries.iter_mut().find(|(k, _)| k == "spec") {
            // On SIGTERM the gateway stops accepting and lets streams in flight finish.
            spec.push("terminationGracePeriodSeconds", 60);
        }
    }
    let deployment = ymap! {
        "apiVersion" => "apps/v1", "kind" => "Deployment", "metadata" => meta(ctx, "deepwatch-gateway", "gateway"),
        "spec" => ymap! {
            "replicas" => 2, "selector" => selector("gateway"),
            "strategy" => ymap! { "type" => "RollingUpdate", "rollingUpdate" => ymap! { "maxUnavailable" => 0, "maxSurge" => 1 } },
            "template" => template,
        },
    };
    vec![deployment, service(ctx, "gateway", &ports)]
}

fn analyzer(ctx: &Ctx<'_>, config_sha: &str) -> Vec<Y> {
    let port = port_of(analyzer_cfg::DEFAULT_LISTEN);
    let spec = PodSpec {
        component: "analyzer",
        args: vec!["analyze".into(), "--listen".into(), bind(ctx, port)],
        ports: vec![("metrics", port)],
        service_account_token: true,
        resources: ("100m", "256Mi", "1", "1Gi"),
    };
    let (mounts, volumes) = state_volume();
    let mut template = pod(ctx, spec, config_sha, mounts, volumes);
    if let Y::Map(entries) = &mut template {
        if let Some((_, Y::Map(spec))) = entries.iter_mut().find(|(k, _)| k == "spec") {
            if let Some((_, Y::Seq(containers))) = spec.iter_mut().find(|(k, _)| k == "containers")
            {
                // Relative paths (report_dir) land in the writable state volume.
                containers[0].push("workingDir", STATE_DIR);
            }
        }
    }
    let deployment = ymap! {
        "apiVersion" => "apps/v1", "kind" => "Deployment", "metadata" => meta(ctx, "deepwatch-analyzer", "analyzer"),
        "spec" => ymap! {
            // One analyzer acts; Recreate never runs two that would both remediate.
            "replicas" => 1, "selector" => selector("analyzer"), "strategy" => ymap! { "type" => "Recreate" },
            "template" => template,
        },
    };
    vec![deployment, service(ctx, "analyzer", &[("metrics", port)])]
}

fn agent_daemonset(ctx: &Ctx<'_>, config_sha: &str) -> Y {
    let port = port_of(agent_cfg::DEFAULT_LISTEN);
    let spec = PodSpec {
        component: "agent",
        args: vec![
            "agent".into(),
            "--listen".into(),
            bind(ctx, port),
            "--procfs-root".into(),
            HOST_PROC.into(),
        ],
        ports: vec![("metrics", port)],
        service_account_token: false,
        resources: ("50m", "64Mi", "500m", "256Mi"),
    };
    let mounts = vec![ymap! { "name" => "proc", "mountPath" => HOST_PROC, "readOnly" => true }];
    let volumes = vec![
        ymap! { "name" => "proc", "hostPath" => ymap! { "path" => "/proc", "type" => "Directory" } },
    ];
    let mut template = pod(ctx, spec, config_sha, mounts, volumes);
    if let Y::Map(entries) = &mut template {
        if let Some((_, Y::Map(spec))) = entries.iter_mut().find(|(k, _)| k == "spec") {
            // The node's pid namespace: engine processes are visible by their node pids,
            // the same pids NVML reports.
            spec.push(("hostPID".into(), Y::Bool(true)));
            // The NVIDIA container runtime mounts libnvidia-ml into the container.
            spec.push(("runtimeClassName".into(), Y::from("nvidia")));
            spec.push(("tolerations".into(), yseq![ymap! { "key" => "nvidia.com/gpu", "operator" => "Exists", "effect" => "NoSchedule" }]));
            if let Some((_, Y::Seq(containers))) = spec.iter_mut().find(|(k, _)| k == "containers")
            {
                containers[0].push(
                    "env",
                    yseq![
                        ymap! { "name" => "NVIDIA_VISIBLE_DEVICES", "value" => "all" },
                        ymap! { "name" => "NVIDIA_DRIVER_CAPABILITIES", "value" => "utility" },
                    ],
                );
            }
        }
    }
    ymap! {
        "apiVersion" => "apps/v1", "kind" => "DaemonSet", "metadata" => meta(ctx, "deepwatch-agent", "agent"),
        "spec" => ymap! {
            "selector" => selector("agent"),
            "updateStrategy" => ymap! { "type" => "RollingUpdate", "rollingUpdate" => ymap! { "maxUnavailable" => 1 } },
            "template" => template,
        },
    }
}

fn config_map(ctx: &Ctx<'_>, config_toml: &str) -> Y {
    ymap! {
        "apiVersion" => "v1", "kind" => "ConfigMap", "metadata" => meta(ctx, "deepwatch-config", "config"),
        "data" => ymap! { "deepwatch.toml" => config_toml },
    }
}

/// The label Grafana's dashboard sidecar (k8s-sidecar, as the Grafana Helm chart and
/// kube-prometheus-stack run it) watches for: every ConfigMap carrying it is loaded as
/// dashboards, one per data key.
pub const GRAFANA_SIDECAR_LABEL: (&str, &str) = ("grafana_dashboard", "1");
pub const DASHBOARDS_CONFIG_MAP: &str = "deepwatch-grafana-dashboards";

/// The four dashboards as one ConfigMap (compact JSON, about 70 kB, well under the 256 kB
/// `kubectl apply` annotation limit) for the sidecar, filed into a `deepwatch` folder.
fn dashboards_config_map(ctx: &Ctx<'_>) -> Y {
    let data: Vec<(String, Y)> = crate::grafana::dashboards(ctx)
        .into_iter()
        .map(|(name, dash)| {
            (
                format!("deepwatch-{name}.json"),
                Y::from(serde_json::to_string(&dash).unwrap_or_default()),
            )
        })
        .collect();
    let mut labels = vec![
        ("app.kubernetes.io/name".to_string(), Y::from("deepwatch")),
        ("app.kubernetes.io/component".to_string(), Y::from("grafana")),
    ];
    labels.push((GRAFANA_SIDECAR_LABEL.0.to_string(), Y::from(GRAFANA_SIDECAR_LABEL.1)));
    ymap! {
        "apiVersion" => "v1", "kind" => "ConfigMap",
        "metadata" => ymap! {
            "name" => DASHBOARDS_CONFIG_MAP,
            "namespace" => ctx.cfg.kubernetes.namespace.as_str(),
            "labels" => Y::Map(labels),
            "annotations" => ymap! { "grafana_folder" => "deepwatch" },
        },
        "data" => Y::Map(data),
    }
}

fn rbac(ctx: &Ctx<'_>) -> Vec<Y> {
    let k = &ctx.cfg.kubernetes;
    let mut out: Vec<Y> = ["agent", "gateway", "analyzer"]
        .iter()
        .map(|c| ymap! { "apiVersion" => "v1", "kind" => "ServiceAccount", "metadata" => meta(ctx, &format!("deepwatch-{c}"), c), "automountServiceAccountToken" => *c == "analyzer" })
        .collect();
    out.push(ymap! {
        "apiVersion" => "rbac.authorization.k8s.io/v1", "kind" => "Role", "metadata" => meta(ctx, "deepwatch-analyzer-scale", "analyzer"),
        "rules" => yseq![
            ymap! { "apiGroups" => yseq!["apps"], "resources" => yseq!["deployments"], "resourceNames" => yseq![k.engine_deployment.as_str()], "verbs" => yseq!["get"] },
            ymap! { "apiGroups" => yseq!["apps"], "resources" => yseq!["deployments/scale"], "resourceNames" => yseq![k.engine_deployment.as_str()], "verbs" => yseq!["get", "patch", "update"] },
            // remediation target "keda": raise the generated ScaledObject's minReplicaCount.
            ymap! { "apiGroups" => yseq!["keda.sh"], "resources" => yseq!["scaledobjects"], "resourceNames" => yseq![SCALED_OBJECT], "verbs" => yseq!["get", "patch"] },
        ],
    });
    out.push(ymap! {
        "apiVersion" => "rbac.authorization.k8s.io/v1", "kind" => "RoleBinding", "metadata" => meta(ctx, "deepwatch-analyzer-scale", "analyzer"),
        "roleRef" => ymap! { "apiGroup" => "rbac.authorization.k8s.io", "kind" => "Role", "name" => "deepwatch-analyzer-scale" },
        "subjects" => yseq![ymap! { "kind" => "ServiceAccount", "name" => "deepwatch-analyzer", "namespace" => k.namespace.as_str() }],
    });
    out
}

/// Prometheus keeps the job names the rules and dashboards select on, whatever the Service.
fn job_relabel(job: &str) -> Y {
    yseq![ymap! { "targetLabel" => "job", "replacement" => job, "action" => "replace" }]
}

fn monitors(ctx: &Ctx<'_>) -> Vec<Y> {
    use crate::prometheus::jobs;
    let interval = crate::promql::dur(ctx.scrape());
    let mut out = Vec::new();
    for (c, job) in [("gateway", jobs::GATEWAY), ("analyzer", jobs::ANALYZER)] {
        out.push(ymap! {
            "apiVersion" => "monitoring.coreos.com/v1", "kind" => "ServiceMonitor", "metadata" => meta(ctx, &format!("deepwatch-{c}"), c),
            "spec" => ymap! { "selector" => selector(c),
                "endpoints" => yseq![ymap! { "port" => "metrics", "path" => "/metrics", "interval" => interval.as_str(), "relabelings" => job_relabel(job) }] },
        });
    }
    out.push(ymap! {
        "apiVersion" => "monitoring.coreos.com/v1", "kind" => "PodMonitor", "metadata" => meta(ctx, "deepwatch-agent", "agent"),
        "spec" => ymap! { "selector" => selector("agent"), "podMetricsEndpoints" => yseq![ymap! {
            "port" => "metrics", "path" => "/metrics", "interval" => interval.as_str(), "relabelings" => job_relabel(jobs::AGENT),
        }] },
    });
    out
}

fn prometheus_rule(ctx: &Ctx<'_>, files: &[RuleFile], links: &Links<'_>) -> Y {
    let mut groups = Vec::new();
    for f in files {
        if let Y::Seq(g) = f.groups_yaml(links) {
            groups.extend(g);
        }
    }
    ymap! {
        "apiVersion" => "monitoring.coreos.com/v1", "kind" => "PrometheusRule", "metadata" => meta(ctx, "deepwatch", "rules"),
        "spec" => ymap! { "groups" => Y::Seq(groups) },
    }
}

/// Name of the generated ScaledObject (the analyzer's `keda` scaling target).
pub const SCALED_OBJECT: &str = "deepwatch-engine";

/// A ratio as a person writes it: 1 - 0.7 is 0.3, not 0.30000000000000004.
fn ratio(v: f64) -> String {
    num((v * 1e6).round() / 1e6)
}

fn scaled_object(ctx: &Ctx<'_>) -> Y {
    let k = &ctx.cfg.kubernetes;
    let kv = sel(&agent::ENGINE_KV_CACHE_USAGE);
    let waiting = sel(&agent::ENGINE_REQUESTS_WAITING);
    let prom = k.prometheus_url.as_str();
    ymap! {
        "apiVersion" => "keda.sh/v1alpha1", "kind" => "ScaledObject", "metadata" => meta(ctx, SCALED_OBJECT, "engine"),
        "spec" => ymap! {
            "scaleTargetRef" => ymap! { "apiVersion" => "apps/v1", "kind" => "Deployment", "name" => k.engine_deployment.as_str() },
            "minReplicaCount" => k.min_replicas, "maxReplicaCount" => k.max_replicas,
            "pollingInterval" => 15, "cooldownPeriod" => 300,
            // KEDA falls back only for AverageValue triggers, which both are.
            "fallback" => ymap! { "failureThreshold" => 3, "replicas" => k.min_replicas },
            "advanced" => ymap! { "horizontalPodAutoscalerConfig" => ymap! { "behavior" => ymap! {
                "scaleUp" => ymap! { "stabilizationWindowSeconds" => 0, "policies" => yseq![ymap! { "type" => "Pods", "value" => 2, "periodSeconds" => 60 }] },
                // Scale in slowly, one replica a minute after the stabilization window, and
                // (Kubernetes 1.33+ with HPAConfigurableTolerance) only once load is below
                // scale_in_below x target.
                "scaleDown" => ymap! {
                    "stabilizationWindowSeconds" => k.scale_in_stabilization_secs,
                    "tolerance" => ratio(1.0 - k.scale_in_below),
                    "policies" => yseq![ymap! { "type" => "Pods", "value" => 1, "periodSeconds" => 60 }],
                },
            } } },
            "triggers" => yseq![
                // Total KV-cache usage over target_load per replica: the replicas that keep
                // each one's cache at target_load.
                ymap! { "type" => "prometheus", "name" => "kv-cache-load", "metricType" => "AverageValue", "metadata" => ymap! {
                    "serverAddress" => prom, "ignoreNullValues" => "false", "threshold" => ratio(k.target_load),
                    "query" => format!("sum({kv})"),
                } },
                ymap! { "type" => "prometheus", "name" => "queue-depth", "metricType" => "AverageValue", "metadata" => ymap! {
                    "serverAddress" => prom, "ignoreNullValues" => "false",
                    // 80 % of a ten-deep queue per replica.
                    "threshold" => ratio(k.target_load * 10.0),
                    "query" => format!("sum({waiting})"),
                } },
            ],
        },
    }
}

/// (file name, multi-document YAML). `config_toml` is the deepwatch.toml the pods run with.
pub fn files(
    ctx: &Ctx<'_>,
    rule_files: &[RuleFile],
    links: &Links<'_>,
    config_toml: &str,
) -> Vec<(String, String)> {
    let docs = |items: Vec<Y>| {
        let header = "# Generated by `deepwatch rules` from deepwatch.toml; do not edit.\n";
        header.to_string() + &items.iter().map(Y::render).collect::<Vec<_>>().join("---\n")
    };
    let config_sha = format!("{:x}", Sha256::digest(config_toml.as_bytes()));
    let ns = ymap! { "apiVersion" => "v1", "kind" => "Namespace", "metadata" => ymap! { "name" => ctx.cfg.kubernetes.namespace.as_str() } };
    let mut base = vec![ns];
    base.extend(rbac(ctx));
    vec![
        ("kubernetes/00-namespace-rbac.yaml".into(), docs(base)),
        ("kubernetes/config.yaml".into(), docs(vec![config_map(ctx, config_toml)])),
        ("kubernetes/agent.yaml".into(), docs(vec![agent_daemonset(ctx, &config_sha)])),
        ("kubernetes/gateway.yaml".into(), docs(gateway(ctx, &config_sha))),
        ("kubernetes/analyzer.yaml".into(), docs(analyzer(ctx, &config_sha))),
        ("kubernetes/monitoring.yaml".into(), docs(monitors(ctx))),
        (
            "kubernetes/prometheusrule.yaml".into(),
            docs(vec![prometheus_rule(ctx, rule_files, links)]),
        ),
        ("kubernetes/keda-scaledobject.yaml".into(), docs(vec![scaled_object(ctx)])),
        ("kubernetes/grafana-dashboards.yaml".into(), docs(vec![dashboards_config_map(ctx)])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_read_as_written() {
        assert_eq!(ratio(1.0 - 0.7), "0.3");
        assert_eq!(ratio(0.8 * 10.0), "8");
        assert_eq!(ratio(1.0 - 0.85), "0.15");
    }
}
