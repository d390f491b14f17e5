//! Feeds arbitrary bytes (as lossy UTF-8) to the promtext parser in both dialects, strict and
//! lenient, and checks the invariants that tie the two modes together.
#![no_main]

use deepwatch_core::promtext::{parse, parse_lenient, Dialect, Family};
use libfuzzer_sys::fuzz_target;

fn sample_count(families: &[Family]) -> usize {
    families.iter().map(|f| f.samples.len()).sum()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.split('\n').count();
    for dialect in [Dialect::Text004, Dialect::OpenMetrics] {
        let strict = parse(&text, dialect);
        let (families, errors) = parse_lenient(&text, dialect);
        for error in &errors {
            assert!(error.line >= 1 && error.line <= lines + 1, "{error:?}");
            assert!(!error.reason.is_empty());
            assert!(error.reason.len() < 400, "{error:?}");
        }
        match strict {
            Ok(strict) => {
                assert!(errors.is_empty(), "{errors:?}");
                assert_eq!(strict.len(), families.len());
                assert_eq!(sample_count(&strict), sample_count(&families));
            }
            Err(error) => assert_eq!(errors.first(), Some(&error)),
        }
        // Lenient never keeps more samples than there are lines.
        assert!(sample_count(&families) <= lines);
    }
});
