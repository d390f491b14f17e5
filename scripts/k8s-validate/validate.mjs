// Validates prometheus-operator and KEDA resources against the schemas the
// @kubernetes-models packages generate from those projects' Go API types (npm, pinned in
// package.json). Reads a JSON array of {"origin", "doc"} on stdin; prints one line per problem
// and exits 1 if there was any. Called by scripts/validate-k8s.py.
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";

const MODELS = {
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
};

const items = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const { origin, doc } of items) {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const Model = MODELS[key];
  if (!Model) {
    console.log(`${origin}: no schema for ${key}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`${origin}: ok`);
  } catch (e) {
    console.log(`${origin}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
