//! An ordered YAML value and its rendering. Generated files keep keys in the order a human
//! expects (`alert`, `expr`, `for`, `labels`, ...), which serde_json's sorted maps cannot, and
//! rendering goes through serde-saphyr so quoting is always correct.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// A YAML node whose maps keep insertion order.
#[derive(Debug, Clone, PartialEq)]
pub enum Y {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
}

impl Y {
    /// Appends `key: value` to a map (no-op on other nodes).
    pub fn push(&mut self, key: &str, value: impl Into<Y>) {
        if let Y::Map(entries) = self {
            entries.push((key.to_string(), value.into()));
        }
    }

    /// Appends an item to a sequence (no-op on other nodes).
    pub fn push_item(&mut self, value: impl Into<Y>) {
        if let Y::Seq(items) = self {
            items.push(value.into());
        }
    }

    /// Renders as a YAML document.
    pub fn render(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# render error: {e}\n"))
    }
}

impl Serialize for Y {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Y::Null => s.serialize_unit(),
            Y::Bool(b) => s.serialize_bool(*b),
            Y::Int(i) => s.serialize_i64(*i),
            Y::Float(f) => s.serialize_f64(*f),
            Y::Str(v) => s.serialize_str(v),
            Y::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Y::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl From<&str> for Y {
    fn from(v: &str) -> Y {
        Y::Str(v.to_string())
    }
}
impl From<String> for Y {
    fn from(v: String) -> Y {
        Y::Str(v)
    }
}
impl From<&String> for Y {
    fn from(v: &String) -> Y {
        Y::Str(v.clone())
    }
}
impl From<bool> for Y {
    fn from(v: bool) -> Y {
        Y::Bool(v)
    }
}
impl From<i64> for Y {
    fn from(v: i64) -> Y {
        Y::Int(v)
    }
}
impl From<i32> for Y {
    fn from(v: i32) -> Y {
        Y::Int(v.into())
    }
}
impl From<u32> for Y {
    fn from(v: u32) -> Y {
        Y::Int(v.into())
    }
}
impl From<u64> for Y {
    fn from(v: u64) -> Y {
        Y::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<usize> for Y {
    fn from(v: usize) -> Y {
        Y::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Y {
    fn from(v: f64) -> Y {
        Y::Float(v)
    }
}
impl<T: Into<Y>> From<Vec<T>> for Y {
    fn from(v: Vec<T>) -> Y {
        Y::Seq(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Y> + Clone> From<&[T]> for Y {
    fn from(v: &[T]) -> Y {
        Y::Seq(v.iter().cloned().map(Into::into).collect())
    }
}
impl<T: Into<Y>> From<Option<T>> for Y {
    fn from(v: Option<T>) -> Y {
        v.map_or(Y::Null, Into::into)
    }
}

/// `ymap! { "key" => value, ... }`: an ordered map.
#[macro_export]
macro_rules! ymap {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::yaml::Y::Map(vec![$(($k.to_string(), $crate::yaml::Y::from($v))),*])
    };
}

/// `yseq![a, b, ...]`: a sequence of values of possibly different types.
#[macro_export]
macro_rules! yseq {
    ($($v:expr),* $(,)?) => { $crate::yaml::Y::Seq(vec![$($crate::yaml::Y::from($v)),*]) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_key_order_and_quotes_what_needs_it() {
        let doc = ymap! {
            "record" => "a:b:c",
            "expr" => "sum by (x) (rate(m[1m])) > 0",
            "labels" => ymap!{ "severity" => "critical", "yes" => "on" },
            "n" => 3,
        };
        let text = doc.render();
        let record = text.find("record").unwrap();
        let expr = text.find("expr").unwrap();
        assert!(record < expr, "{text}");
        // "on" would read back as a boolean in YAML 1.1 readers: it must be quoted.
        assert!(text.contains("'on'") || text.contains("\"on\""), "{text}");
    }
}
