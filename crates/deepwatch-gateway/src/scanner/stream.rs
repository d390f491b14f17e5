//! Incremental scanning of streamed output. Generated text arrives a token at a time, so a
//! value can straddle chunks (`user@exa` + `mple.com`). Each (choice, field) keeps the tail that
//! could still grow into a match; text before it is final and is scanned once. In redact and
//! block modes only final text is forwarded, so a value is never sent before it was checked;
//! the tail is flushed when the choice finishes or the stream ends.

use super::detect::{Detectors, Kind, Match};
use super::redact;
use crate::sse::TextField;
use std::collections::HashMap;

/// Longest tail held back; a longer unbroken run is released (and scanned) anyway.
const MAX_HOLDBACK: usize = 256;

/// Result of feeding text: the text that may be forwarded now and the matches it contained.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Released {
    pub text: String,
    pub kinds: Vec<Kind>,
}

/// Per-stream state of the output scanner.
#[derive(Default)]
pub struct StreamScanner {
    pending: HashMap<(u32, TextField), String>,
}

impl StreamScanner {
    pub fn new() -> Self {
        StreamScanner::default()
    }

    /// Appends `text` to the choice's pending text and releases what is final.
    pub fn push(
        &mut self,
        detectors: &Detectors,
        kinds: &[Kind],
        redact_values: bool,
        key: (u32, TextField),
        text: &str,
    ) -> Released {
        let pending = self.pending.entry(key).or_default();
        pending.push_str(text);
        let cut = holdback_start(pending);
        if cut == 0 {
            return Released::default();
        }
        let released = release(detectors, kinds, redact_values, &pending[..cut]);
        pending.drain(..cut);
        released
    }

    /// Releases everything pending for one choice field (the choice finished).
    pub fn flush(
        &mut self,
        detectors: &Detectors,
        kinds: &[Kind],
        redact_values: bool,
        key: (u32, TextField),
    ) -> Released {
        match self.pending.remove(&key) {
            Some(text) if !text.is_empty() => release(detectors, kinds, redact_values, &text),
            _ => Released::default(),
        }
    }

    /// Keys with pending text, in a stable order.
    pub fn pending_keys(&self) -> Vec<(u32, TextField)> {
        let mut keys: Vec<_> =
            self.pending.iter().filter(|(_, v)| !v.is_empty()).map(|(k, _)| *k).collect();
        keys.sort_by_key(|(i, f)| (*i, *f as u8));
        keys
    }
}

/// Scans final text. Only redacting callers get the text back (counting needs no copy).
fn release(detectors: &Detectors, kinds: &[Kind], redact_values: bool, text: &str) -> Released {
    let matches: Vec<Match> = detectors.find(text, kinds);
    let kinds_found = matches.iter().map(|m| m.kind).collect();
    let text = match (redact_values, matches.is_empty()) {
        (false, _) => String::new(),
        (true, true) => text.to_string(),
        (true, false) => redact(text, &matches),
    };
    Released { text, kinds: kinds_found }
}

/// Where the tail that could still grow into a match starts. After the last whitespace, but
/// a digit group before a single space (`6222 0212 ...`, `+86 138 ...`) and a `Bearer` before
/// its token are held too.
pub fn holdback_start(text: &str) -> usize {
    let mut start = match text.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
        Some((i, c)) => i + c.len_utf8(),
        None => 0,
    };
    loop {
        if start == 0 {
            break;
        }
        let before = &text[..start];
        let trimmed = before.trim_end_matches(' ');
        if before.len() - trimmed.len() != 1 {
            break;
        }
        let word_start = trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0);
        let word = &trimmed[word_start..];
        let digits = !word.is_empty()
            && word.trim_start_matches('+').chars().all(|c| c.is_ascii_digit() || c == '-');
        if digits || word.eq_ignore_ascii_case("bearer") {
            start = word_start;
        } else {
            break;
        }
    }
    if text.len() - start > MAX_HOLDBACK {
        let mut cut = text.len() - MAX_HOLDBACK;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        start = cut;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(pieces: &[&str], redact_values: bool) -> (String, Vec<Kind>) {
        let d = Detectors::new();
        let mut s = StreamScanner::new();
        let key = (0, TextField::Content);
        let mut out = String::new();
        let mut kinds = Vec::new();
        for p in pieces {
            let r = s.push(&d, &Kind::ALL, redact_values, key, p);
            out.push_str(&r.text);
            kinds.extend(r.kinds);
        }
        let r = s.flush(&d, &Kind::ALL, redact_values, key);
        out.push_str(&r.text);
        kinds.extend(r.kinds);
        (out, kinds)
    }

    #[test]
    fn values_split_across_chunks_are_found_once_and_redacted() {
        let pieces = ["Write to ", "us", "er@exa", "mple.com", " or call 138", "1234", "5678 now"];
        let (text, kinds) = feed(&pieces, true);
        assert_eq!(text, "Write to [REDACTED:email] or call [REDACTED:phone] now");
        assert_eq!(kinds, vec![Kind::Email, Kind::Phone]);
        let (text, kinds) = feed(&pieces, false);
        assert_eq!(text, "", "counting returns no text");
        assert_eq!(kinds.len(), 2);
    }

    #[test]
    fn grouped_card_and_bearer_token_are_held_until_complete() {
        let (text, kinds) = feed(
            &["card 4111 ", "1111 ", "1111 ", "1111", " ok Bearer ", "abcdefghijklmnop1234"],
            true,
        );
        assert_eq!(text, "card [REDACTED:bank_card] ok [REDACTED:api_key]");
        assert_eq!(kinds, vec![Kind::BankCard, Kind::ApiKey]);
    }

    #[test]
    fn holdback_starts_after_the_last_space_and_is_capped() {
        assert_eq!(holdback_start("hello wor"), 6);
        assert_eq!(holdback_start("hello "), 6);
        assert_eq!(holdback_start("pay 6222 02"), 4);
        let long = "x".repeat(1000);
        assert_eq!(holdback_start(&long), 1000 - MAX_HOLDBACK);
    }
}
