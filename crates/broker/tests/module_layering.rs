//! The broker crate's modules form layers: a module may use the modules below it, never one
//! that (directly or through others) uses it back. A module and its own submodules (`api`
//! and `api/produce.rs`, `group` and `group/state.rs`) count as one. The test reads the
//! sources, so a new back edge fails here, naming the cycle, before it grows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a source file belongs to (`api/produce.rs` -> `api`).
fn module_of(rel: &Path) -> String {
    let first = rel.components().next().expect("a file under src");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// Every `crate::name` a source file refers to, also inside `use crate::{a, b::c}` groups.
fn crate_refs(source: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                if let Some(name) = leading_ident(item.trim()) {
                    refs.insert(name);
                }
            }
        } else if let Some(name) = leading_ident(rest) {
            refs.insert(name);
        }
    }
    refs
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn leading_ident(s: &str) -> Option<String> {
    let ident: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty() && ident.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .then_some(ident)
}

/// module -> the other modules it refers to.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let rel = path.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") {
            continue; // the crate root declares and re-exports; it is not a layer
        }
        let module = module_of(rel);
        let refs = crate_refs(&std::fs::read_to_string(&path).unwrap());
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(refs.into_iter().filter(|r| *r != module));
    }
    graph
}

/// The cycles of the graph: its strongly connected components with more than one module.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    // Reachability by depth-first search from each module: small graph, simple code.
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for d in graph.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for (m, r) in &reaches {
        let scc: BTreeSet<String> = r
            .iter()
            .filter(|o| reaches.get(o).is_some_and(|back| back.contains(*m)))
            .cloned()
            .chain(std::iter::once((*m).clone()))
            .collect();
        if scc.len() > 1 && !out.contains(&scc) {
            out.push(scc);
        }
    }
    out
}

#[test]
fn the_broker_modules_have_no_import_cycle() {
    let graph = module_graph();
    assert!(
        graph.contains_key("api") && graph.contains_key("group"),
        "read the sources: {graph:?}"
    );
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "import cycles between broker modules: {found:?}\nedges: {graph:#?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let mut graph = module_graph();
    // A coordinator that reached back into the request layer, as `group` once did.
    graph.get_mut("group").unwrap().insert("api".to_string());
    let found = cycles(&graph);
    assert!(
        found
            .iter()
            .any(|c| c.contains("group") && c.contains("api")),
        "{found:?}"
    );
    assert_eq!(
        crate_refs("use crate::{a::B, b, c::{d, e}};\nlet x = crate::f::g();"),
        ["a", "b", "c", "f"].map(String::from).into()
    );
}
