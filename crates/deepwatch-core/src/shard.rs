//! Sharding a fleet between analyzers: `analyzer.shard = "i/n"` makes this analyzer the `i`-th
//! of `n`. Everything the analyzer could do twice is owned by exactly one shard, by a hash that
//! every process computes the same way (FNV-1a 64, not Rust's per-process `RandomState`):
//! baselined series by their identity, alerts by fingerprint, notifications by group key.
//! Fleet-wide singletons (probes, capacity plans, drift) run on shard 0, the leader.

use std::fmt;

/// This analyzer's part of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based, below `count`.
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    /// One analyzer owning everything.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Parses `"i/n"` (`0 <= i < n`); the empty string is `0/1`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        if text.trim().is_empty() {
            return Ok(Shard::default());
        }
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("must be \"index/count\" such as \"0/2\", got {text:?}"))?;
        let index: u32 = i.trim().parse().map_err(|_| format!("index {i:?} is not a number"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("count {n:?} is not a number"))?;
        if count == 0 {
            return Err("count must be at least 1".into());
        }
        if index >= count {
            return Err(format!("index must be below the count ({index} is not below {count})"));
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard owns `key`.
    pub fn owns(&self, key: &str) -> bool {
        self.count <= 1 || fnv1a(key.as_bytes()) % self.count as u64 == self.index as u64
    }

    /// Whether this shard owns the thing identified by these parts (joined unambiguously).
    pub fn owns_parts<'a>(&self, parts: impl IntoIterator<Item = &'a str>) -> bool {
        if self.count <= 1 {
            return true;
        }
        let mut key = String::new();
        for p in parts {
            key.push_str(p);
            key.push('\u{ff}');
        }
        self.owns(&key)
    }

    /// Shard 0 runs what must run once per fleet.
    pub fn is_leader(&self) -> bool {
        self.index == 0
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_exactly_one_owner_and_shards_are_balanced() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut per_shard = [0usize; 3];
        for node in 0..3000 {
            let key = format!("gpu_memory_used\u{ff}node-{node}:9844/{}", node % 8);
            let owners: Vec<usize> = (0..3).filter(|i| shards[*i].owns(&key)).collect();
            assert_eq!(owners.len(), 1, "{key}");
            per_shard[owners[0]] += 1;
        }
        for n in per_shard {
            assert!((900..=1100).contains(&n), "{per_shard:?}");
        }
    }

    #[test]
    fn the_hash_is_stable_across_processes() {
        // FNV-1a 64 of "a": a fixed value, so two analyzers (or two versions) agree.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn bad_shards_are_explained() {
        assert_eq!(Shard::parse("").unwrap(), Shard::default());
        assert_eq!(Shard::parse("1/2").unwrap(), Shard { index: 1, count: 2 });
        assert!(Shard::parse("2/2").unwrap_err().contains("below the count"));
        assert!(Shard::parse("0/0").unwrap_err().contains("at least 1"));
        assert!(Shard::parse("half").unwrap_err().contains("index/count"));
        assert!(Shard::parse("x/2").unwrap_err().contains("not a number"));
    }
}
