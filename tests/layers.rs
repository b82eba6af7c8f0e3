//! The dependency rule of ARCHITECTURE.md: a module of `src/` imports only from modules whose
//! order number is the same or smaller. The table in ARCHITECTURE.md is the source; every module
//! must be listed there, and every `crate::` path of every file is checked against it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `module` → order, from the table rows "| `module` | order | ... |".
fn table() -> BTreeMap<String, u32> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let module = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((module.to_string(), cells.get(2)?.parse().ok()?))
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/engine/image.rs` → `engine::image`; `src/msg/mod.rs` → `msg`; `None` for the crate
/// root and the binaries.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root().join("src")).unwrap();
    let parts: Vec<String> = rel.with_extension("").iter().map(|s| s.to_string_lossy().into_owned()).collect();
    match parts.as_slice() {
        [lib] if lib == "lib" => None,
        [bin, ..] if bin == "bin" => None,
        [a, m] if m == "mod" => Some(a.clone()),
        parts => Some(parts.join("::")),
    }
}

/// The listed module a path `crate::a::b::...` refers to: the longest listed prefix.
fn target_of(path: &str, table: &BTreeMap<String, u32>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len().min(2)).rev().map(|n| segs[..n].join("::")).find(|m| table.contains_key(m))
}

/// Every `crate::x::y` path in a file (also inside `use crate::{...}` groups, which `src/` does
/// not use: they are refused so that nothing escapes the check).
fn crate_paths(text: &str) -> Vec<String> {
    assert!(!text.contains("crate::{"), "use crate::{{...}} groups hide imports from tests/layers.rs");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let tail = &rest[i + "crate::".len()..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
        out.push(tail[..end].trim_end_matches(':').to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn no_module_imports_a_higher_layer() {
    let table = table();
    assert!(table.len() > 20, "ARCHITECTURE.md's module table was not found");
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else { continue };
        // A folder's mod.rs (only `pub mod` lines) sits below everything in the folder.
        let folder = table.iter().filter(|(m, _)| m.starts_with(&format!("{module}::"))).map(|(_, &o)| o).min();
        let Some(own) = table.get(&module).copied().or(folder) else {
            violations.push(format!("{module} ({}) is not in ARCHITECTURE.md", file.display()));
            continue;
        };
        for path in crate_paths(&std::fs::read_to_string(file).unwrap()) {
            match target_of(&path, &table) {
                Some(t) if table[&t] > own => {
                    violations.push(format!("{module} (order {own}) uses crate::{path} ({t}, order {})", table[&t]))
                }
                Some(_) => {}
                // Crate-root items: the re-exports in lib.rs point back into the layers.
                None if ["Error", "Result", "Params", "Settings", "Pipeline", "Resolution", "Segmentation"]
                    .contains(&path.split("::").next().unwrap_or("")) =>
                {
                    violations.push(format!("{module} uses the re-export crate::{path}; name its module"))
                }
                None => violations.push(format!("{module}: crate::{path} is in no listed module")),
            }
        }
    }
    assert!(violations.is_empty(), "dependency rule broken:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_a_back_edge() {
    let table = table();
    let engine = table["engine::model"];
    let higher = target_of("eval::replay::run", &table).unwrap();
    assert!(table[&higher] > engine);
    assert_eq!(
        crate_paths("use crate::eval::replay::run;\nlet x = crate::num::short(1.0);"),
        ["eval::replay::run", "num::short"]
    );
    assert_eq!(module_of(&root().join("src/msg/mod.rs")).as_deref(), Some("msg"));
    assert_eq!(module_of(&root().join("src/engine/image.rs")).as_deref(), Some("engine::image"));
}
