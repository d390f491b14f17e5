//! Times each NVML call the gpu collector makes on GPU 0 (median of 20), to see where a
//! collector run's time goes on real hardware. Run: `cargo run --release --example nvml_timing`.

#[cfg(feature = "nvml")]
fn main() {
    use nvml_wrapper::enum_wrappers::device::{
        Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
    };
    use tokio::time::Instant;
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("nvml unavailable: {e}");
            std::process::exit(2);
        }
    };
    let d = nvml.device_by_index(0).expect("gpu 0");
    let mut rows: Vec<(&str, f64)> = Vec::new();
    macro_rules! time {
        ($name:literal, $call:expr) => {{
            let mut t: Vec<f64> = (0..20)
                .map(|_| {
                    let s = Instant::now();
                    let _ = $call;
                    s.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            t.sort_by(|a, b| a.total_cmp(b));
            rows.push(($name, t[10]));
        }};
    }
    time!("device_by_index", nvml.device_by_index(0));
    time!("uuid", d.uuid());
    time!("name", d.name());
    time!("utilization_rates", d.utilization_rates());
    time!("memory_info", d.memory_info());
    time!("temperature", d.temperature(TemperatureSensor::Gpu));
    time!("power_usage", d.power_usage());
    time!("enforced_power_limit", d.enforced_power_limit());
    time!("clock_info(SM)", d.clock_info(Clock::SM));
    time!("clock_info(Memory)", d.clock_info(Clock::Memory));
    time!("current_throttle_reasons", d.current_throttle_reasons());
    time!("total_ecc_errors", d.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile));
    time!("pcie_replay_counter", d.pcie_replay_counter());
    time!("pcie_throughput(Send)", d.pcie_throughput(PcieUtilCounter::Send));
    time!("fan_speed", d.fan_speed(0));
    time!("running_compute_processes", d.running_compute_processes());
    time!("running_graphics_processes", d.running_graphics_processes());
    time!("sys_driver_version", nvml.sys_driver_version());
    time!("sys_cuda_driver_version", nvml.sys_cuda_driver_version());
    time!("device_count", nvml.device_count());
    println!("| NVML call | median µs (20 calls) |\n|---|---|");
    for (name, us) in rows {
        println!("| {name} | {us:.0} |");
    }
}

#[cfg(not(feature = "nvml"))]
fn main() {
    eprintln!("built without the nvml feature");
}
