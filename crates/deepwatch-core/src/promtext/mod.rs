//! Parser for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text, used to
//! read inference engines' `/metrics` at every scrape. Errors carry the 1-based line number.
//!
//! What the parser decides, so that every consumer sees the same thing:
//! - **Families.** HELP/TYPE/UNIT lines open a family under the name they carry: in 0.0.4 a
//!   counter family is named as exposed (`vllm:prompt_tokens_total`), in OpenMetrics without
//!   `_total` (`vllm:prompt_tokens`); [`Family::is_named`] accepts either spelling. Samples join
//!   the family they belong to by suffix (`_total`, `_bucket`, `_sum`, `_count`, OpenMetrics
//!   `_info`, `_gsum`, `_gcount`), in both dialects, so a 0.0.4 `# TYPE x counter` with `x_total`
//!   samples also works. Samples with no TYPE line form untyped families named after the sample.
//! - **Types.** Both dialects' type words are accepted; `gaugehistogram` reads as a histogram
//!   (samples keep their `_gsum`/`_gcount` names), `stateset` as a gauge, `info` as
//!   [`MetricType::Info`] and `unknown`/`untyped` as [`MetricType::Untyped`].
//! - **`_created` is dropped**: OpenMetrics `<family>_created` samples of counters, histograms
//!   and summaries, and the separate `<name>_created` gauge families Python clients add in
//!   0.0.4 next to such a family. They are creation timestamps, not series; keeping them would
//!   make the two dialects of one exposition differ. A gauge that merely ends in `_created`
//!   (`kube_pod_created`) with no such sibling family is kept.
//! - **Colons repaired**: `prometheus_client` ≥ 0.22 (used by vLLM and SGLang) writes
//!   OpenMetrics sample names with `:` turned into `_` while its HELP/TYPE lines keep them
//!   (prometheus/client_python#1177). A sample right after such a family whose name matches
//!   the family's with underscores for colons joins it under the colon spelling, so both
//!   dialects give `vllm:prompt_tokens_total`.
//! - **Timestamps** are milliseconds: integer milliseconds in 0.0.4, float seconds converted
//!   exactly (decimal text, rounded below a millisecond) in OpenMetrics.
//! - **Exemplars** (` # {trace_id="..."} 0.5 1.7e9` after a sample) are checked and discarded,
//!   in both dialects.
//! - **Tolerated** beyond the letter of the specs, as Prometheus does: blank lines, other
//!   comments, `\r\n` line endings, runs of spaces or tabs between tokens, blanks inside label
//!   sets, `{}` and a trailing comma, unknown escapes in label values (kept as written), values
//!   like `Inf`, `nan`, `1e3`.
//! - **Strict checks**: one HELP, TYPE and UNIT per family; TYPE before the family's samples;
//!   `le` on histogram buckets and `quantile` on summary samples, both numbers; no duplicate
//!   label names; in OpenMetrics a family's lines together, the unit a suffix of the name, and
//!   `# EOF` last with nothing after it. Duplicate series are not detected.

mod lexer;
mod parser;
pub mod payloads;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_families;
#[cfg(test)]
mod tests_fixtures;

use crate::catalog::MetricType;
use std::ops::ControlFlow;

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

impl Family {
    /// Whether this family is the one exposed as `name`, in either dialect: a counter family
    /// answers to its name with and without `_total` (`vllm:prompt_tokens_total` is named
    /// `vllm:prompt_tokens` in OpenMetrics).
    pub fn is_named(&self, name: &str) -> bool {
        if self.name == name {
            return true;
        }
        if self.kind != MetricType::Counter {
            return false;
        }
        name.strip_suffix("_total") == Some(self.name.as_str())
            || self.name.strip_suffix("_total") == Some(name)
    }

    /// Samples with exactly this sample name (`x_bucket`, `x_sum`, ...).
    pub fn samples_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }
}

/// The family exposed as `name` (see [`Family::is_named`]).
pub fn find<'a>(families: &'a [Family], name: &str) -> Option<&'a Family> {
    families.iter().find(|f| f.is_named(name))
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

/// Parses a whole exposition; the first malformed line fails it.
pub fn parse(text: &str, dialect: Dialect) -> Result<Vec<Family>, ParseError> {
    let mut first_error = None;
    let families = parser::run(text, dialect, |error| {
        first_error = Some(error);
        ControlFlow::Break(())
    });
    match first_error {
        Some(error) => Err(error),
        None => Ok(families),
    }
}

/// Parses a whole exposition, skipping malformed lines: returns every sample of the good lines
/// and one error per bad line (a missing OpenMetrics `# EOF` is reported too, without losing
/// anything). A bad HELP/TYPE/UNIT line is skipped like a bad sample line, so the samples after
/// a bad TYPE line land in an untyped family.
pub fn parse_lenient(text: &str, dialect: Dialect) -> (Vec<Family>, Vec<ParseError>) {
    let mut errors = Vec::new();
    let families = parser::run(text, dialect, |error| {
        errors.push(error);
        ControlFlow::Continue(())
    });
    (families, errors)
}
