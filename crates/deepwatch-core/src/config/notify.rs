//! The `[notify]` section of `deepwatch.toml`.

use super::{Path, Problems};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {}

impl NotifyConfig {
    pub fn validate(&self, _path: &Path, _problems: &mut Problems) {}
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
[notify]
"#;
