//! Line-level lexing of the text formats: splits one sample line into name, labels, value,
//! timestamp (and a discarded exemplar), and one `#` line into HELP/TYPE/UNIT/EOF or a plain
//! comment. Works on byte offsets of the borrowed line; the only allocations are the label
//! strings of a sample (one per label name and value) and the text of HELP lines.

use super::Dialect;

/// A sample line split into its parts. Label values are already unescaped.
#[derive(Debug)]
pub(super) struct RawSample<'a> {
    pub name: &'a str,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A line starting with `#`.
#[derive(Debug, PartialEq)]
pub(super) enum Meta<'a> {
    Help { name: &'a str, text: String },
    Type { name: &'a str, word: &'a str },
    Unit { name: &'a str, unit: &'a str },
    Eof,
    Comment,
}

/// Longest piece of input echoed back in an error message.
const ECHO_MAX: usize = 40;

/// Quotes a piece of input for an error message, shortened so that a garbage line of several
/// megabytes does not become a several-megabyte error.
pub(super) fn quoted(s: &str) -> String {
    if s.len() <= ECHO_MAX {
        return format!("{s:?}");
    }
    let mut end = ECHO_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &s[..end])
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// Skips spaces and tabs; says whether there were any.
    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Takes bytes up to the next blank or the end of the line.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_blank(b)) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// Takes an identifier whose first byte passes `start` and the rest `rest`.
    fn ident(&mut self, start: fn(u8) -> bool, rest: fn(u8) -> bool) -> Option<&'a str> {
        let begin = self.pos;
        if !self.peek().is_some_and(start) {
            return None;
        }
        self.pos += 1;
        while self.peek().is_some_and(rest) {
            self.pos += 1;
        }
        Some(&self.text[begin..self.pos])
    }

    fn metric_name(&mut self) -> Option<&'a str> {
        self.ident(is_name_start, is_name_char)
    }

    fn label_name(&mut self) -> Option<&'a str> {
        self.ident(is_label_start, is_label_char)
    }

    /// Reads a label value after its opening quote, through the closing quote. Escapes `\\`,
    /// `\"` and `\n` are decoded; any other backslash is kept as written, as Prometheus does.
    fn label_value(&mut self) -> Option<String> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut i = start;
        // Fast path: no escapes, one copy of the slice.
        while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\\' {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'"' {
            self.pos = i + 1;
            return Some(self.text[start..i].to_owned());
        }
        let mut out = String::with_capacity(i - start + 16);
        let mut run = start;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    out.push_str(&self.text[run..i]);
                    self.pos = i + 1;
                    return Some(out);
                }
                b'\\' => {
                    out.push_str(&self.text[run..i]);
                    let decoded = match bytes.get(i + 1) {
                        None => return None,
                        Some(b'\\') => '\\',
                        Some(b'"') => '"',
                        Some(b'n') => '\n',
                        Some(_) => {
                            // Unknown escape: keep the backslash, read the next char normally.
                            out.push('\\');
                            i += 1;
                            run = i;
                            continue;
                        }
                    };
                    out.push(decoded);
                    i += 2;
                    run = i;
                }
                _ => i += 1,
            }
        }
        None
    }
}

/// Parses a sample value: decimal and scientific notation, `NaN`, `+Inf`, `-Inf`, `Inf`
/// (case-insensitive, as Go's `ParseFloat` reads them).
pub(super) fn parse_float(token: &str) -> Option<f64> {
    token.parse::<f64>().ok()
}

/// Parses a timestamp into milliseconds since the epoch: integer milliseconds in 0.0.4, float
/// seconds in OpenMetrics (decimal text is converted exactly, rounding below a millisecond).
pub(super) fn parse_timestamp(token: &str, dialect: Dialect) -> Option<i64> {
    match dialect {
        Dialect::Text004 => token.parse::<i64>().ok(),
        Dialect::OpenMetrics => seconds_to_ms(token),
    }
}

fn seconds_to_ms(token: &str) -> Option<i64> {
    let (negative, unsigned) = match token.as_bytes().first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    };
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let plain_decimal = !(int_part.is_empty() && frac_part.is_empty())
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && frac_part.bytes().all(|b| b.is_ascii_digit());
    if !plain_decimal {
        // Exponent forms (`1.7e9`): go through f64.
        let seconds: f64 = token.parse().ok()?;
        let ms = (seconds * 1000.0).round();
        if !ms.is_finite() || ms < i64::MIN as f64 || ms >= i64::MAX as f64 {
            return None;
        }
        return Some(ms as i64);
    }
    let mut ms: i128 = 0;
    for b in int_part.bytes() {
        ms = ms.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    ms = ms.checked_mul(1000)?;
    let frac = frac_part.as_bytes();
    let mut scale = 100;
    for &b in frac.iter().take(3) {
        ms += i128::from(b - b'0') * scale;
        scale /= 10;
    }
    if frac.get(3).is_some_and(|&b| b >= b'5') {
        ms += 1;
    }
    if negative {
        ms = -ms;
    }
    i64::try_from(ms).ok()
}

/// Lexes one sample line (leading blanks already removed).
pub(super) fn lex_sample(line: &str, dialect: Dialect) -> Result<RawSample<'_>, String> {
    let mut c = Cursor::new(line);
    let Some(name) = c.metric_name() else {
        return Err(format!("expected a metric name, found {}", quoted(line)));
    };
    let mut blank = c.skip_blanks();
    let mut labels = Vec::new();
    if c.peek() == Some(b'{') {
        c.pos += 1;
        lex_labels(&mut c, name, &mut labels)?;
        blank = c.skip_blanks();
    } else if !blank && !c.at_end() {
        let found = c.rest().chars().next().unwrap_or(' ');
        return Err(format!("invalid character {found:?} after metric name {name}"));
    }
    if c.at_end() {
        return Err(format!("missing value for sample {name}"));
    }
    if !blank {
        return Err(format!("expected a space before the value of sample {name}"));
    }
    let value_token = c.token();
    let Some(value) = parse_float(value_token) else {
        return Err(format!("invalid value {} for sample {name}", quoted(value_token)));
    };
    c.skip_blanks();
    let mut timestamp_ms = None;
    if !c.at_end() && c.peek() != Some(b'#') {
        let ts_token = c.token();
        let Some(ts) = parse_timestamp(ts_token, dialect) else {
            return Err(format!("invalid timestamp {} for sample {name}", quoted(ts_token)));
        };
        timestamp_ms = Some(ts);
        c.skip_blanks();
    }
    if c.peek() == Some(b'#') {
        c.pos += 1;
        lex_exemplar(&mut c).map_err(|why| format!("invalid exemplar for sample {name}: {why}"))?;
    }
    if !c.at_end() {
        return Err(format!("unexpected text {} after sample {name}", quoted(c.rest())));
    }
    Ok(RawSample { name, labels, value, timestamp_ms })
}

/// Lexes a label set after its `{`, through the closing `}`. Blanks around names, `=` and
/// commas, an empty set and a trailing comma are accepted, as Prometheus does.
fn lex_labels(
    c: &mut Cursor<'_>,
    sample: &str,
    labels: &mut Vec<(String, String)>,
) -> Result<(), String> {
    loop {
        c.skip_blanks();
        match c.peek() {
            None => return Err(format!("unterminated label set of {sample}")),
            Some(b'}') => {
                c.pos += 1;
                return Ok(());
            }
            Some(_) => {}
        }
        let Some(label) = c.label_name() else {
            return Err(format!("invalid label name at {} in {sample}", quoted(c.rest())));
        };
        c.skip_blanks();
        if c.peek() != Some(b'=') {
            return Err(format!("expected '=' after label name {label} in {sample}"));
        }
        c.pos += 1;
        c.skip_blanks();
        if c.peek() != Some(b'"') {
            return Err(format!("expected '\"' to open the value of label {label} in {sample}"));
        }
        c.pos += 1;
        let Some(value) = c.label_value() else {
            return Err(format!("unterminated label value of label {label} in {sample}"));
        };
        if labels.iter().any(|(k, _)| k == label) {
            return Err(format!("duplicate label {label} in {sample}"));
        }
        labels.push((label.to_owned(), value));
        c.skip_blanks();
        match c.peek() {
            Some(b',') => c.pos += 1,
            Some(b'}') => {
                c.pos += 1;
                return Ok(());
            }
            None => return Err(format!("unterminated label set of {sample}")),
            Some(_) => {
                return Err(format!(
                    "expected ',' or '}}' after the value of label {label} in {sample}, found {}",
                    quoted(c.rest())
                ))
            }
        }
    }
}

/// Checks an OpenMetrics exemplar (` # {labels} value [timestamp]`) after its `#`; it is then
/// discarded.
fn lex_exemplar(c: &mut Cursor<'_>) -> Result<(), String> {
    if !c.skip_blanks() || c.peek() != Some(b'{') {
        return Err("expected '{' after '#'".into());
    }
    c.pos += 1;
    let mut labels = Vec::new();
    lex_labels(c, "exemplar", &mut labels)?;
    c.skip_blanks();
    let value = c.token();
    if parse_float(value).is_none() {
        return Err(format!("invalid value {}", quoted(value)));
    }
    c.skip_blanks();
    if !c.at_end() {
        let ts = c.token();
        if seconds_to_ms(ts).is_none() {
            return Err(format!("invalid timestamp {}", quoted(ts)));
        }
        c.skip_blanks();
    }
    Ok(())
}

/// Lexes a line that starts with `#` (leading blanks already removed).
pub(super) fn lex_meta(line: &str, dialect: Dialect) -> Result<Meta<'_>, String> {
    let mut c = Cursor::new(&line[1..]);
    if !c.skip_blanks() {
        return Ok(Meta::Comment);
    }
    let keyword = c.token();
    let open_metrics = dialect == Dialect::OpenMetrics;
    match keyword {
        "HELP" | "TYPE" => {}
        "UNIT" if open_metrics => {}
        "EOF" if open_metrics => {
            c.skip_blanks();
            return Ok(if c.at_end() { Meta::Eof } else { Meta::Comment });
        }
        _ => return Ok(Meta::Comment),
    }
    c.skip_blanks();
    if c.at_end() {
        return Err(format!("{keyword} line without a metric name"));
    }
    let name_start = c.pos;
    let name = match c.metric_name() {
        Some(name) if c.at_end() || c.peek().is_some_and(is_blank) => name,
        _ => {
            c.pos = name_start;
            let token = c.token();
            return Err(format!("invalid metric name {} in {keyword} line", quoted(token)));
        }
    };
    if keyword == "HELP" {
        // Exactly one separator: leading blanks of the text belong to it.
        let text = if c.at_end() { "" } else { &c.rest()[1..] };
        return Ok(Meta::Help { name, text: unescape_help(text, dialect) });
    }
    c.skip_blanks();
    let word = c.token();
    c.skip_blanks();
    if !c.at_end() {
        return Err(format!(
            "unexpected text {} after {keyword} line for {name}",
            quoted(c.rest())
        ));
    }
    if keyword == "TYPE" {
        if word.is_empty() {
            return Err(format!("missing type in TYPE line for {name}"));
        }
        return Ok(Meta::Type { name, word });
    }
    Ok(Meta::Unit { name, unit: word })
}

/// Decodes HELP text: `\\` and `\n` in both dialects, `\"` in OpenMetrics; other backslashes
/// stay as written.
fn unescape_help(text: &str, dialect: Dialect) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        let mut lookahead = chars.clone();
        match lookahead.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if dialect == Dialect::OpenMetrics => out.push('"'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars = lookahead;
    }
    out
}
