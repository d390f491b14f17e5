//! Live metric families for components that count events as they happen (gateway, analyzer,
//! lab). Each family is built from its catalog spec, keeps one atomic cell per label set and
//! renders into a `MetricSink`. Hot paths fetch a label set's handle once and reuse it.

use crate::catalog::{MetricSpec, MetricType};
use crate::expo::MetricSink;
use hashbrown::{Equivalent, HashMap};
use parking_lot::RwLock;
use std::hash::{Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An `f64` stored in an `AtomicU64`.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub fn new(v: f64) -> Self {
        AtomicF64(AtomicU64::new(v.to_bits()))
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn add(&self, delta: f64) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + delta).to_bits();
            match self.0.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

/// Something that writes its current values into a sink at scrape time.
pub trait Encode: Send + Sync {
    fn encode(&self, sink: &mut MetricSink);
}

type LabelKey = Box<[String]>;

fn key_of(label_values: &[&str]) -> LabelKey {
    label_values.iter().map(|s| s.to_string()).collect()
}

/// Label values looked up without building a `LabelKey`: a lookup of an existing series
/// allocates nothing (the request path does several per request). Hashes exactly as the
/// stored `[String]` does (length, then each `str`).
struct Lookup<'a>(&'a [&'a str]);

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Equivalent<LabelKey> for Lookup<'_> {
    fn equivalent(&self, key: &LabelKey) -> bool {
        key.len() == self.0.len() && key.iter().zip(self.0).all(|(k, v)| k == v)
    }
}

type LabelMap<T> = HashMap<LabelKey, Arc<T>, RandomState>;

struct Cells<T> {
    spec: &'static MetricSpec,
    cells: RwLock<LabelMap<T>>,
}

impl<T: Default> Cells<T> {
    fn new(spec: &'static MetricSpec) -> Self {
        Cells { spec, cells: RwLock::new(LabelMap::default()) }
    }

    fn get(&self, label_values: &[&str]) -> Arc<T> {
        debug_assert_eq!(
            self.spec.labels.len(),
            label_values.len(),
            "labels of {}",
            self.spec.name
        );
        if let Some(cell) = self.cells.read().get(&Lookup(label_values)) {
            return cell.clone();
        }
        self.cells.write().entry(key_of(label_values)).or_default().clone()
    }

    fn remove(&self, label_values: &[&str]) {
        self.cells.write().remove(&Lookup(label_values));
    }

    fn sorted(&self) -> Vec<(LabelKey, Arc<T>)> {
        let mut all: Vec<_> =
            self.cells.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

fn as_strs(key: &LabelKey) -> Vec<&str> {
    key.iter().map(String::as_str).collect()
}

/// A monotonically increasing counter family.
pub struct CounterVec(Cells<AtomicF64>);

/// Handle to one label set of a counter.
#[derive(Clone)]
pub struct Counter(Arc<AtomicF64>);

impl Counter {
    pub fn inc(&self) {
        self.0.add(1.0);
    }
    pub fn inc_by(&self, v: f64) {
        debug_assert!(v >= 0.0, "counters only go up");
        self.0.add(v);
    }
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

impl CounterVec {
    pub fn new(spec: &'static MetricSpec) -> Self {
        assert_eq!(spec.kind, MetricType::Counter, "{} is not a counter", spec.name);
        CounterVec(Cells::new(spec))
    }
    pub fn with(&self, label_values: &[&str]) -> Counter {
        Counter(self.0.get(label_values))
    }
    pub fn inc(&self, label_values: &[&str]) {
        self.with(label_values).inc();
    }
    pub fn inc_by(&self, label_values: &[&str], v: f64) {
        self.with(label_values).inc_by(v);
    }
    pub fn get(&self, label_values: &[&str]) -> f64 {
        self.with(label_values).get()
    }
    /// Sum over every label set.
    pub fn total(&self) -> f64 {
        self.0.cells.read().values().map(|c| c.get()).sum()
    }
}

impl Encode for CounterVec {
    fn encode(&self, sink: &mut MetricSink) {
        sink.declare(self.0.spec);
        for (key, cell) in self.0.sorted() {
            sink.counter(self.0.spec, &as_strs(&key), cell.get());
        }
    }
}

/// A gauge family.
pub struct GaugeVec(Cells<AtomicF64>);

/// Handle to one label set of a gauge.
#[derive(Clone)]
pub struct Gauge(Arc<AtomicF64>);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }
    pub fn add(&self, v: f64) {
        self.0.add(v);
    }
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

impl GaugeVec {
    pub fn new(spec: &'static MetricSpec) -> Self {
        assert!(
            matches!(spec.kind, MetricType::Gauge | MetricType::Info),
            "{} is not a gauge",
            spec.name
        );
        GaugeVec(Cells::new(spec))
    }
    pub fn with(&self, label_values: &[&str]) -> Gauge {
        Gauge(self.0.get(label_values))
    }
    pub fn set(&self, label_values: &[&str], v: f64) {
        self.with(label_values).set(v);
    }
    pub fn get(&self, label_values: &[&str]) -> f64 {
        self.with(label_values).get()
    }
    /// Drops a label set, for series whose subject went away (a removed upstream, a gone GPU).
    pub fn remove(&self, label_values: &[&str]) {
        self.0.remove(label_values);
    }
}

impl Encode for GaugeVec {
    fn encode(&self, sink: &mut MetricSink) {
        sink.declare(self.0.spec);
        for (key, cell) in self.0.sorted() {
            sink.gauge(self.0.spec, &as_strs(&key), cell.get());
        }
    }
}

/// Per-label-set histogram state: one counter per bucket (not cumulative), a sum and a count.
pub struct HistogramCell {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    sum: AtomicF64,
    count: AtomicU64,
}

impl HistogramCell {
    fn new(bounds: &'static [f64]) -> Self {
        HistogramCell {
            bounds,
            buckets: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        // First bucket whose upper bound is >= v; values above every bound only reach +Inf.
        let i = self.bounds.partition_point(|b| *b < v);
        if i < self.buckets.len() {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(v);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        self.sum.get()
    }

    /// Cumulative counts per bound, as exposed.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.buckets
            .iter()
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect()
    }
}

/// A histogram family with the catalog's bucket layout.
pub struct HistogramVec {
    spec: &'static MetricSpec,
    cells: RwLock<LabelMap<HistogramCell>>,
}

/// Handle to one label set of a histogram.
#[derive(Clone)]
pub struct Histogram(Arc<HistogramCell>);

impl Histogram {
    pub fn observe(&self, v: f64) {
        self.0.observe(v);
    }
    pub fn count(&self) -> u64 {
        self.0.count()
    }
    pub fn sum(&self) -> f64 {
        self.0.sum()
    }
    pub fn cumulative(&self) -> Vec<u64> {
        self.0.cumulative()
    }
}

impl HistogramVec {
    pub fn new(spec: &'static MetricSpec) -> Self {
        assert_eq!(spec.kind, MetricType::Histogram, "{} is not a histogram", spec.name);
        HistogramVec { spec, cells: RwLock::new(LabelMap::default()) }
    }

    pub fn with(&self, label_values: &[&str]) -> Histogram {
        debug_assert_eq!(
            self.spec.labels.len(),
            label_values.len(),
            "labels of {}",
            self.spec.name
        );
        if let Some(cell) = self.cells.read().get(&Lookup(label_values)) {
            return Histogram(cell.clone());
        }
        let spec = self.spec;
        Histogram(
            self.cells
                .write()
                .entry(key_of(label_values))
                .or_insert_with(|| Arc::new(HistogramCell::new(spec.buckets)))
                .clone(),
        )
    }

    pub fn observe(&self, label_values: &[&str], v: f64) {
        self.with(label_values).observe(v);
    }
}

impl Encode for HistogramVec {
    fn encode(&self, sink: &mut MetricSink) {
        sink.declare(self.spec);
        let mut all: Vec<_> =
            self.cells.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, cell) in all {
            sink.histogram(self.spec, &as_strs(&key), &cell.cumulative(), cell.sum(), cell.count());
        }
    }
}

/// An ordered list of encodable families, rendered together on `/metrics`.
#[derive(Default, Clone)]
pub struct Registry {
    parts: Vec<Arc<dyn Encode>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }
    pub fn register(&mut self, part: Arc<dyn Encode>) {
        self.parts.push(part);
    }
    pub fn encode(&self, sink: &mut MetricSink) {
        for part in &self.parts {
            part.encode(sink);
        }
    }
    pub fn render(&self, format: crate::expo::Format) -> String {
        let mut sink = MetricSink::new(format);
        self.encode(&mut sink);
        sink.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::common::{COLLECTOR_DURATION, COLLECTOR_UP};
    use crate::expo::Format;
    use std::hash::BuildHasher;

    /// A lookup by borrowed values must hash like the stored key, or every request would
    /// miss the read path and take the write lock.
    #[test]
    fn borrowed_lookup_hashes_and_compares_like_the_stored_key() {
        let s = RandomState::new();
        let key = key_of(&["a", "bc", ""]);
        assert_eq!(s.hash_one(&key), s.hash_one(Lookup(&["a", "bc", ""])));
        assert!(Lookup(&["a", "bc", ""]).equivalent(&key));
        assert!(!Lookup(&["ab", "c", ""]).equivalent(&key));
        assert!(!Lookup(&["a", "bc"]).equivalent(&key));
        let g = GaugeVec::new(&COLLECTOR_UP);
        g.with(&["x"]).add(1.0);
        g.with(&["x"]).add(1.0);
        assert_eq!(g.with(&["x"]).get(), 2.0);
        assert_eq!(g.0.cells.read().len(), 1);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_is_count() {
        let h = HistogramVec::new(&COLLECTOR_DURATION);
        let handle = h.with(&["gpu"]);
        handle.observe(0.0001); // on the first edge
        handle.observe(0.003);
        handle.observe(100.0); // above every edge
        let cumulative = handle.cumulative();
        assert_eq!(cumulative[0], 1);
        assert_eq!(cumulative[cumulative.len() - 1], 2);
        assert_eq!(handle.count(), 3);
        let mut sink = MetricSink::new(Format::Text004);
        h.encode(&mut sink);
        let text = sink.render();
        assert!(text.contains("le=\"0.0001\"} 1\n"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("deepwatch_collector_duration_seconds_count{collector=\"gpu\"} 3\n"));
    }

    #[test]
    fn gauges_and_counters_keep_label_sets_apart() {
        let g = GaugeVec::new(&COLLECTOR_UP);
        g.set(&["a"], 1.0);
        g.set(&["b"], 0.0);
        g.with(&["a"]).add(2.0);
        assert_eq!(g.get(&["a"]), 3.0);
        g.remove(&["b"]);
        let mut sink = MetricSink::new(Format::Text004);
        g.encode(&mut sink);
        let text = sink.render();
        assert!(text.contains("collector=\"a\"} 3"));
        assert!(!text.contains("collector=\"b\""));
    }

    #[test]
    fn atomic_add_is_exact_under_contention() {
        let cell = Arc::new(AtomicF64::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = cell.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| c.add(1.0)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(cell.get(), 40_000.0);
    }
}
