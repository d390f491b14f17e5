//! How the simulator counts prompt tokens and makes up completion text. There is no tokenizer:
//! a prompt costs one token per 4 characters (rounded up), plus 4 tokens per chat message for
//! the chat template. Completion tokens are words from a fixed list, each with its leading
//! space, chosen by a generator seeded from the request, so equal requests get equal text.

use crate::rng::Rng;

/// Every answer token of a model under the wrong-answers fault.
pub const WRONG: &str = " ??";

/// Characters per prompt token.
pub const CHARS_PER_TOKEN: usize = 4;
/// Template tokens each chat message adds (role markers and separators).
pub const TOKENS_PER_MESSAGE: u64 = 4;

/// Prompt tokens of a text: `ceil(chars / 4)`.
pub fn text_tokens(text: &str) -> u64 {
    text.chars().count().div_ceil(CHARS_PER_TOKEN) as u64
}

/// Chained hashes of the prompt's full KV-cache blocks (`vllm::BLOCK_SIZE` tokens, i.e. 64
/// characters): block `i`'s hash covers blocks `0..=i`, so two prompts share a leading run of
/// hashes exactly as far as they share a block-aligned prefix, as in vLLM's prefix cache.
pub fn prefix_blocks<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<u64> {
    const FNV_PRIME: u64 = 0x0100_0000_01b3;
    let block_chars = deepwatch_core::engines::vllm::BLOCK_SIZE as usize * CHARS_PER_TOKEN;
    let mut out = Vec::new();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut in_block = 0;
    for (i, text) in texts.enumerate() {
        // A message boundary is part of the prefix (the chat template puts markers there).
        let separator = if i > 0 { Some('\u{1e}') } else { None };
        for c in separator.into_iter().chain(text.chars()) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
            in_block += 1;
            if in_block == block_chars {
                out.push(hash);
                in_block = 0;
            }
        }
    }
    out
}

/// Prompt tokens of a chat: each message's text tokens plus `TOKENS_PER_MESSAGE`.
pub fn chat_tokens<'a>(contents: impl Iterator<Item = &'a str>) -> u64 {
    contents.map(|c| text_tokens(c) + TOKENS_PER_MESSAGE).sum::<u64>().max(1)
}

/// Answer words. Plain ASCII, so they need no JSON escaping.
const ANSWER: &[&str] = &[
    " the",
    " model",
    " answer",
    " is",
    " based",
    " on",
    " data",
    " and",
    " a",
    " careful",
    " review",
    " of",
    " each",
    " step",
    " in",
    " order",
    " to",
    " make",
    " sure",
    " that",
    " result",
    " holds",
    " for",
    " all",
    " cases",
    " we",
    " consider",
    " here",
    " with",
    " latency",
    " tokens",
    " stream",
    " cache",
    " request",
    " server",
    " response",
    " value",
    " system",
    " first",
    " then",
    " next",
    " finally",
    " so",
    " it",
    " works",
    " well",
    ".",
    ",",
    " inference",
    " GPU",
    " batch",
    " queue",
    " memory",
    " throughput",
    " metric",
    " alert",
    " rule",
    " check",
    " test",
    " run",
    " time",
    " long",
    " short",
    " fast",
];

/// Reasoning words (DeepSeek-R1 style thinking).
const REASONING: &[&str] = &[
    " Let",
    " me",
    " think",
    " about",
    " this",
    " carefully",
    ".",
    " First",
    ",",
    " the",
    " user",
    " asks",
    " for",
    " a",
    " clear",
    " answer",
    " so",
    " I",
    " should",
    " check",
    " each",
    " part",
    " and",
    " verify",
    " steps",
    " Hmm",
    " wait",
    " maybe",
    " consider",
    " another",
    " approach",
    " then",
    " compare",
    " results",
    " before",
    " answering",
    " OK",
    " now",
    " that",
    " seems",
    " right",
    " because",
    " of",
    " constraints",
    " given",
    " here",
    " again",
    " once",
    " more",
    " to",
    " be",
    " sure",
    " done",
    " thinking",
    " final",
    " option",
    " case",
    " if",
    " not",
    " true",
    " false",
    " yes",
    " no",
    " good",
];

/// The text of completion token `index`: reasoning words for the first `reasoning` tokens.
pub fn token_text(rng_state: u64, index: u64, reasoning: bool, wrong: bool) -> &'static str {
    if wrong && !reasoning {
        // A broken model version: the answer has no word in it at all.
        return WRONG;
    }
    let mut rng = Rng::new(rng_state ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
    if reasoning {
        REASONING[rng.below(REASONING.len() as u64) as usize]
    } else {
        ANSWER[rng.below(ANSWER.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_tokens_follow_the_documented_rule() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        assert_eq!(text_tokens("ééééé"), 2, "characters, not bytes");
        assert_eq!(chat_tokens(["abcd", "abcdefgh"].into_iter()), 1 + 4 + 2 + 4);
        assert_eq!(chat_tokens(std::iter::empty()), 1);
    }

    #[test]
    fn prefix_blocks_share_exactly_the_block_aligned_common_prefix() {
        let a = "a".repeat(64) + &"b".repeat(64) + "tail";
        let b = "a".repeat(64) + &"c".repeat(64);
        let (ha, hb) =
            (prefix_blocks([a.as_str()].into_iter()), prefix_blocks([b.as_str()].into_iter()));
        assert_eq!((ha.len(), hb.len()), (2, 2), "only full 64-character blocks count");
        assert_eq!(ha[0], hb[0]);
        assert_ne!(ha[1], hb[1]);
        // A message boundary changes what follows it.
        let split = prefix_blocks(["a".repeat(32).as_str(), "a".repeat(32).as_str()].into_iter());
        assert_ne!(split, prefix_blocks([&"a".repeat(64) as &str].into_iter()));
    }

    #[test]
    fn token_text_is_deterministic_and_needs_no_escaping() {
        let a: Vec<_> = (0..50).map(|i| token_text(9, i, false, false)).collect();
        let b: Vec<_> = (0..50).map(|i| token_text(9, i, false, false)).collect();
        assert_eq!(a, b);
        assert_ne!(a, (0..50).map(|i| token_text(10, i, false, false)).collect::<Vec<_>>());
        // A wrong answer has no word in it; reasoning is untouched.
        assert!((0..50).all(|i| token_text(9, i, false, true) == WRONG));
        assert_eq!(token_text(9, 3, true, true), token_text(9, 3, true, false));
        for w in ANSWER.iter().chain(REASONING) {
            assert!(w.chars().all(|c| c.is_ascii() && c != '"' && c != '\\'), "{w}");
        }
    }
}
