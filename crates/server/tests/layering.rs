//! The layout holds: in every crate of the workspace, the top-level modules depend on each other
//! without a cycle (`crate::a` naming `crate::b` naming `crate::a` is a cycle), and the server
//! library depends on no client code. Read from the source text, so it runs without building
//! anything else: `cargo test -p carehook --test layering`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/api/webhooks.rs` → `api`), or `None` for the
/// crate root (`lib.rs`, `main.rs`), which declares every module and so depends on all.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        _ => Some(first.trim_end_matches(".rs").to_string()),
    }
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level modules a piece of code names through `crate::…` (also in grouped
/// `use crate::{a::x, b}` imports). Comment lines are passed over: a doc link is not a use.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue; // `carehook_crate::…` or the like
            }
            if let Some(group) = rest.strip_prefix('{') {
                // Top-level names of the group: split on commas outside nested braces.
                let mut depth = 0usize;
                let mut start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            start = false;
                            let name = ident_at(&group[i..]);
                            if !name.is_empty() {
                                found.insert(name);
                            }
                        }
                        _ => {}
                    }
                }
            } else {
                let name = ident_at(rest);
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// For one crate: top-level module → the other top-level modules it names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = top_module(src, file) else {
            continue;
        };
        let code = std::fs::read_to_string(file).unwrap();
        let to = edges.entry(from.clone()).or_default();
        for name in named_modules(&code) {
            if name != from && modules.contains(&name) {
                to.insert(name);
            }
        }
    }
    edges
}

/// A cycle, as the path of modules that closes it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut done, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn no_crate_has_a_cycle_between_its_modules() {
    let mut checked = 0;
    for entry in std::fs::read_dir(crates_dir()).unwrap().flatten() {
        let src = entry.path().join("src");
        if !src.is_dir() {
            continue;
        }
        let edges = graph(&src);
        if let Some(cycle) = find_cycle(&edges) {
            panic!(
                "crates/{}: the modules depend on each other in a cycle: {}",
                entry.file_name().to_string_lossy(),
                cycle.join(" → ")
            );
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} crates found");
}

#[test]
fn the_server_library_depends_on_no_client_code() {
    let manifest = std::fs::read_to_string(crates_dir().join("server/Cargo.toml")).unwrap();
    assert!(
        !manifest.contains("carehook-cli"),
        "crates/server depends on the CLI crate"
    );
    let mut files = Vec::new();
    sources(&crates_dir().join("server/src"), &mut files);
    for file in files {
        let code = std::fs::read_to_string(&file).unwrap();
        assert!(
            !code.contains("carehook_cli"),
            "{} names the CLI crate",
            file.display()
        );
    }
}

#[test]
fn the_checker_sees_imports_and_cycles() {
    let code = "use crate::{api::ApiError, store, x::{y, z}};\n// crate::ui in a comment\nlet a = crate::intake::f();";
    let names: Vec<_> = named_modules(code).into_iter().collect();
    assert_eq!(names, ["api", "intake", "store", "x"]);
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    assert_eq!(find_cycle(&edges), None);
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
}
