//! Parser for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text, used to
//! read inference engines' `/metrics`. Errors carry the 1-based line number.
//!
//! (The parser itself is being written; see `parse`.)

use crate::catalog::MetricType;

/// One parsed metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Family name (for OpenMetrics counters, without `_total`).
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    pub unit: Option<String>,
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Full sample name (`x_bucket`, `x_total`, ...).
    pub name: String,
    /// Labels in the order they appeared.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds since the epoch, when the line carried a timestamp.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A parse failure at a line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Which dialect to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Text004,
    OpenMetrics,
}

impl Dialect {
    /// From a response's Content-Type header.
    pub fn from_content_type(content_type: Option<&str>) -> Dialect {
        match content_type {
            Some(ct) if ct.contains("application/openmetrics-text") => Dialect::OpenMetrics,
            _ => Dialect::Text004,
        }
    }
}

/// Parses a whole exposition.
pub fn parse(_text: &str, _dialect: Dialect) -> Result<Vec<Family>, ParseError> {
    Err(ParseError { line: 0, reason: "parser not written yet".into() })
}
