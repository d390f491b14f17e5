//! Tailing tests on real files in a temp dir: levels and patterns, rename and truncate
//! rotation, a file that disappears and comes back, partial lines.

use super::*;
use deepwatch_core::expo::Format;
use std::collections::BTreeMap;
use std::io::Write;

fn config(path: &std::path::Path) -> LogFileConfig {
    let mut patterns = BTreeMap::new();
    patterns.insert("cuda_oom".to_string(), "CUDA out of memory".to_string());
    patterns.insert("shape_mismatch".to_string(), "size mismatch|shape mismatch".to_string());
    LogFileConfig {
        path: path.display().to_string(),
        name: "vllm".into(),
        patterns,
        ..LogFileConfig::default()
    }
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn value(c: &LogsCollector, series: &str) -> f64 {
    let mut sink = MetricSink::new(Format::Text004);
    c.collect(&mut sink).unwrap();
    let text = sink.render();
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

const VLLM_LOG: &str = "\
INFO 05-12 10:00:01 [api_server.py:1090] Starting vLLM API server 0 on http://0.0.0.0:8000
WARNING 05-12 10:00:02 [config.py:1234] Casting torch.bfloat16 to torch.float16.
ERROR 05-12 10:01:00 [engine.py:160] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB
Traceback (most recent call last):
RuntimeError: Error(s) in loading state_dict: size mismatch for lm_head.weight
DEBUG 05-12 10:01:01 [scheduler.py:10] step
";

#[test]
fn lines_are_counted_by_level_and_named_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.log");
    append(&path, "INFO old line before the agent started\n");
    let c = LogsCollector::new(&[config(&path)]).unwrap();
    c.poll_all();
    // Existing content is not counted (from_start = false) and every counter starts at 0.
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"info\"}"), 0.0);
    assert_eq!(
        value(&c, "deepwatch_log_pattern_matches_total{file=\"vllm\",pattern=\"cuda_oom\"}"),
        0.0
    );
    append(&path, VLLM_LOG);
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"info\"}"), 1.0);
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"warning\"}"), 1.0);
    // The ERROR line and "RuntimeError: Error(s)": both error level.
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"error\"}"), 2.0);
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"debug\"}"), 1.0);
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"other\"}"), 1.0);
    assert_eq!(
        value(&c, "deepwatch_log_pattern_matches_total{file=\"vllm\",pattern=\"cuda_oom\"}"),
        1.0
    );
    assert_eq!(
        value(&c, "deepwatch_log_pattern_matches_total{file=\"vllm\",pattern=\"shape_mismatch\"}"),
        1.0
    );
    assert_eq!(value(&c, "deepwatch_log_file_up{file=\"vllm\"}"), 1.0);
}

#[test]
fn rename_rotation_counts_the_old_files_last_lines_and_follows_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.log");
    append(&path, "");
    let c = LogsCollector::new(&[config(&path)]).unwrap();
    c.poll_all();
    append(&path, "ERROR one\n");
    std::fs::rename(&path, dir.path().join("server.log.1")).unwrap();
    // Written by the engine after the rename, before it reopened: still the old inode.
    append(&dir.path().join("server.log.1"), "ERROR two\n");
    append(&path, "ERROR three: CUDA out of memory\n");
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"error\"}"), 3.0);
    append(&path, "ERROR four\n");
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"error\"}"), 4.0);
    assert_eq!(
        value(&c, "deepwatch_log_pattern_matches_total{file=\"vllm\",pattern=\"cuda_oom\"}"),
        1.0
    );
}

#[test]
fn truncation_in_place_starts_over_from_the_top() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.log");
    append(&path, "");
    let c = LogsCollector::new(&[config(&path)]).unwrap();
    c.poll_all();
    append(&path, "WARNING a long line that makes the file bigger than what follows\n");
    c.poll_all();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    append(&path, "WARNING b\n");
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"warning\"}"), 2.0);
}

#[test]
fn a_file_that_disappears_and_comes_back_is_followed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.log");
    let c = LogsCollector::new(&[config(&path)]).unwrap();
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_file_up{file=\"vllm\"}"), 0.0);
    append(&path, "INFO created after the agent started: counted\n");
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"info\"}"), 1.0);
    std::fs::remove_file(&path).unwrap();
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_file_up{file=\"vllm\"}"), 0.0);
    append(&path, "INFO back\nINFO again\n");
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_file_up{file=\"vllm\"}"), 1.0);
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"info\"}"), 3.0);
}

#[test]
fn a_partial_line_counts_once_when_completed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.log");
    append(&path, "");
    let c = LogsCollector::new(&[config(&path)]).unwrap();
    c.poll_all();
    append(&path, "ERROR half");
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"error\"}"), 0.0);
    append(&path, " and the rest: CUDA out of memory\n");
    c.poll_all();
    assert_eq!(value(&c, "deepwatch_log_lines_total{file=\"vllm\",level=\"error\"}"), 1.0);
    assert_eq!(
        value(&c, "deepwatch_log_pattern_matches_total{file=\"vllm\",pattern=\"cuda_oom\"}"),
        1.0
    );
}

#[test]
fn levels_come_from_the_first_level_word() {
    assert_eq!(level_of("INFO 05-12 request failed with error"), "info");
    assert_eq!(level_of("2024-01-01T00:00:00Z [warn] slow"), "warning");
    assert_eq!(level_of("level=fatal msg=boom"), "error");
    assert_eq!(level_of("  File \"x.py\", line 3"), "other");
}
