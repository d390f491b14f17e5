//! Detectors of sensitive values in text: e-mail addresses, phone numbers (mainland China
//! mobile and E.164), Chinese resident ID numbers (checksum-validated), bank card numbers
//! (Luhn-validated, also in 4-digit groups), API keys and bearer tokens, IPv4 addresses.
//! Numbers are found as digit runs with non-alphanumeric boundaries and then validated, so a
//! random 18-digit order number is not an ID and a random 16-digit number is not a card.

use regex::Regex;

/// A kind of sensitive value, the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Email,
    Phone,
    CnId,
    BankCard,
    ApiKey,
    Ipv4,
}

impl Kind {
    pub const ALL: [Kind; 6] =
        [Kind::Email, Kind::Phone, Kind::CnId, Kind::BankCard, Kind::ApiKey, Kind::Ipv4];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::CnId => "cn_id",
            Kind::BankCard => "bank_card",
            Kind::ApiKey => "api_key",
            Kind::Ipv4 => "ipv4",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One sensitive value: its kind and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// Compiled detectors.
pub struct Detectors {
    email: Regex,
    ipv4: Regex,
    api_key: Regex,
}

impl Default for Detectors {
    fn default() -> Self {
        Detectors::new()
    }
}

impl Detectors {
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        // The patterns are constants covered by tests; failing to compile them is a bug.
        let re = |p: &str| Regex::new(p).expect("built-in pattern compiles");
        Detectors {
            email: re(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
            ipv4: re(r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b"),
            api_key: re(concat!(
                r"\bsk-[A-Za-z0-9_\-]{20,}",
                r"|\bAKIA[0-9A-Z]{16}\b",
                r"|\bgh[pousr]_[A-Za-z0-9]{36,}",
                r"|\bxox[abprs]-[A-Za-z0-9\-]{10,}",
                r"|\bAIza[0-9A-Za-z_\-]{35}",
                r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
                r"|(?i:\bbearer)\s+[A-Za-z0-9\-._~+/]{16,}=*",
            )),
        }
    }

    /// Every sensitive value of the given kinds in `text`, ordered, without overlaps (at the
    /// same start the longer wins: `13812345678@qq.com` is an e-mail, not a phone).
    pub fn find(&self, text: &str, kinds: &[Kind]) -> Vec<Match> {
        let mut found = Vec::new();
        // The shortest value any detector matches is 6 bytes (`a@b.io`); streamed output is
        // released a word at a time, so most calls end here.
        if text.len() < 6 {
            return found;
        }
        let wants = |k: Kind| kinds.contains(&k);
        let digits = text.bytes().any(|b| b.is_ascii_digit());
        if wants(Kind::ApiKey) && text.len() >= 15 {
            found.extend(self.api_key.find_iter(text).map(|m| Match {
                kind: Kind::ApiKey,
                start: m.start(),
                end: m.end(),
            }));
        }
        if wants(Kind::Email) && text.contains('@') {
            found.extend(self.email.find_iter(text).map(|m| Match {
                kind: Kind::Email,
                start: m.start(),
                end: m.end(),
            }));
        }
        if wants(Kind::Ipv4) && digits && text.contains('.') {
            for m in self.ipv4.find_iter(text) {
                let bytes = text.as_bytes();
                let dotted_before = m.start() > 0 && bytes[m.start() - 1] == b'.';
                let dotted_after = bytes.get(m.end()) == Some(&b'.')
                    && bytes.get(m.end() + 1).is_some_and(u8::is_ascii_digit);
                let octets_ok =
                    m.as_str().split('.').all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255));
                if octets_ok && !dotted_before && !dotted_after {
                    found.push(Match { kind: Kind::Ipv4, start: m.start(), end: m.end() });
                }
            }
        }
        if digits && kinds.iter().any(|k| matches!(k, Kind::Phone | Kind::CnId | Kind::BankCard)) {
            numbers(text, kinds, &mut found);
        }
        found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut out: Vec<Match> = Vec::with_capacity(found.len());
        for m in found {
            if out.last().is_none_or(|last| m.start >= last.end) {
                out.push(m);
            }
        }
        out
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Digit runs, joined across single spaces or dashes (card and phone groups), then validated.
fn numbers(text: &str, kinds: &[Kind], out: &mut Vec<Match>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && (is_word(b[i - 1]) || b[i - 1] == b'.')) {
            i += 1;
            continue;
        }
        let plus = i > 0 && b[i - 1] == b'+';
        let start = if plus { i - 1 } else { i };
        // Groups of digits separated by one space or dash.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut j = i;
        loop {
            let g0 = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((g0, j));
            let joins = j + 1 < b.len() && matches!(b[j], b' ' | b'-') && b[j + 1].is_ascii_digit();
            if !joins || groups.len() >= 6 {
                break;
            }
            j += 1;
        }
        // An ID may end in X.
        let mut found = None;
        let whole_end = groups.last().map(|g| g.1).unwrap_or(i);
        let digits: String = groups.iter().map(|(s, e)| &text[*s..*e]).collect();
        if groups.len() > 1 {
            if let Some(kind) = classify(&digits, plus, kinds, false) {
                if !b.get(whole_end).is_some_and(|c| is_word(*c)) {
                    found = Some(Match { kind, start, end: whole_end });
                }
            }
        }
        if found.is_none() {
            let (g0, g1) = groups[0];
            let mut end = g1;
            let mut run = text[g0..g1].to_string();
            if run.len() == 17 && matches!(b.get(g1), Some(b'X' | b'x')) {
                run.push('X');
                end += 1;
            }
            if !b.get(end).is_some_and(|c| is_word(*c)) {
                if let Some(kind) = classify(&run, plus, kinds, true) {
                    found = Some(Match { kind, start, end });
                }
            }
        }
        match found {
            Some(m) => {
                i = m.end;
                out.push(m);
            }
            None => i = groups[0].1,
        }
    }
}

fn classify(digits: &str, plus: bool, kinds: &[Kind], single_run: bool) -> Option<Kind> {
    let n = digits.len();
    if kinds.contains(&Kind::CnId) && single_run && n == 18 && !plus && cn_id_valid(digits) {
        return Some(Kind::CnId);
    }
    if kinds.contains(&Kind::BankCard) && !plus && (13..=19).contains(&n) && luhn_valid(digits) {
        return Some(Kind::BankCard);
    }
    if kinds.contains(&Kind::Phone) {
        let cn_mobile =
            |d: &str| d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9');
        if !plus && cn_mobile(digits) {
            return Some(Kind::Phone);
        }
        if plus && (8..=15).contains(&n) && !digits.starts_with('0') {
            return Some(Kind::Phone);
        }
    }
    None
}

/// GB 11643 checksum, plus a plausible birth date.
pub fn cn_id_valid(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| id[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=2100).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let sum: u32 = b[..17].iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    CHECK[(sum % 11) as usize] == b[17].to_ascii_uppercase()
}

pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_in(text: &str) -> Vec<(Kind, String)> {
        Detectors::new()
            .find(text, &Kind::ALL)
            .into_iter()
            .map(|m| (m.kind, text[m.start..m.end].to_string()))
            .collect()
    }

    #[test]
    fn each_kind_is_found_with_its_exact_span() {
        let found = kinds_in(
            "mail bob.smith+x@example.co.uk, call 13812345678 or +4915112345678, \
             id 11010519491231002X, card 4111 1111 1111 1111, key sk-abcdefghijklmnopqrstuvwx, \
             Authorization: Bearer abcdefghijklmnop1234, host 10.0.12.7.",
        );
        let want = [
            (Kind::Email, "bob.smith+x@example.co.uk"),
            (Kind::Phone, "13812345678"),
            (Kind::Phone, "+4915112345678"),
            (Kind::CnId, "11010519491231002X"),
            (Kind::BankCard, "4111 1111 1111 1111"),
            (Kind::ApiKey, "sk-abcdefghijklmnopqrstuvwx"),
            (Kind::ApiKey, "Bearer abcdefghijklmnop1234"),
            (Kind::Ipv4, "10.0.12.7"),
        ];
        let want: Vec<(Kind, String)> = want.iter().map(|(k, s)| (*k, s.to_string())).collect();
        assert_eq!(found, want);
    }

    #[test]
    fn validation_rejects_lookalikes() {
        // Wrong ID checksum, failing Luhn, too-short mobile, octet > 255, digits inside words.
        assert!(kinds_in("110105194912310021").is_empty());
        assert!(kinds_in("4111111111111112").is_empty());
        assert!(kinds_in("1381234567").is_empty());
        assert!(kinds_in("version 1.2.3.4.5 and 300.1.1.1").is_empty());
        assert!(kinds_in("order ab13812345678 and 13812345678cd").is_empty());
        assert!(cn_id_valid("11010519491231002X"));
        assert!(luhn_valid("4111111111111111"));
    }

    #[test]
    fn longer_match_wins_at_the_same_start() {
        let found = kinds_in("13812345678@qq.com");
        assert_eq!(found, vec![(Kind::Email, "13812345678@qq.com".to_string())]);
    }

    #[test]
    fn the_shortest_value_of_each_kind_is_still_found() {
        for (text, kind) in [
            ("a@b.io", Kind::Email),
            ("1.2.3.4", Kind::Ipv4),
            ("xoxb-1234567890", Kind::ApiKey),
            ("+12345678", Kind::Phone),
        ] {
            let found = kinds_in(text);
            assert_eq!(found, vec![(kind, text.to_string())], "{text}");
        }
    }

    #[test]
    fn only_requested_kinds_are_reported() {
        let d = Detectors::new();
        let text = "a@b.io 13812345678";
        let m = d.find(text, &[Kind::Phone]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind, Kind::Phone);
    }
}
