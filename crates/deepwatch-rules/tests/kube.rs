//! Kubernetes manifests parse as YAML documents with the fields the spec asks for (no cluster
//! here: structure only), and the PrometheusRule embeds every generated rule group.

use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::{generate, Options};
use serde_json::Value;

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
    let triggers = keda["spec"]["triggers"].as_array().unwrap();
    assert_eq!(triggers[0]["metadata"]["threshold"], "0.8");
    assert!(triggers.iter().any(|t| t["name"] == "queue-depth"));
    let down = &keda["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"];
    assert_eq!(down["stabilizationWindowSeconds"], 300);

    let rbac = docs(&out.files, "kubernetes/00-namespace-rbac.yaml");
    let role = rbac.iter().find(|d| d["kind"] == "Role").unwrap();
    for rule in role["rules"].as_array().unwrap() {
        assert_eq!(
            rule["resourceNames"][0], cfg.kubernetes.engine_deployment,
            "RBAC must name the one deployment"
        );
        assert!(rule["verbs"].as_array().unwrap().iter().all(|v| v != "delete" && v != "*"));
    }
    assert_eq!(docs(&out.files, "kubernetes/agent.yaml")[0]["kind"], "DaemonSet");
    let monitors = docs(&out.files, "kubernetes/monitoring.yaml");
    assert!(monitors.iter().any(|d| d["kind"] == "PodMonitor"));
    assert_eq!(monitors.iter().filter(|d| d["kind"] == "ServiceMonitor").count(), 2);

    let rule = &docs(&out.files, "kubernetes/prometheusrule.yaml")[0];
    let embedded = rule["spec"]["groups"].as_array().unwrap().len();
    let in_files: usize = ["recording", "alerts", "slo", "trend"]
        .iter()
        .map(|f| {
            let v: Value =
                serde_saphyr::from_str(&out.files[&format!("prometheus/rules/{f}.yml")]).unwrap();
            v["groups"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(embedded, in_files);
}
