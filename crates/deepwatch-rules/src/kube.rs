//! Kubernetes manifests: agent DaemonSet, gateway and analyzer Deployments and Services,
//! ServiceMonitor/PodMonitor and PrometheusRule resources (prometheus-operator), a KEDA
//! ScaledObject for the engine (min/max replicas, queue depth and KV-cache load per replica,
//! scale-in hysteresis) and least-privilege RBAC (only the analyzer may scale the engine).

use crate::model::{Links, RuleFile};
use crate::promql::{num, sel};
use crate::yaml::Y;
use crate::{ymap, yseq, Ctx};
use deepwatch_core::catalog::agent;

fn meta(ctx: &Ctx<'_>, name: &str, component: &str) -> Y {
    ymap! {
        "name" => name,
        "namespace" => ctx.cfg.kubernetes.namespace.as_str(),
        "labels" => ymap! { "app.kubernetes.io/name" => "deepwatch", "app.kubernetes.io/component" => component },
    }
}

fn selector(component: &str) -> Y {
    ymap! { "matchLabels" => ymap! { "app.kubernetes.io/name" => "deepwatch", "app.kubernetes.io/component" => component } }
}

fn pod(
    ctx: &Ctx<'_>,
    component: &str,
    args: Vec<&str>,
    port: i64,
    sa: bool,
    extra: Option<(Y, Y)>,
) -> Y {
    let mut container = ymap! {
        "name" => component,
        "image" => ctx.cfg.kubernetes.image.as_str(),
        "args" => args,
        "ports" => yseq![ymap! { "name" => "metrics", "containerPort" => port }],
        "resources" => ymap! { "requests" => ymap! { "cpu" => "100m", "memory" => "128Mi" }, "limits" => ymap! { "memory" => "512Mi" } },
        "securityContext" => ymap! {
            "allowPrivilegeEscalation" => false, "readOnlyRootFilesystem" => true,
            "capabilities" => ymap! { "drop" => yseq!["ALL"] },
        },
    };
    let mut spec = ymap! {
        "serviceAccountName" => format!("deepwatch-{component}"),
        "automountServiceAccountToken" => sa,
        "securityContext" => ymap! { "runAsNonRoot" => true, "runAsUser" => 65532, "seccompProfile" => ymap! { "type" => "RuntimeDefault" } },
    };
    if let Some((mounts, volumes)) = extra {
        container.push("volumeMounts", mounts);
        spec.push("volumes", volumes);
    }
    spec.push("containers", yseq![container]);
    ymap! {
        "metadata" => ymap! {
            "labels" => ymap! { "app.kubernetes.io/name" => "deepwatch", "app.kubernetes.io/component" => component },
            "annotations" => ymap! { "deepwatch.io/scrape" => "true", "deepwatch.io/port" => port.to_string() },
        },
        "spec" => spec,
    }
}

fn service(ctx: &Ctx<'_>, component: &str, port: i64) -> Y {
    ymap! {
        "apiVersion" => "v1", "kind" => "Service", "metadata" => meta(ctx, &format!("deepwatch-{component}"), component),
        "spec" => ymap! {
            "selector" => ymap! { "app.kubernetes.io/name" => "deepwatch", "app.kubernetes.io/component" => component },
            "ports" => yseq![ymap! { "name" => "metrics", "port" => port, "targetPort" => "metrics" }],
        },
    }
}

fn deployment(ctx: &Ctx<'_>, component: &str, replicas: i64, port: i64, sa: bool) -> Y {
    let args = vec![component, "--config", "/etc/deepwatch/deepwatch.toml"];
    let cfg = (
        yseq![ymap! { "name" => "config", "mountPath" => "/etc/deepwatch", "readOnly" => true }],
        yseq![ymap! { "name" => "config", "configMap" => ymap! { "name" => "deepwatch-config" } }],
    );
    ymap! {
        "apiVersion" => "apps/v1", "kind" => "Deployment", "metadata" => meta(ctx, &format!("deepwatch-{component}"), component),
        "spec" => ymap! { "replicas" => replicas, "selector" => selector(component), "template" => pod(ctx, component, args, port, sa, Some(cfg)) },
    }
}

fn agent_daemonset(ctx: &Ctx<'_>) -> Y {
    let mounts = yseq![
        ymap! { "name" => "config", "mountPath" => "/etc/deepwatch", "readOnly" => true },
        ymap! { "name" => "proc", "mountPath" => "/host/proc", "readOnly" => true },
    ];
    let volumes = yseq![
        ymap! { "name" => "config", "configMap" => ymap! { "name" => "deepwatch-config" } },
        ymap! { "name" => "proc", "hostPath" => ymap! { "path" => "/proc" } },
    ];
    let mut template = pod(
        ctx,
        "agent",
        vec!["agent", "--config", "/etc/deepwatch/deepwatch.toml"],
        9844,
        false,
        Some((mounts, volumes)),
    );
    if let Y::Map(entries) = &mut template {
        if let Some((_, Y::Map(spec))) = entries.iter_mut().find(|(k, _)| k == "spec") {
            spec.push(("runtimeClassName".into(), Y::from("nvidia")));
            spec.push(("tolerations".into(), yseq![ymap! { "key" => "nvidia.com/gpu", "operator" => "Exists", "effect" => "NoSchedule" }]));
        }
    }
    ymap! {
        "apiVersion" => "apps/v1", "kind" => "DaemonSet", "metadata" => meta(ctx, "deepwatch-agent", "agent"),
        "spec" => ymap! { "selector" => selector("agent"), "template" => template },
    }
}

fn rbac(ctx: &Ctx<'_>) -> Vec<Y> {
    let mut out: Vec<Y> = ["agent", "gateway", "analyzer"]
        .iter()
        .map(|c| ymap! { "apiVersion" => "v1", "kind" => "ServiceAccount", "metadata" => meta(ctx, &format!("deepwatch-{c}"), c), "automountServiceAccountToken" => *c == "analyzer" })
        .collect();
    out.push(ymap! {
        "apiVersion" => "rbac.authorization.k8s.io/v1", "kind" => "Role", "metadata" => meta(ctx, "deepwatch-analyzer-scale", "analyzer"),
        "rules" => yseq![
            ymap! { "apiGroups" => yseq!["apps"], "resources" => yseq!["deployments"], "resourceNames" => yseq![ctx.cfg.kubernetes.engine_deployment.as_str()], "verbs" => yseq!["get"] },
            ymap! { "apiGroups" => yseq!["apps"], "resources" => yseq!["deployments/scale"], "resourceNames" => yseq![ctx.cfg.kubernetes.engine_deployment.as_str()], "verbs" => yseq!["get", "patch", "update"] },
        ],
    });
    out.push(ymap! {
        "apiVersion" => "rbac.authorization.k8s.io/v1", "kind" => "RoleBinding", "metadata" => meta(ctx, "deepwatch-analyzer-scale", "analyzer"),
        "roleRef" => ymap! { "apiGroup" => "rbac.authorization.k8s.io", "kind" => "Role", "name" => "deepwatch-analyzer-scale" },
        "subjects" => yseq![ymap! { "kind" => "ServiceAccount", "name" => "deepwatch-analyzer", "namespace" => ctx.cfg.kubernetes.namespace.as_str() }],
    });
    out
}

fn monitors(ctx: &Ctx<'_>) -> Vec<Y> {
    let interval = crate::promql::dur(ctx.scrape());
    let mut out = Vec::new();
    for c in ["gateway", "analyzer"] {
        out.push(ymap! {
            "apiVersion" => "monitoring.coreos.com/v1", "kind" => "ServiceMonitor", "metadata" => meta(ctx, &format!("deepwatch-{c}"), c),
            "spec" => ymap! { "jobLabel" => "app.kubernetes.io/component", "selector" => selector(c),
                "endpoints" => yseq![ymap! { "port" => "metrics", "interval" => interval.as_str() }] },
        });
    }
    out.push(ymap! {
        "apiVersion" => "monitoring.coreos.com/v1", "kind" => "PodMonitor", "metadata" => meta(ctx, "deepwatch-agent", "agent"),
        "spec" => ymap! { "selector" => selector("agent"), "podMetricsEndpoints" => yseq![ymap! {
            "port" => "metrics", "interval" => interval.as_str(),
            "relabelings" => yseq![ymap! { "targetLabel" => "job", "replacement" => crate::prometheus::jobs::AGENT }],
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

fn scaled_object(ctx: &Ctx<'_>) -> Y {
    let k = &ctx.cfg.kubernetes;
    let kv = sel(&agent::ENGINE_KV_CACHE_USAGE);
    let waiting = sel(&agent::ENGINE_REQUESTS_WAITING);
    let prom = k.prometheus_url.as_str();
    ymap! {
        "apiVersion" => "keda.sh/v1alpha1", "kind" => "ScaledObject", "metadata" => meta(ctx, "deepwatch-engine", "engine"),
        "spec" => ymap! {
            "scaleTargetRef" => ymap! { "apiVersion" => "apps/v1", "kind" => "Deployment", "name" => k.engine_deployment.as_str() },
            "minReplicaCount" => k.min_replicas, "maxReplicaCount" => k.max_replicas,
            "pollingInterval" => 15, "cooldownPeriod" => 300,
            "fallback" => ymap! { "failureThreshold" => 3, "replicas" => k.min_replicas },
            "advanced" => ymap! { "horizontalPodAutoscalerConfig" => ymap! { "behavior" => ymap! {
                "scaleUp" => ymap! { "stabilizationWindowSeconds" => 0, "policies" => yseq![ymap! { "type" => "Pods", "value" => 2, "periodSeconds" => 60 }] },
                // Scale in slowly, one replica a minute after the stabilization window, and
                // (Kubernetes 1.33+ with HPAConfigurableTolerance) only once load is below
                // scale_in_below x target.
                "scaleDown" => ymap! {
                    "stabilizationWindowSeconds" => k.scale_in_stabilization_secs,
                    "tolerance" => num(1.0 - k.scale_in_below),
                    "policies" => yseq![ymap! { "type" => "Pods", "value" => 1, "periodSeconds" => 60 }],
                },
            } } },
            "triggers" => yseq![
                ymap! { "type" => "prometheus", "name" => "kv-cache-load", "metricType" => "Value", "metadata" => ymap! {
                    "serverAddress" => prom, "ignoreNullValues" => "false", "threshold" => num(k.target_load),
                    "query" => format!("avg({kv})"),
                } },
                ymap! { "type" => "prometheus", "name" => "queue-depth", "metricType" => "AverageValue", "metadata" => ymap! {
                    "serverAddress" => prom, "ignoreNullValues" => "false",
                    // 80 % of a ten-deep queue per replica.
                    "threshold" => num((k.target_load * 10.0 * 1000.0).round() / 1000.0),
                    "query" => format!("sum({waiting})"),
                } },
            ],
        },
    }
}

/// (file name, multi-document YAML)
pub fn files(ctx: &Ctx<'_>, rule_files: &[RuleFile], links: &Links<'_>) -> Vec<(String, String)> {
    let docs = |items: Vec<Y>| {
        let header = "# Generated by `deepwatch rules` from deepwatch.toml; do not edit.\n";
        header.to_string() + &items.iter().map(Y::render).collect::<Vec<_>>().join("---\n")
    };
    let ns = ymap! { "apiVersion" => "v1", "kind" => "Namespace", "metadata" => ymap! { "name" => ctx.cfg.kubernetes.namespace.as_str() } };
    let mut base = vec![ns];
    base.extend(rbac(ctx));
    vec![
        ("kubernetes/00-namespace-rbac.yaml".into(), docs(base)),
        ("kubernetes/agent.yaml".into(), docs(vec![agent_daemonset(ctx)])),
        (
            "kubernetes/gateway.yaml".into(),
            docs(vec![deployment(ctx, "gateway", 2, 9845, false), service(ctx, "gateway", 9845)]),
        ),
        (
            "kubernetes/analyzer.yaml".into(),
            docs(vec![deployment(ctx, "analyzer", 1, 9466, true), service(ctx, "analyzer", 9466)]),
        ),
        ("kubernetes/monitoring.yaml".into(), docs(monitors(ctx))),
        (
            "kubernetes/prometheusrule.yaml".into(),
            docs(vec![prometheus_rule(ctx, rule_files, links)]),
        ),
        ("kubernetes/keda-scaledobject.yaml".into(), docs(vec![scaled_object(ctx)])),
    ]
}
