//! Groups lexed lines into metric families: applies HELP/TYPE/UNIT lines, finds the family each
//! sample belongs to (`_total`, `_bucket`, `_sum`, `_count`, `_created`, ...), checks what the
//! format requires (`le` on buckets, `quantile` on summary samples, one TYPE per family,
//! `# EOF` in OpenMetrics) and reports each failure with its 1-based line number.

use super::lexer::{self, Meta, RawSample};
use super::{Dialect, Family, ParseError, Sample};
use crate::catalog::MetricType;
use std::collections::HashMap;
use std::ops::ControlFlow;

/// The family types of both dialects; several map to one `MetricType`, but they differ in the
/// sample names they own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl Shape {
    /// Type words of both dialects are accepted in both: a mislabelled exposition is still
    /// readable.
    fn from_word(word: &str) -> Option<Shape> {
        Some(match word {
            "counter" => Shape::Counter,
            "gauge" => Shape::Gauge,
            "histogram" => Shape::Histogram,
            "gaugehistogram" => Shape::GaugeHistogram,
            "summary" => Shape::Summary,
            "info" => Shape::Info,
            "stateset" => Shape::StateSet,
            "untyped" | "unknown" => Shape::Unknown,
            _ => return None,
        })
    }

    fn kind(self) -> MetricType {
        match self {
            Shape::Counter => MetricType::Counter,
            Shape::Gauge | Shape::StateSet => MetricType::Gauge,
            Shape::Histogram | Shape::GaugeHistogram => MetricType::Histogram,
            Shape::Summary => MetricType::Summary,
            Shape::Info => MetricType::Info,
            Shape::Unknown => MetricType::Untyped,
        }
    }

    /// What a sample named `sample` is within a family of this shape named `family`, if it
    /// belongs to it at all.
    fn role(self, family: &str, sample: &str) -> Option<Role> {
        let suffix = sample.strip_prefix(family)?;
        let role = match (self, suffix) {
            (Shape::Histogram | Shape::GaugeHistogram, "") => return None,
            (_, "") => Role::Value,
            (Shape::Counter, "_total") | (Shape::Info, "_info") => Role::Value,
            (Shape::Counter | Shape::Histogram | Shape::Summary, "_created") => Role::Created,
            (Shape::Histogram | Shape::GaugeHistogram, "_bucket") => Role::Bucket,
            (Shape::Histogram | Shape::Summary, "_sum" | "_count") => Role::Value,
            (Shape::GaugeHistogram, "_gsum" | "_gcount") => Role::Value,
            _ => return None,
        };
        // A summary's own name carries quantiles.
        if self == Shape::Summary && suffix.is_empty() {
            return Some(Role::Quantile);
        }
        Some(role)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Value,
    Bucket,
    Quantile,
    /// OpenMetrics creation timestamp: dropped (see the module doc).
    Created,
}

/// Suffixes after which the rest of a sample name may be a family name.
const SUFFIXES: &[&str] =
    &["_total", "_bucket", "_sum", "_count", "_created", "_info", "_gsum", "_gcount"];

#[derive(Debug, Clone, Copy)]
struct FamilyState {
    shape: Shape,
    /// A TYPE line was seen (as opposed to a family opened by HELP or by a bare sample).
    typed: bool,
}

/// Where a sample goes.
enum Target {
    /// A family, the sample's role in it, and the corrected sample name when the exposition
    /// wrote the family's colons as underscores.
    Existing(usize, Role, Option<String>),
    New,
}

/// The sample name `sample` would have if its family's colons had not been turned into
/// underscores, as `prometheus_client` (≥ 0.22, prometheus/client_python#1177) does on
/// OpenMetrics sample lines: `# TYPE vllm:prompt_tokens counter` then `vllm_prompt_tokens_total`.
fn uncolon(family: &str, sample: &str) -> Option<String> {
    let (f, s) = (family.as_bytes(), sample.as_bytes());
    if !f.contains(&b':') || s.len() < f.len() {
        return None;
    }
    let same = f.iter().zip(s).all(|(&a, &b)| a == b || (a == b':' && b == b'_'));
    same.then(|| format!("{family}{}", &sample[family.len()..]))
}

pub(super) struct Builder {
    dialect: Dialect,
    families: Vec<Family>,
    states: Vec<FamilyState>,
    index: HashMap<String, usize>,
    /// The family whose lines we are in; OpenMetrics requires a family's lines to be together.
    current: Option<usize>,
    eof_seen: bool,
}

impl Builder {
    fn new(dialect: Dialect) -> Self {
        Builder {
            dialect,
            families: Vec::new(),
            states: Vec::new(),
            index: HashMap::new(),
            current: None,
            eof_seen: false,
        }
    }

    fn open(&mut self, name: &str, shape: Shape, typed: bool) -> usize {
        let i = self.families.len();
        self.families.push(Family {
            name: name.to_owned(),
            help: None,
            kind: shape.kind(),
            unit: None,
            samples: Vec::new(),
        });
        self.states.push(FamilyState { shape, typed });
        self.index.insert(name.to_owned(), i);
        self.current = Some(i);
        i
    }

    /// One line (without its line ending). Errors leave the builder as it was.
    fn line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim_start_matches([' ', '\t']);
        if self.eof_seen {
            if line.is_empty() {
                return Ok(());
            }
            return Err("text after # EOF".into());
        }
        if line.is_empty() {
            return Ok(());
        }
        if line.starts_with('#') {
            return match lexer::lex_meta(line, self.dialect)? {
                Meta::Help { name, text } => self.help(name, text),
                Meta::Type { name, word } => self.type_line(name, word),
                Meta::Unit { name, unit } => self.unit(name, unit),
                Meta::Eof => {
                    self.eof_seen = true;
                    Ok(())
                }
                Meta::Comment => Ok(()),
            };
        }
        let sample = lexer::lex_sample(line, self.dialect)?;
        self.sample(sample)
    }

    /// The existing family a metadata line names, checked to be the family we are in.
    fn metadata_target(&self, name: &str, keyword: &str) -> Result<Option<usize>, String> {
        let Some(&i) = self.index.get(name) else { return Ok(None) };
        let has_samples = !self.families[i].samples.is_empty();
        let samples_first =
            has_samples && (keyword == "TYPE" || self.dialect == Dialect::OpenMetrics);
        if self.current != Some(i) && !has_samples {
            return Err(format!("{keyword} line for {name} is separated from its family"));
        }
        if samples_first || self.current != Some(i) {
            return Err(format!("{keyword} line for {name} after its samples"));
        }
        Ok(Some(i))
    }

    fn help(&mut self, name: &str, text: String) -> Result<(), String> {
        if let Some(&i) = self.index.get(name) {
            if self.families[i].help.is_some() {
                return Err(format!("second HELP line for {name}"));
            }
        }
        let i = match self.metadata_target(name, "HELP")? {
            Some(i) => i,
            None => self.open(name, Shape::Unknown, false),
        };
        self.families[i].help = Some(text);
        Ok(())
    }

    fn type_line(&mut self, name: &str, word: &str) -> Result<(), String> {
        let Some(shape) = Shape::from_word(word) else {
            return Err(format!("unknown metric type {} for {name}", lexer::quoted(word)));
        };
        if let Some(&i) = self.index.get(name) {
            if self.states[i].typed {
                return Err(format!("second TYPE line for {name}"));
            }
        }
        match self.metadata_target(name, "TYPE")? {
            Some(i) => {
                self.states[i] = FamilyState { shape, typed: true };
                self.families[i].kind = shape.kind();
            }
            None => {
                self.open(name, shape, true);
            }
        }
        Ok(())
    }

    fn unit(&mut self, name: &str, unit: &str) -> Result<(), String> {
        if let Some(&i) = self.index.get(name) {
            if self.families[i].unit.is_some() {
                return Err(format!("second UNIT line for {name}"));
            }
        }
        let unit_is_suffix = name.strip_suffix(unit).is_some_and(|stem| stem.ends_with('_'));
        if !unit.is_empty() && !unit_is_suffix {
            return Err(format!(
                "unit {} is not a suffix of the family name {name}",
                lexer::quoted(unit)
            ));
        }
        let i = match self.metadata_target(name, "UNIT")? {
            Some(i) => i,
            None => self.open(name, Shape::Unknown, false),
        };
        self.families[i].unit = Some(unit.to_owned());
        Ok(())
    }

    fn resolve(&self, sample: &str) -> Result<Target, String> {
        if let Some(i) = self.current {
            let (family, shape) = (&self.families[i].name, self.states[i].shape);
            if let Some(role) = shape.role(family, sample) {
                return Ok(Target::Existing(i, role, None));
            }
            if !self.index.contains_key(sample) {
                if let Some(fixed) = uncolon(family, sample) {
                    if let Some(role) = shape.role(family, &fixed) {
                        return Ok(Target::Existing(i, role, Some(fixed)));
                    }
                }
            }
        }
        if let Some(&i) = self.index.get(sample) {
            return match self.states[i].shape.role(sample, sample) {
                Some(role) => Ok(Target::Existing(i, role, None)),
                None => Err(format!(
                    "sample {sample} does not fit the {} family {sample}",
                    self.families[i].kind.text_004()
                )),
            };
        }
        for suffix in SUFFIXES {
            let Some(stem) = sample.strip_suffix(suffix) else { continue };
            let Some(&i) = self.index.get(stem) else { continue };
            if let Some(role) = self.states[i].shape.role(stem, sample) {
                return Ok(Target::Existing(i, role, None));
            }
        }
        Ok(Target::New)
    }

    fn sample(&mut self, raw: RawSample<'_>) -> Result<(), String> {
        let target = self.resolve(raw.name)?;
        if let Target::Existing(i, role, _) = &target {
            let (i, role) = (*i, *role);
            if self.current != Some(i) && self.dialect == Dialect::OpenMetrics {
                return Err(format!(
                    "sample {} is separated from the other lines of family {}",
                    raw.name, self.families[i].name
                ));
            }
            check_role(&raw, role)?;
            self.current = Some(i);
            if role == Role::Created {
                return Ok(());
            }
        }
        let (i, name) = match target {
            Target::Existing(i, _, fixed) => (i, fixed.unwrap_or_else(|| raw.name.to_owned())),
            Target::New => (self.open(raw.name, Shape::Unknown, false), raw.name.to_owned()),
        };
        self.families[i].samples.push(Sample {
            name,
            labels: raw.labels,
            value: raw.value,
            timestamp_ms: raw.timestamp_ms,
        });
        Ok(())
    }

    /// Drops the separate `<name>_created` gauge families that Python clients write next to
    /// counters, histograms and summaries in the 0.0.4 format, so that both dialects of one
    /// exposition give the same families.
    fn finish(self) -> Vec<Family> {
        let Builder { families, states, index, .. } = self;
        let is_companion = |family: &Family, state: &FamilyState| -> bool {
            let Some(stem) = family.name.strip_suffix("_created") else { return false };
            if !matches!(state.shape, Shape::Gauge | Shape::Unknown) {
                return false;
            }
            let shape_of = |name: &str| index.get(name).map(|&i| states[i].shape);
            let counter = shape_of(&format!("{stem}_total")) == Some(Shape::Counter);
            counter
                || matches!(
                    shape_of(stem),
                    Some(Shape::Counter | Shape::Histogram | Shape::Summary)
                )
        };
        let keep: Vec<bool> =
            families.iter().zip(&states).map(|(f, s)| !is_companion(f, s)).collect();
        families.into_iter().zip(keep).filter_map(|(f, keep)| keep.then_some(f)).collect()
    }
}

fn check_role(raw: &RawSample<'_>, role: Role) -> Result<(), String> {
    let label = match role {
        Role::Bucket => "le",
        Role::Quantile => "quantile",
        Role::Value | Role::Created => return Ok(()),
    };
    let Some((_, value)) = raw.labels.iter().find(|(k, _)| k == label) else {
        return Err(format!("sample {} has no {label} label", raw.name));
    };
    if lexer::parse_float(value).is_none() {
        return Err(format!("invalid {label} {} for sample {}", lexer::quoted(value), raw.name));
    }
    Ok(())
}

/// Longest error reason: names are echoed whole, and a fuzzer's names are megabytes long.
const REASON_MAX: usize = 300;

fn bounded(mut reason: String) -> String {
    if reason.len() > REASON_MAX {
        let mut end = REASON_MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("...");
    }
    reason
}

/// Runs the whole text through a builder, handing each error to `on_error`, which decides
/// whether to go on.
pub(super) fn run(
    text: &str,
    dialect: Dialect,
    mut on_error: impl FnMut(ParseError) -> ControlFlow<()>,
) -> Vec<Family> {
    let mut builder = Builder::new(dialect);
    let mut lines = 0;
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        lines = i + 1;
        if let Err(reason) = builder.line(line) {
            if on_error(ParseError { line: i + 1, reason: bounded(reason) }).is_break() {
                return Vec::new();
            }
        }
    }
    if text.is_empty() || text.ends_with('\n') {
        lines -= 1;
    }
    if dialect == Dialect::OpenMetrics && !builder.eof_seen {
        let reason = "missing # EOF at the end of OpenMetrics text".to_owned();
        if on_error(ParseError { line: lines + 1, reason }).is_break() {
            return Vec::new();
        }
    }
    builder.finish()
}
