//! The source tree keeps the shape ARCHITECTURE.md promises: within each crate, no import circle
//! between source files. A file's references to another file (`crate::a::b`, `super::x`,
//! `self::y`, brace groups included; comments and `#[cfg(test)]` modules left out) are its
//! edges; a child module using its parent's items does not count, so `foo/bar.rs` may name
//! `super::Thing` from `foo/mod.rs`, but `foo/mod.rs` and `foo/baz.rs` naming each other's items
//! is a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module by its path from the crate root (`[]` is `lib.rs` / `main.rs`).
type Module = Vec<String>;

/// Every import circle of the crate whose `src/` is `src`, each as its files' module paths.
fn circles(src: &Path) -> Vec<Vec<String>> {
    let mut files = BTreeMap::new();
    collect(src, src, &mut files);
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, path) in &files {
        let text = without_tests(&without_comments(&std::fs::read_to_string(path).unwrap()));
        let targets = edges.entry(module.clone()).or_default();
        for reference in references(&text) {
            let Some(target) = resolve(module, &reference, &modules) else { continue };
            // A module naming itself or one of its ancestors is no edge.
            if !module.starts_with(&target) {
                targets.insert(target);
            }
        }
    }
    strongly_connected(&edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            c.into_iter().map(|m| if m.is_empty() { "lib".into() } else { m.join("/") }).collect()
        })
        .collect()
}

fn collect(src: &Path, dir: &Path, files: &mut BTreeMap<Module, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(src, &path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut module: Module = path
                .strip_prefix(src)
                .unwrap()
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            // Unit-test files (`foo/tests.rs`) may use anything of their parent's family.
            if module.last().is_some_and(|m| m == "tests") {
                continue;
            }
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            if module.len() == 1 && (module[0] == "lib" || module[0] == "main") {
                module.clear();
            }
            files.insert(module, path);
        }
    }
}

fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.find("//").map_or(line, |i| &line[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text with every `#[cfg(test)]` item (a module or a function) cut out.
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let (brace, semi) = (after.find('{'), after.find(';'));
        match (brace, semi) {
            (Some(b), s) if s.is_none_or(|s| b < s) => {
                let mut depth = 0;
                let mut end = after.len();
                for (i, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            (_, Some(s)) => rest = &after[s + 1..],
            _ => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// Every path that starts with `crate`, `super` or `self`, brace groups expanded.
fn references(text: &str) -> Vec<Vec<String>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(root) {
            let at = from + i;
            from = at + root.len();
            let before = at.checked_sub(1).map(|i| bytes[i]);
            if before
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b':')
            {
                continue;
            }
            let head = vec![root.trim_end_matches(':').to_string()];
            found.extend(path_tail(&text[at + root.len()..], head));
        }
    }
    found
}

/// The paths `head::<rest>` names, where `rest` follows a `::`.
fn path_tail(rest: &str, head: Vec<String>) -> Vec<Vec<String>> {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 1;
        let mut end = group.len();
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        return split_top_level(&group[..end])
            .into_iter()
            .flat_map(|item| path_tail(item, head.clone()))
            .collect();
    }
    let ident: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if ident.is_empty() {
        return vec![head];
    }
    let mut path = head;
    path.push(ident.clone());
    match rest[ident.len()..].trim_start().strip_prefix("::") {
        Some(more) => path_tail(more, path),
        None => vec![path],
    }
}

fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// The file a path from `module` lands in: the longest prefix that is a module file.
fn resolve(module: &Module, path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let mut full: Module = match path[0].as_str() {
        "crate" => Vec::new(),
        "self" => module.clone(),
        _ => module[..module.len().saturating_sub(1)].to_vec(),
    };
    let mut segments = &path[1..];
    while segments.first().is_some_and(|s| s == "super") {
        full.pop();
        segments = &segments[1..];
    }
    full.extend(segments.iter().filter(|s| *s != "self").cloned());
    (0..=full.len()).rev().map(|n| full[..n].to_vec()).find(|m| modules.contains(m))
}

/// Tarjan's strongly connected components.
fn strongly_connected(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, (usize, usize)>,
        stack: Vec<&'a Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        s.index.insert(v, (s.next, s.next));
        s.next += 1;
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let Some((w, _)) = s.edges.get_key_value(w) else { continue };
            match s.index.get(w).copied() {
                None => {
                    visit(s, w);
                    let low = s.index[w].1.min(s.index[v].1);
                    s.index.get_mut(v).unwrap().1 = low;
                }
                Some((w_index, _)) if s.stack.contains(&w) => {
                    let low = w_index.min(s.index[v].1);
                    s.index.get_mut(v).unwrap().1 = low;
                }
                Some(_) => {}
            }
        }
        let (index, low) = s.index[v];
        if index == low {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut state =
        State { edges, index: BTreeMap::new(), stack: Vec::new(), next: 0, out: Vec::new() };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.out
}

#[test]
fn no_crate_has_an_import_circle_between_its_files() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut problems = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            checked += 1;
            for circle in circles(&src) {
                problems.push(format!("{}: {}", src.display(), circle.join(" <-> ")));
            }
        }
    }
    assert!(checked >= 7, "found only {checked} crates under {}", crates.display());
    assert!(problems.is_empty(), "import circles:\n{}", problems.join("\n"));
}

#[test]
fn the_circle_check_sees_circles_and_lets_children_use_their_parent() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |name: &str, text: &str| {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub struct Root;\n");
    // a <-> b through a brace group and a `super::` path; c uses only its parent.
    write("a.rs", "use crate::{b::{Thing, other}, Root};\npub struct A;\n");
    write("b.rs", "pub struct Thing;\nfn f() -> super::a::A { todo!() }\n");
    write("c/mod.rs", "pub mod d;\npub struct C;\n// crate::a::A in a comment is no edge\n");
    write(
        "c/d.rs",
        "use super::C;\nuse crate::Root;\n#[cfg(test)]\nmod tests { use crate::c::C; }\n",
    );
    let sorted = |mut found: Vec<Vec<String>>| {
        found.iter_mut().for_each(|c| c.sort());
        found
    };
    assert_eq!(sorted(circles(src)), vec![vec!["a".to_string(), "b".to_string()]]);
    // A test module's use is no edge either.
    write(
        "c/mod.rs",
        "pub mod d;\npub struct C;\n#[cfg(test)]\nmod tests { use crate::c::d::X; }\n",
    );
    write("c/d.rs", "use crate::c::C;\npub struct X;\n");
    assert_eq!(circles(src).len(), 1);
    // A parent may use its child while the child uses the parent's items.
    write("c/mod.rs", "pub mod d;\npub struct C;\nuse self::d::X;\n");
    assert_eq!(circles(src).len(), 1);
    // Two siblings under one parent are a circle.
    write("c/e.rs", "use super::d::X;\npub struct E;\n");
    write("c/d.rs", "use crate::c::e::E;\npub struct X;\n");
    assert_eq!(sorted(circles(src))[1..], [vec!["c/d".to_string(), "c/e".to_string()]]);
}
