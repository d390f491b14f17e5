//! A scriptable stand-in for NVML, for CI and demos without GPUs: set readings, make a GPU
//! vanish or stop answering mid-run, inject XID events.

use super::*;

#[derive(Default)]
pub struct FakeGpus {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    gpus: Vec<(GpuIdentity, Result<GpuReading, GpuError>)>,
    xid_handler: Option<XidHandler>,
}

impl FakeGpus {
    /// `n` healthy GPUs with plausible H100 readings.
    pub fn healthy(n: u32) -> Arc<FakeGpus> {
        let fake = FakeGpus::default();
        {
            let mut s = fake.state.lock();
            for index in 0..n {
                s.gpus.push((
                    GpuIdentity {
                        index,
                        uuid: format!("GPU-00000000-0000-0000-0000-00000000000{index}"),
                        name: "NVIDIA H100 80GB HBM3".into(),
                    },
                    Ok(sample_reading(index)),
                ));
            }
        }
        Arc::new(fake)
    }

    pub fn set_reading(&self, index: u32, reading: GpuReading) {
        if let Some(g) = self.state.lock().gpus.iter_mut().find(|g| g.0.index == index) {
            g.1 = Ok(reading);
        }
    }

    /// The GPU still enumerates but every call fails with GPU_IS_LOST (XID 79).
    pub fn lose(&self, index: u32) {
        if let Some(g) = self.state.lock().gpus.iter_mut().find(|g| g.0.index == index) {
            g.1 = Err(GpuError::Lost { index, reason: "GPU is lost".into() });
        }
    }

    /// The GPU is no longer enumerated at all (the device count drops).
    pub fn remove(&self, index: u32) {
        self.state.lock().gpus.retain(|g| g.0.index != index);
    }

    pub fn inject_xid(&self, index: u32, xid: u64) {
        let (handler, gpu) = {
            let s = self.state.lock();
            let gpu = s.gpus.iter().find(|g| g.0.index == index).map(|g| g.0.clone());
            (s.xid_handler.clone(), gpu)
        };
        if let (Some(h), Some(gpu)) = (handler, gpu) {
            h(XidEvent { gpu, xid });
        }
    }
}

/// Readings like an H100 under moderate load.
pub fn sample_reading(index: u32) -> GpuReading {
    GpuReading {
        utilization_gpu_percent: Some(87.0),
        utilization_memory_percent: Some(41.0),
        memory_used_bytes: Some(70e9),
        memory_free_bytes: Some(10e9 + index as f64),
        memory_total_bytes: Some(80e9 + index as f64),
        temperature_celsius: Some(64.0),
        power_watts: Some(512.25),
        power_limit_watts: Some(700.0),
        sm_clock_mhz: Some(1980.0),
        memory_clock_mhz: Some(2619.0),
        throttle_reasons: vec![("sw_power_cap", true), ("hw_thermal_slowdown", false)],
        ecc_errors: vec![
            ("corrected", "volatile", 3.0),
            ("uncorrected", "volatile", 0.0),
            ("corrected", "aggregate", 12.0),
            ("uncorrected", "aggregate", 1.0),
        ],
        pcie_replays: Some(2.0),
        pcie_tx_bytes_per_second: Some(1.5e9),
        pcie_rx_bytes_per_second: Some(2.5e9),
        fan_speed_percent: None,
        processes: vec![GpuProcess { pid: 4242, name: "python3".into(), used_bytes: 69e9 }],
    }
}

impl GpuSource for FakeGpus {
    fn driver(&self) -> Result<DriverInfo, GpuError> {
        Ok(DriverInfo { driver_version: "550.54.15".into(), cuda_version: "12.4".into() })
    }

    fn device_count(&self) -> Result<u32, GpuError> {
        Ok(self.state.lock().gpus.len() as u32)
    }

    fn identity(&self, index: u32) -> Result<GpuIdentity, GpuError> {
        let s = self.state.lock();
        // Indexes shift down when a GPU is removed, as NVML's enumeration does.
        s.gpus
            .get(index as usize)
            .map(|g| g.0.clone())
            .ok_or(GpuError::Lost { index, reason: "not found".into() })
    }

    fn read(&self, index: u32, with_processes: bool) -> Result<GpuReading, GpuError> {
        let s = self.state.lock();
        let g = s
            .gpus
            .get(index as usize)
            .ok_or(GpuError::Lost { index, reason: "not found".into() })?;
        let mut r = g.1.clone()?;
        if !with_processes {
            r.processes.clear();
        }
        Ok(r)
    }

    fn watch_xid(&self, handler: XidHandler, _stop: Arc<AtomicBool>) -> Result<(), GpuError> {
        self.state.lock().xid_handler = Some(handler);
        Ok(())
    }
}

/// Fake GPUs driven from outside the process: `n` healthy GPUs whose readings a JSON file
/// overrides, read again at every scrape (`{"0": {"memory_used_bytes": 7.6e10}}`; the keys of
/// each GPU are `memory_used_bytes` and `utilization_gpu_percent`). `deepwatch agent
/// --fake-gpus N --fake-gpu-script FILE` runs on it, so a game day can leak GPU memory in a
/// live agent. A missing file means no override; an unreadable one is logged and ignored.
pub struct ScriptedGpus {
    inner: Arc<FakeGpus>,
    script: std::path::PathBuf,
}

impl ScriptedGpus {
    pub fn new(n: u32, script: std::path::PathBuf) -> Arc<ScriptedGpus> {
        Arc::new(ScriptedGpus { inner: FakeGpus::healthy(n), script })
    }

    fn overrides(&self, index: u32) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(&self.script).ok()?;
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(doc) => doc.get(index.to_string()).cloned(),
            Err(e) => {
                tracing::warn!(file = %self.script.display(), error = %e, "fake gpu script unreadable");
                None
            }
        }
    }
}

impl GpuSource for ScriptedGpus {
    fn driver(&self) -> Result<DriverInfo, GpuError> {
        self.inner.driver()
    }

    fn device_count(&self) -> Result<u32, GpuError> {
        self.inner.device_count()
    }

    fn identity(&self, index: u32) -> Result<GpuIdentity, GpuError> {
        self.inner.identity(index)
    }

    fn read(&self, index: u32, with_processes: bool) -> Result<GpuReading, GpuError> {
        let mut r = self.inner.read(index, with_processes)?;
        let Some(o) = self.overrides(index) else { return Ok(r) };
        if let Some(used) = o["memory_used_bytes"].as_f64() {
            let total = r.memory_total_bytes.unwrap_or(used);
            r.memory_used_bytes = Some(used);
            r.memory_free_bytes = Some((total - used).max(0.0));
            for p in &mut r.processes {
                p.used_bytes = used;
            }
        }
        if let Some(util) = o["utilization_gpu_percent"].as_f64() {
            r.utilization_gpu_percent = Some(util);
        }
        Ok(r)
    }

    fn watch_xid(&self, handler: XidHandler, stop: Arc<AtomicBool>) -> Result<(), GpuError> {
        self.inner.watch_xid(handler, stop)
    }
}

#[cfg(test)]
mod scripted_tests {
    use super::*;

    #[test]
    fn a_script_file_overrides_memory_at_every_read() {
        let dir = std::env::temp_dir().join(format!("dw-scripted-gpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("gpus.json");
        let gpus = ScriptedGpus::new(2, script.clone());
        let before = gpus.read(0, true).unwrap();
        assert_eq!(before.memory_used_bytes, Some(70e9), "no file: the healthy reading");
        std::fs::write(&script, r#"{"0": {"memory_used_bytes": 7.9e10}}"#).unwrap();
        let r = gpus.read(0, true).unwrap();
        assert_eq!(r.memory_used_bytes, Some(7.9e10));
        assert_eq!(r.memory_free_bytes, Some(80e9 - 7.9e10));
        assert_eq!(gpus.read(1, true).unwrap().memory_used_bytes, Some(70e9), "gpu 1 untouched");
        std::fs::write(&script, "not json").unwrap();
        assert_eq!(gpus.read(0, true).unwrap().memory_used_bytes, Some(70e9));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
