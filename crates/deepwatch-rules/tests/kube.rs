//! Kubernetes manifests: the fields the spec asks for, the PrometheusRule embeds every generated
//! rule group, and every document passes the Kubernetes, prometheus-operator and KEDA schemas
//! offline (no cluster here; scripts/validate-k8s.py).

use deepwatch_core::config::rules::RulesConfig;
use deepwatch_core::config::Config;
use deepwatch_rules::{generate, generate_with_config, Options};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn docs(files: &std::collections::BTreeMap<String, String>, name: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(&files[name]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn manifests_carry_keda_bounds_rbac_and_rules() {
    let cfg = RulesConfig::default();
    let out = generate(&cfg, Options::default()).unwrap();
    let keda = &docs(&out.files, "kubernetes/keda-scaledobject.yaml")[0];
    assert_eq!(keda["kind"], "ScaledObject");
    assert_eq!(keda["spec"]["minReplicaCount"], 3);
    assert_eq!(keda["spec"]["maxReplicaCount"], 10);
    assert_eq!(keda["spec"]["fallback"]["replicas"], 3);
    let triggers = keda["spec"]["triggers"].as_array().unwrap();
    assert!(triggers.iter().all(|t| t["metricType"] == "AverageValue"), "KEDA's fallback needs it");
    assert_eq!(triggers[0]["metadata"]["threshold"], "0.8");
    assert!(triggers.iter().any(|t| t["name"] == "queue-depth"));
    let down = &keda["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"];
    assert_eq!(down["stabilizationWindowSeconds"], 300);

    let rbac = docs(&out.files, "kubernetes/00-namespace-rbac.yaml");
    let role = rbac.iter().find(|d| d["kind"] == "Role").unwrap();
    for rule in role["rules"].as_array().unwrap() {
        let allowed = if rule["apiGroups"][0] == "keda.sh" {
            deepwatch_rules::kube::SCALED_OBJECT
        } else {
            cfg.kubernetes.engine_deployment.as_str()
        };
        assert_eq!(rule["resourceNames"], serde_json::json!([allowed]), "RBAC names one object");
        assert!(rule["verbs"].as_array().unwrap().iter().all(|v| v != "delete" && v != "*"));
    }
    assert_eq!(docs(&out.files, "kubernetes/agent.yaml")[0]["kind"], "DaemonSet");
    let monitors = docs(&out.files, "kubernetes/monitoring.yaml");
    assert!(monitors.iter().any(|d| d["kind"] == "PodMonitor"));
    assert_eq!(monitors.iter().filter(|d| d["kind"] == "ServiceMonitor").count(), 2);

    let rule = &docs(&out.files, "kubernetes/prometheusrule.yaml")[0];
    let embedded = rule["spec"]["groups"].as_array().unwrap().len();
    let rule_files: Vec<&String> =
        out.files.keys().filter(|k| k.starts_with("prometheus/rules/")).collect();
    assert!(rule_files.len() >= 8, "{rule_files:?}");
    let in_files: usize = rule_files
        .iter()
        .map(|f| {
            let v: Value = serde_saphyr::from_str(&out.files[*f]).unwrap();
            v["groups"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(embedded, in_files);
}

/// The dashboards ConfigMap carries the Grafana sidecar's label and every dashboard, as the
/// same JSON the provisioning files hold.
#[test]
fn dashboards_config_map_carries_the_sidecar_label_and_every_dashboard() {
    let cfg = RulesConfig::default();
    let ctx = deepwatch_rules::Ctx { cfg: &cfg, opts: Options::default() };
    let out = generate(&cfg, Options::default()).unwrap();
    let cm = &docs(&out.files, "kubernetes/grafana-dashboards.yaml")[0];
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], deepwatch_rules::kube::DASHBOARDS_CONFIG_MAP);
    assert_eq!(cm["metadata"]["namespace"], cfg.kubernetes.namespace.as_str());
    let (label, value) = deepwatch_rules::kube::GRAFANA_SIDECAR_LABEL;
    assert_eq!(
        cm["metadata"]["labels"][label], value,
        "the sidecar label must be the string \"1\""
    );
    let data = cm["data"].as_object().unwrap();
    let dashboards = deepwatch_rules::grafana::dashboards(&ctx);
    assert_eq!(data.len(), dashboards.len());
    for (name, dash) in dashboards {
        let text = data[&format!("deepwatch-{name}.json")].as_str().unwrap();
        let parsed: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parsed, dash, "{name}");
        let provisioned: Value =
            serde_json::from_str(&out.files[&format!("grafana/dashboards/{name}.json")]).unwrap();
        assert_eq!(parsed["uid"], provisioned["uid"]);
    }
    let size: usize = data.values().map(|v| v.as_str().unwrap().len()).sum();
    assert!(size < 256 * 1024, "{size} bytes: too big for kubectl apply's annotation");
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv python of scripts/python-env.sh and the npm packages of scripts/node-env.sh; the
/// suite (scripts/test.sh) installs both before the tests, so a failure here is a failure.
fn validator() -> Command {
    let env = Command::new("bash").arg(repo_root().join("scripts/python-env.sh")).output().unwrap();
    assert!(env.status.success(), "python-env.sh: {}", String::from_utf8_lossy(&env.stderr));
    let python = String::from_utf8_lossy(&env.stdout).lines().last().unwrap().trim().to_string();
    let node = Command::new("bash").arg(repo_root().join("scripts/node-env.sh")).output().unwrap();
    assert!(node.status.success(), "node-env.sh: {}", String::from_utf8_lossy(&node.stderr));
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("scripts/validate-k8s.py"));
    cmd
}

fn validate(dir: &Path) -> (bool, String) {
    let out = validator().arg(dir).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Every generated manifest, for the default spec and a changed one, passes the Kubernetes
/// 1.33 schemas (strict: unknown fields fail) and the prometheus-operator and KEDA schemas.
#[test]
fn generated_manifests_pass_the_kubernetes_prometheus_operator_and_keda_schemas() {
    let mut changed = Config::default();
    let k = &mut changed.rules.kubernetes;
    k.namespace = "llm-ops".into();
    k.image = "registry.example.com/deepwatch:0.1.0".into();
    k.bind_address = "::".into();
    k.scale_in_below = 0.85;
    k.target_load = 0.65;
    changed.validate().unwrap();
    for (name, cfg) in [("default", Config::default()), ("changed", changed)] {
        let dir = tempfile::tempdir().unwrap();
        let text = toml::to_string(&cfg).unwrap();
        generate_with_config(&cfg.rules, &text, Options::default())
            .unwrap()
            .write_to(dir.path())
            .unwrap();
        let (ok, report) = validate(&dir.path().join("kubernetes"));
        assert!(ok, "{name}: generated manifests fail their schemas:\n{report}");
        assert_eq!(report.matches(": ok").count(), 18, "{name}: every document checked\n{report}");
    }
}

/// The validator is no rubber stamp: a container field that does not exist, a Go duration
/// prometheus-operator rejects and a number where KEDA wants a string all fail, each named.
#[test]
fn the_schema_validator_rejects_what_a_cluster_would() {
    let cfg = RulesConfig::default();
    let out = generate(&cfg, Options::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = [
        (
            "kubernetes/gateway.yaml",
            "imagePullPolicy: IfNotPresent",
            "imagePullPolicy: IfNotPresent\n        restartAlways: true",
        ),
        ("kubernetes/monitoring.yaml", "interval: 5s", "interval: 5x"),
        ("kubernetes/keda-scaledobject.yaml", "threshold: \"0.8\"", "threshold: 0.8"),
    ];
    for (file, from, to) in broken {
        let text = &out.files[file];
        assert!(text.contains(from), "{file} has no {from:?}");
        let path = dir.path().join(file.rsplit('/').next().unwrap());
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }
    let (ok, report) = validate(dir.path());
    assert!(!ok, "broken manifests passed:\n{report}");
    for expected in [
        "Deployment/deepwatch-gateway: spec.template.spec.containers.0: Additional properties are not allowed ('restartAlways'",
        "ServiceMonitor/deepwatch-gateway: data/spec/endpoints/0/interval must match pattern",
        "ScaledObject/deepwatch-engine: data/spec/triggers/0/metadata/threshold must be string",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in\n{report}");
    }
}

fn container(doc: &Value) -> &Value {
    &doc["spec"]["template"]["spec"]["containers"][0]
}

/// What issue 14 found missing: pod-friendly binds, every Service port, probes, resources,
/// a non-root read-only container, hostPID with the host's /proc, the ConfigMap, a real image
/// and the tolerance as a person writes it.
#[test]
fn pods_bind_for_scraping_probe_healthz_and_run_unprivileged() {
    let cfg = Config::default();
    let text = "# my deepwatch.toml\n[agent]\nlisten = \"127.0.0.1:9844\"\n";
    let out = generate_with_config(&cfg.rules, text, Options::default()).unwrap();
    let config_map = &docs(&out.files, "kubernetes/config.yaml")[0];
    assert_eq!(config_map["kind"], "ConfigMap");
    assert_eq!(config_map["data"]["deepwatch.toml"], text, "the file as written");

    let agent = &docs(&out.files, "kubernetes/agent.yaml")[0];
    let gateway = docs(&out.files, "kubernetes/gateway.yaml");
    let analyzer = docs(&out.files, "kubernetes/analyzer.yaml");
    let args = |d: &Value| -> Vec<String> {
        container(d)["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    assert!(args(agent).windows(2).any(|w| w == ["--listen", "0.0.0.0:9844"]), "{:?}", args(agent));
    assert!(args(agent).windows(2).any(|w| w == ["--procfs-root", "/host/proc"]));
    assert_eq!(agent["spec"]["template"]["spec"]["hostPID"], true);
    let proc_mount = container(agent)["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/host/proc")
        .unwrap();
    assert_eq!(proc_mount["readOnly"], true);
    assert!(args(&gateway[0]).windows(2).any(|w| w == ["--listen", "0.0.0.0:8080"]));
    assert!(args(&gateway[0]).windows(2).any(|w| w == ["--admin-listen", "0.0.0.0:9845"]));
    assert!(args(&analyzer[0]).windows(2).any(|w| w == ["--listen", "0.0.0.0:9466"]));
    let service_ports: Vec<i64> = gateway[1]["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(service_ports, [8080, 9845], "proxy and admin/metrics");

    for doc in [agent, &gateway[0], &analyzer[0]] {
        let c = container(doc);
        assert_eq!(c["image"], deepwatch_core::config::rules::DEFAULT_IMAGE);
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            assert_eq!(c[probe]["httpGet"]["path"], "/healthz", "{probe}");
            assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{probe}");
        }
        for kind in ["requests", "limits"] {
            assert!(
                c["resources"][kind]["cpu"].is_string()
                    && c["resources"][kind]["memory"].is_string()
            );
        }
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["runAsNonRoot"], true);
        let pod = &doc["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsUser"], 65532);
        let sha = &doc["spec"]["template"]["metadata"]["annotations"]["deepwatch.io/config-sha256"];
        assert_eq!(sha.as_str().unwrap().len(), 64, "a config change rolls the pods");
    }

    let keda = &docs(&out.files, "kubernetes/keda-scaledobject.yaml")[0];
    let down = &keda["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"];
    assert_eq!(down["tolerance"], "0.3");
    assert!(!out.files["kubernetes/keda-scaledobject.yaml"].contains("0000000"));
}
