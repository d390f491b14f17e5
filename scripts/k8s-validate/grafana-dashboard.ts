// The dashboard model deepwatch generates, as @grafana/schema (npm, pinned in package.json)
// types it: `Dashboard` with Prometheus queries in the panels' and annotations' targets.
// @grafana/schema types targets as the data-source-neutral `DataQuery` and ships no Prometheus
// query type, so the Prometheus query fields (Grafana's prometheus data source plugin:
// expr, legendFormat, interval, format, instant, range; annotation titleFormat, tagKeys,
// textFormat) are declared here and nothing else is added. Used by grafana-schema.mjs.
import type { AnnotationQuery, Dashboard, DataQuery, Panel } from "@grafana/schema";

export interface PrometheusQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  interval?: string;
  format?: "time_series" | "table" | "heatmap";
  instant?: boolean;
  range?: boolean;
}

export interface PrometheusAnnotation extends Omit<AnnotationQuery, "target"> {
  target?: PrometheusQuery;
  titleFormat?: string;
  tagKeys?: string;
  textFormat?: string;
}

export interface PrometheusPanel extends Omit<Panel, "targets"> {
  targets?: PrometheusQuery[];
}

export interface DeepwatchDashboard extends Omit<Dashboard, "panels" | "annotations"> {
  panels?: PrometheusPanel[];
  annotations?: { list?: PrometheusAnnotation[] };
}
