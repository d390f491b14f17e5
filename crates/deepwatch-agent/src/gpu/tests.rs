//! GPU collector tests against the fake NVML: every metric family, a GPU lost and removed
//! mid-run, XID counting, and a node without NVML.

use super::fake::FakeGpus;
use super::*;
use deepwatch_core::expo::Format;

fn scrape(c: &GpuCollector) -> (Result<(), CollectError>, String) {
    let mut sink = MetricSink::new(Format::Text004);
    let r = c.collect(&mut sink);
    (r, sink.render())
}

const G0: &str = "gpu=\"0\",gpu_uuid=\"GPU-00000000-0000-0000-0000-000000000000\",gpu_name=\"NVIDIA H100 80GB HBM3\"";
const G1: &str = "gpu=\"1\",gpu_uuid=\"GPU-00000000-0000-0000-0000-000000000001\",gpu_name=\"NVIDIA H100 80GB HBM3\"";

#[test]
fn every_gpu_family_is_exported_in_base_units() {
    let fake = FakeGpus::healthy(2);
    let c = GpuCollector::new(Ok(fake), true);
    let (r, text) = scrape(&c);
    r.unwrap();
    for expected in [
        format!("deepwatch_gpu_utilization_ratio{{{G0}}} 0.87"),
        format!("deepwatch_gpu_memory_utilization_ratio{{{G1}}} 0.41"),
        format!("deepwatch_gpu_memory_used_bytes{{{G0}}} 70000000000"),
        format!("deepwatch_gpu_memory_free_bytes{{{G1}}} 10000000001"),
        format!("deepwatch_gpu_memory_total_bytes{{{G0}}} 80000000000"),
        format!("deepwatch_gpu_temperature_celsius{{{G0}}} 64"),
        format!("deepwatch_gpu_power_watts{{{G0}}} 512.25"),
        format!("deepwatch_gpu_power_limit_watts{{{G0}}} 700"),
        format!("deepwatch_gpu_sm_clock_hertz{{{G0}}} 1980000000"),
        format!("deepwatch_gpu_memory_clock_hertz{{{G0}}} 2619000000"),
        format!("deepwatch_gpu_throttle_reason_active{{{G0},reason=\"sw_power_cap\"}} 1"),
        format!("deepwatch_gpu_throttle_reason_active{{{G0},reason=\"hw_thermal_slowdown\"}} 0"),
        format!("deepwatch_gpu_ecc_errors_total{{{G0},error_type=\"uncorrected\",counter_type=\"aggregate\"}} 1"),
        format!("deepwatch_gpu_ecc_errors_total{{{G0},error_type=\"corrected\",counter_type=\"volatile\"}} 3"),
        format!("deepwatch_gpu_pcie_replays_total{{{G0}}} 2"),
        format!("deepwatch_gpu_pcie_throughput_bytes_per_second{{{G0},direction=\"rx\"}} 2500000000"),
        format!("deepwatch_gpu_process_memory_used_bytes{{{G0},pid=\"4242\",process_name=\"python3\"}} 69000000000"),
        "deepwatch_gpu_driver_info{driver_version=\"550.54.15\",cuda_version=\"12.4\"} 1".into(),
        "deepwatch_gpus 2".into(),
        format!("deepwatch_gpu_up{{{G1}}} 1"),
    ] {
        assert!(text.contains(&expected), "missing {expected}\n{text}");
    }
    // No fan on this board: the series is absent, not zero.
    assert!(!text.contains("deepwatch_gpu_fan_speed_ratio{"), "{text}");
}

#[test]
fn a_gpu_lost_mid_run_goes_down_while_the_other_keeps_reporting() {
    let fake = FakeGpus::healthy(2);
    let c = GpuCollector::new(Ok(fake.clone()), false);
    let (r, text) = scrape(&c);
    r.unwrap();
    assert!(text.contains(&format!("deepwatch_gpu_up{{{G0}}} 1")));

    fake.lose(0);
    let (r, text) = scrape(&c);
    r.unwrap();
    assert!(text.contains(&format!("deepwatch_gpu_up{{{G0}}} 0")), "{text}");
    assert!(!text.contains(&format!("deepwatch_gpu_utilization_ratio{{{G0}}}")), "{text}");
    assert!(text.contains(&format!("deepwatch_gpu_utilization_ratio{{{G1}}} 0.87")), "{text}");

    // Gone from the enumeration entirely: still reported down under its old labels.
    fake.remove(0);
    let (r, text) = scrape(&c);
    r.unwrap();
    assert!(text.contains("deepwatch_gpus 1"), "{text}");
    assert!(text.contains(&format!("deepwatch_gpu_up{{{G0}}} 0")), "{text}");
    assert!(text.contains(&format!("deepwatch_gpu_up{{{G1}}} 1")), "{text}");
}

#[test]
fn xid_events_are_counted_by_gpu_and_code() {
    let fake = FakeGpus::healthy(2);
    let c = GpuCollector::new(Ok(fake.clone()), false);
    c.start_xid_watch().unwrap();
    fake.inject_xid(1, 79);
    fake.inject_xid(1, 79);
    fake.inject_xid(0, 48);
    let (_, text) = scrape(&c);
    assert!(
        text.contains(&format!("deepwatch_gpu_xid_errors_total{{{G1},xid=\"79\"}} 2")),
        "{text}"
    );
    assert!(
        text.contains(&format!("deepwatch_gpu_xid_errors_total{{{G0},xid=\"48\"}} 1")),
        "{text}"
    );
}

#[test]
fn no_nvml_means_collector_down_with_the_reason_not_a_crash() {
    let c = GpuCollector::new(
        Err(GpuError::Unavailable("libnvidia-ml.so.1: cannot open".into())),
        true,
    );
    let (r, text) = scrape(&c);
    let err = r.unwrap_err();
    assert!(err.to_string().contains("libnvidia-ml.so.1"), "{err}");
    assert!(!text.contains("deepwatch_gpu_"), "{text}");
    assert!(c.start_xid_watch().is_err());
}

#[cfg(feature = "nvml")]
#[test]
fn the_real_nvml_loader_fails_cleanly_on_a_gpu_less_host() {
    // This CI host has no NVIDIA driver; on a GPU host the open succeeds instead.
    match open_nvml("/nonexistent/libnvidia-ml.so.1") {
        Err(GpuError::Unavailable(reason)) => assert!(!reason.is_empty()),
        Err(other) => panic!("unexpected error kind {other}"),
        Ok(_) => panic!("a library that does not exist cannot load"),
    }
}

#[tokio::test(start_paused = true)]
async fn nvml_that_appears_after_start_is_picked_up_on_a_later_scrape() {
    let fake = FakeGpus::healthy(1);
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (f, a) = (fake.clone(), attempts.clone());
    let opener: GpuOpener = Arc::new(move || {
        a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(f.clone() as Arc<dyn GpuSource>)
    });
    let c = GpuCollector::new(Err(GpuError::Unavailable("driver not loaded yet".into())), false)
        .with_reopen(opener);
    c.start_xid_watch().unwrap_err();
    assert!(scrape(&c).0.is_err());
    tokio::time::advance(REOPEN_AFTER / 2).await;
    assert!(scrape(&c).0.is_err(), "no retry before REOPEN_AFTER");
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 0);
    tokio::time::advance(REOPEN_AFTER).await;
    let (r, text) = scrape(&c);
    r.unwrap();
    assert!(text.contains(&format!("deepwatch_gpu_up{{{G0}}} 1")), "{text}");
    // The XID watch asked for at start is running now.
    fake.inject_xid(0, 31);
    assert!(scrape(&c).1.contains(&format!("deepwatch_gpu_xid_errors_total{{{G0},xid=\"31\"}} 1")));
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 1);
}
