//! The real GPU source: NVML through nvml-wrapper, which loads `libnvidia-ml.so.1` when
//! `open` runs, so the binary starts on nodes without a driver. One long-lived `Nvml` handle;
//! devices are looked up by index on every read. Fields a board does not support are `None`.

use super::*;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use std::sync::atomic::Ordering;

pub struct NvmlSource {
    nvml: Arc<Nvml>,
    /// (tx, rx) bytes/s per device index, refreshed in the background: each NVML PCIe
    /// throughput read blocks for its 20 ms sampling window, which would make every scrape
    /// 40 ms slower per GPU.
    pcie: Arc<Mutex<PcieCache>>,
}

/// (tx, rx) bytes/s by device index.
type PcieCache = BTreeMap<u32, (Option<f64>, Option<f64>)>;

/// How often the background thread re-reads PCIe throughput.
const PCIE_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

const THROTTLE_REASONS: &[(&str, ThrottleReasons)] = &[
    ("gpu_idle", ThrottleReasons::GPU_IDLE),
    ("applications_clocks_setting", ThrottleReasons::APPLICATIONS_CLOCKS_SETTING),
    ("sw_power_cap", ThrottleReasons::SW_POWER_CAP),
    ("hw_slowdown", ThrottleReasons::HW_SLOWDOWN),
    ("sync_boost", ThrottleReasons::SYNC_BOOST),
    ("sw_thermal_slowdown", ThrottleReasons::SW_THERMAL_SLOWDOWN),
    ("hw_thermal_slowdown", ThrottleReasons::HW_THERMAL_SLOWDOWN),
    ("hw_power_brake_slowdown", ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN),
];

fn classify(index: u32, e: NvmlError) -> GpuError {
    match e {
        NvmlError::GpuLost | NvmlError::NotFound | NvmlError::InvalidArg => {
            GpuError::Lost { index, reason: e.to_string() }
        }
        other => GpuError::Failed(other.to_string()),
    }
}

impl NvmlSource {
    /// Loads NVML from `library` (empty: the system's `libnvidia-ml.so.1`).
    pub fn open(library: &str) -> Result<NvmlSource, GpuError> {
        let result = if library.is_empty() {
            Nvml::init()
        } else {
            Nvml::builder().lib_path(std::ffi::OsStr::new(library)).init()
        };
        let nvml = Arc::new(result.map_err(|e| GpuError::Unavailable(e.to_string()))?);
        let pcie = Arc::new(Mutex::new(BTreeMap::new()));
        let (nvml2, weak) = (nvml.clone(), Arc::downgrade(&pcie));
        let spawned = std::thread::Builder::new()
            .name("nvml-pcie".into())
            .spawn(move || pcie_loop(&nvml2, weak));
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "pcie throughput sampler not started");
        }
        Ok(NvmlSource { nvml, pcie })
    }
}

impl GpuSource for NvmlSource {
    fn driver(&self) -> Result<DriverInfo, GpuError> {
        let driver_version =
            self.nvml.sys_driver_version().map_err(|e| GpuError::Failed(e.to_string()))?;
        let cuda_version = match self.nvml.sys_cuda_driver_version() {
            Ok(v) => format!(
                "{}.{}",
                nvml_wrapper::cuda_driver_version_major(v),
                nvml_wrapper::cuda_driver_version_minor(v)
            ),
            Err(_) => String::new(),
        };
        Ok(DriverInfo { driver_version, cuda_version })
    }

    fn device_count(&self) -> Result<u32, GpuError> {
        self.nvml.device_count().map_err(|e| GpuError::Failed(e.to_string()))
    }

    fn identity(&self, index: u32) -> Result<GpuIdentity, GpuError> {
        let d = self.nvml.device_by_index(index).map_err(|e| classify(index, e))?;
        let uuid = d.uuid().map_err(|e| classify(index, e))?;
        let name = d.name().unwrap_or_default();
        let index = d.index().unwrap_or(index);
        Ok(GpuIdentity { index, uuid, name })
    }

    fn read(&self, index: u32, with_processes: bool) -> Result<GpuReading, GpuError> {
        let d = self.nvml.device_by_index(index).map_err(|e| classify(index, e))?;
        // Utilization is the one read every board supports: its failure means the GPU is gone.
        let util = d.utilization_rates().map_err(|e| classify(index, e))?;
        let mut r = GpuReading {
            utilization_gpu_percent: Some(util.gpu as f64),
            utilization_memory_percent: Some(util.memory as f64),
            ..GpuReading::default()
        };
        if let Ok(m) = d.memory_info() {
            r.memory_used_bytes = Some(m.used as f64);
            r.memory_free_bytes = Some(m.free as f64);
            r.memory_total_bytes = Some(m.total as f64);
        }
        r.temperature_celsius = d.temperature(TemperatureSensor::Gpu).ok().map(f64::from);
        r.power_watts = d.power_usage().ok().map(|mw| mw as f64 / 1000.0);
        r.power_limit_watts = d.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0);
        r.sm_clock_mhz = d.clock_info(Clock::SM).ok().map(f64::from);
        r.memory_clock_mhz = d.clock_info(Clock::Memory).ok().map(f64::from);
        #[allow(deprecated)]
        if let Ok(reasons) = d.current_throttle_reasons() {
            r.throttle_reasons =
                THROTTLE_REASONS.iter().map(|(n, bit)| (*n, reasons.contains(*bit))).collect();
        }
        for (error_type, e) in
            [("corrected", MemoryError::Corrected), ("uncorrected", MemoryError::Uncorrected)]
        {
            for (counter_type, c) in
                [("volatile", EccCounter::Volatile), ("aggregate", EccCounter::Aggregate)]
            {
                if let Ok(n) = d.total_ecc_errors(e, c) {
                    r.ecc_errors.push((error_type, counter_type, n as f64));
                }
            }
        }
        r.pcie_replays = d.pcie_replay_counter().ok().map(f64::from);
        if let Some((tx, rx)) = self.pcie.lock().get(&index) {
            r.pcie_tx_bytes_per_second = *tx;
            r.pcie_rx_bytes_per_second = *rx;
        }
        r.fan_speed_percent = d.fan_speed(0).ok().map(f64::from);
        if with_processes {
            let mut procs = d.running_compute_processes().unwrap_or_default();
            procs.extend(d.running_graphics_processes().unwrap_or_default());
            for p in procs {
                let used = match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => b as f64,
                    UsedGpuMemory::Unavailable => continue,
                };
                if r.processes.iter().any(|q: &GpuProcess| q.pid == p.pid) {
                    continue;
                }
                let name = std::fs::read_to_string(format!("/proc/{}/comm", p.pid))
                    .map(|c| c.trim_end().to_string())
                    .or_else(|_| self.nvml.sys_process_name(p.pid, 64))
                    .unwrap_or_default();
                r.processes.push(GpuProcess { pid: p.pid, name, used_bytes: used });
            }
        }
        Ok(r)
    }

    fn watch_xid(&self, handler: XidHandler, stop: Arc<AtomicBool>) -> Result<(), GpuError> {
        let nvml = self.nvml.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("nvml-xid".into())
            .spawn(move || xid_loop(&nvml, handler, stop, ready_tx))
            .map_err(|e| GpuError::Failed(e.to_string()))?;
        ready_rx.recv().map_err(|e| GpuError::Failed(e.to_string()))?
    }
}

/// Re-reads every device's PCIe throughput every `PCIE_REFRESH` until the source is dropped.
fn pcie_loop(nvml: &Nvml, cache: std::sync::Weak<Mutex<PcieCache>>) {
    // A channel nobody sends on is a sleep that clippy's ban on thread::sleep allows.
    let (_keep, pause) = std::sync::mpsc::channel::<()>();
    loop {
        let count = nvml.device_count().unwrap_or(0);
        let mut fresh = BTreeMap::new();
        for index in 0..count {
            let Ok(d) = nvml.device_by_index(index) else { continue };
            // NVML reports KB/s over a 20 ms sample.
            let tx = d.pcie_throughput(PcieUtilCounter::Send).ok().map(|kb| kb as f64 * 1024.0);
            let rx = d.pcie_throughput(PcieUtilCounter::Receive).ok().map(|kb| kb as f64 * 1024.0);
            fresh.insert(index, (tx, rx));
        }
        match cache.upgrade() {
            Some(c) => *c.lock() = fresh,
            None => return,
        }
        let _ = pause.recv_timeout(PCIE_REFRESH);
    }
}

/// Registers every device for critical XID events and waits on the set until `stop`.
fn xid_loop(
    nvml: &Nvml,
    handler: XidHandler,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<Result<(), GpuError>>,
) {
    let mut set = match nvml.create_event_set() {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(GpuError::Failed(e.to_string())));
            return;
        }
    };
    let count = nvml.device_count().unwrap_or(0);
    let mut registered = 0;
    for index in 0..count {
        let Ok(device) = nvml.device_by_index(index) else { continue };
        match device.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
            Ok(s) => {
                set = s;
                registered += 1;
            }
            Err(e) => {
                // Registering failed; the set is gone with it, so start a new one.
                tracing::debug!(gpu = index, error = %e.error, "xid events not supported");
                match nvml.create_event_set() {
                    Ok(s) => set = s,
                    Err(_) => return,
                }
            }
        }
    }
    let _ = ready.send(if registered > 0 || count == 0 {
        Ok(())
    } else {
        Err(GpuError::Failed("no gpu supports xid events".into()))
    });
    while !stop.load(Ordering::Relaxed) {
        match set.wait(500) {
            Ok(event) => {
                let Some(xid) = event.event_data else { continue };
                let index = event.device.index().unwrap_or(u32::MAX);
                let gpu = GpuIdentity {
                    index,
                    uuid: event.device.uuid().unwrap_or_default(),
                    name: event.device.name().unwrap_or_default(),
                };
                let xid = match xid {
                    nvml_wrapper::enums::event::XidError::Value(v) => v,
                    nvml_wrapper::enums::event::XidError::Unknown => 0,
                };
                handler(XidEvent { gpu, xid });
            }
            Err(NvmlError::Timeout) => {}
            Err(e) => {
                tracing::warn!(error = %e, "nvml event wait failed; xid counting stops");
                return;
            }
        }
    }
}
