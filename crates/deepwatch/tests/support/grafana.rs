//! Runs Grafana dashboard panels the way Grafana would, without Grafana: every panel target's
//! expression gets its dashboard variables (`$model`, `$model_version`, `$instance`, resolved
//! with their own `label_values(...)` queries against the live Prometheus, all values selected,
//! formatted as Grafana formats multi-value regex variables) and the built-ins
//! (`$__rate_interval`, `$__interval`, `$__range`) replaced by concrete values, then is run as
//! a range query over the test's time range.

use serde_json::Value;
use std::collections::BTreeMap;

/// One panel target.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

/// Every target of every panel (rows included) of a dashboard.
pub fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let title = dashboard["title"].as_str().unwrap_or("?").to_string();
    let mut out = Vec::new();
    fn walk(panels: &[Value], title: &str, out: &mut Vec<PanelQuery>) {
        for p in panels {
            if let Some(nested) = p["panels"].as_array() {
                walk(nested, title, out);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(PanelQuery {
                        dashboard: title.to_string(),
                        panel: p["title"].as_str().unwrap_or("?").to_string(),
                        ref_id: t["refId"].as_str().unwrap_or("?").to_string(),
                        expr: expr.to_string(),
                    });
                }
            }
        }
    }
    walk(dashboard["panels"].as_array().map(Vec::as_slice).unwrap_or(&[]), &title, &mut out);
    out
}

/// Concrete values of Grafana's built-in variables for a time range.
#[derive(Debug, Clone)]
pub struct Builtins {
    /// Datasource `timeInterval` (the scrape interval), seconds.
    pub scrape_secs: u64,
    /// Panel `$__interval`, seconds.
    pub interval_secs: u64,
    /// Dashboard time range, seconds.
    pub range_secs: u64,
}

impl Builtins {
    fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            // Grafana: max($__interval + scrape interval, 4 * scrape interval).
            "__rate_interval" => {
                format!("{}s", (self.interval_secs + self.scrape_secs).max(4 * self.scrape_secs))
            }
            "__interval" => format!("{}s", self.interval_secs),
            "__interval_ms" => (self.interval_secs * 1000).to_string(),
            "__range" => format!("{}s", self.range_secs),
            "__range_s" => self.range_secs.to_string(),
            "__range_ms" => (self.range_secs * 1000).to_string(),
            _ => return None,
        })
    }
}

/// Replaces `$name` and `${name}` (longest identifier) with `vars` or the built-ins. Unknown
/// variables are an error naming them.
pub fn expand(
    expr: &str,
    vars: &BTreeMap<String, String>,
    builtins: &Builtins,
) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len());
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let braced = chars.get(i + 1) == Some(&'{');
        let start = if braced { i + 2 } else { i + 1 };
        let mut end = start;
        while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
            end += 1;
        }
        let name: String = chars[start..end].iter().collect();
        if name.is_empty() {
            out.push('$');
            i += 1;
            continue;
        }
        let value = vars
            .get(&name)
            .cloned()
            .or_else(|| builtins.value(&name))
            .ok_or_else(|| format!("unknown variable ${name} in {expr}"))?;
        out.push_str(&value);
        i = end;
        if braced {
            if chars.get(i) != Some(&'}') {
                return Err(format!("unsupported ${{{name}...}} form in {expr}"));
            }
            i += 1;
        }
    }
    Ok(out)
}

/// Grafana's formatting of a multi-value variable used in a regex matcher: each value
/// regex-escaped, several values as `(a|b)`.
pub fn regex_value(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            let mut s = String::new();
            for c in v.chars() {
                if "\\^$.|?*+()[]{}".contains(c) {
                    s.push_str("\\\\");
                }
                s.push(c);
            }
            s
        })
        .collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// `label_values(selector, label)` or `label_values(label)` split into its parts.
pub fn parse_label_values(query: &str) -> Option<(Option<String>, String)> {
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((selector, label)) => {
            Some((Some(selector.trim().to_string()), label.trim().to_string()))
        }
        None => Some((None, inner.trim().to_string())),
    }
}

/// A Prometheus HTTP API client for the checks.
pub struct Prom {
    pub url: String,
    http: reqwest::Client,
}

impl Prom {
    pub fn new(url: &str) -> Prom {
        Prom { url: url.trim_end_matches('/').to_string(), http: deepwatch_testkit::http_client() }
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let resp: Value = self
            .http
            .get(format!("{}{path}", self.url))
            .query(params)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if resp["status"] != "success" {
            return Err(format!("{path} {params:?}: {resp}"));
        }
        Ok(resp["data"].clone())
    }

    /// Prometheus's own clock, Unix seconds.
    pub async fn now(&self) -> f64 {
        let data = self.get("/api/v1/query", &[("query", "time()".into())]).await.expect("time()");
        data["result"][0]
            .as_f64()
            .or_else(|| data["result"][1].as_str()?.parse().ok())
            .expect("time")
    }

    pub async fn instant(&self, query: &str) -> Vec<Value> {
        let data = self.get("/api/v1/query", &[("query", query.to_string())]).await.expect("query");
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// `data.result` of a range query.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: u64,
    ) -> Result<Vec<Value>, String> {
        let data = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", query.to_string()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{step}s")),
                ],
            )
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Values of `label` on series matching `selector` within the range.
    pub async fn label_values(
        &self,
        selector: Option<&str>,
        label: &str,
        start: f64,
        end: f64,
    ) -> Result<Vec<String>, String> {
        let mut params = vec![("start", format!("{start:.3}")), ("end", format!("{end:.3}"))];
        if let Some(s) = selector {
            params.push(("match[]", s.to_string()));
        }
        let data = self.get(&format!("/api/v1/label/{label}/values"), &params).await?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect())
    }

    /// `GET /api/v1/alerts`: the alerts Prometheus holds (pending and firing).
    pub async fn alerts(&self) -> Vec<Value> {
        let data = self.get("/api/v1/alerts", &[]).await.expect("alerts");
        data["alerts"].as_array().cloned().unwrap_or_default()
    }
}

/// Resolves a dashboard's query variables in order (later ones may use earlier ones), all
/// values selected. A variable whose query finds no value is an error naming it.
pub async fn resolve_variables(
    dashboard: &Value,
    prom: &Prom,
    start: f64,
    end: f64,
    builtins: &Builtins,
) -> Result<BTreeMap<String, String>, String> {
    let title = dashboard["title"].as_str().unwrap_or("?");
    let mut vars = BTreeMap::new();
    for v in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        if v["type"] != "query" {
            continue;
        }
        let query =
            v["query"]["query"].as_str().or_else(|| v["query"].as_str()).unwrap_or_default();
        let query = expand(query, &vars, builtins)?;
        let (selector, label) = parse_label_values(&query).ok_or_else(|| {
            format!("dashboard {title:?}: variable ${name}: unsupported query {query}")
        })?;
        let values = prom.label_values(selector.as_deref(), &label, start, end).await?;
        if values.is_empty() {
            return Err(format!("dashboard {title:?}: variable ${name} ({query}) has no values"));
        }
        vars.insert(name, regex_value(&values));
    }
    Ok(vars)
}

/// What a range query returned: series count and finite samples.
pub fn finite_samples(result: &[Value]) -> usize {
    result
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .filter(|p| p[1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(f64::is_finite))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_longest_names_braces_and_builtins() {
        let vars = BTreeMap::from([
            ("model".to_string(), "deepseek-r1".to_string()),
            ("model_version".to_string(), "(v1|v2)".to_string()),
        ]);
        let b = Builtins { scrape_secs: 1, interval_secs: 2, range_secs: 90 };
        let got = expand(
            r#"x{model=~"$model", model_version=~"${model_version}"}[$__rate_interval] + y[$__range]"#,
            &vars,
            &b,
        )
        .unwrap();
        assert_eq!(got, r#"x{model=~"deepseek-r1", model_version=~"(v1|v2)"}[4s] + y[90s]"#);
        assert!(expand("$nope", &vars, &b).unwrap_err().contains("$nope"));
    }

    #[test]
    fn multi_values_are_escaped_like_grafana() {
        assert_eq!(regex_value(&["127.0.0.1:9".into()]), r"127\\.0\\.0\\.1:9");
        assert_eq!(regex_value(&["a".into(), "b".into()]), "(a|b)");
        assert_eq!(
            parse_label_values("label_values(up, instance)"),
            Some((Some("up".into()), "instance".into()))
        );
    }
}
