//! `deploy/` holds the output for the default spec. Regenerating must reproduce it exactly;
//! bless with `DEEPWATCH_BLESS=1 cargo test -p deepwatch-rules --test drift`.

use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::{generate, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read_tree(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            read_tree(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            out.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

#[test]
fn deploy_matches_the_generator() {
    let generated = generate(&RulesConfig::default(), Options::default()).unwrap();
    let dir = deploy_dir();
    if std::env::var_os("DEEPWATCH_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        generated.write_to(&dir).unwrap();
        return;
    }
    let mut committed = BTreeMap::new();
    read_tree(&dir, &dir, &mut committed);
    let mut problems = Vec::new();
    for (rel, text) in &generated.files {
        match committed.get(rel) {
            None => problems.push(format!("missing: deploy/{rel}")),
            Some(old) if old != text => {
                let line = old.lines().zip(text.lines()).position(|(a, b)| a != b);
                problems.push(format!(
                    "changed: deploy/{rel} (first difference at line {})",
                    line.map_or(0, |l| l + 1)
                ));
            }
            Some(_) => {}
        }
    }
    for rel in committed.keys().filter(|k| !generated.files.contains_key(*k)) {
        problems.push(format!("stale: deploy/{rel}"));
    }
    assert!(
        problems.is_empty(),
        "deploy/ drifted from the generator; regenerate with\n  DEEPWATCH_BLESS=1 cargo test -p deepwatch-rules --test drift\n{}",
        problems.join("\n")
    );
}

#[test]
fn default_spec_generates_without_warnings() {
    let generated = generate(&RulesConfig::default(), Options::default()).unwrap();
    assert!(generated.warnings.is_empty(), "{:?}", generated.warnings);
}
