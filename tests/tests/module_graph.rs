//! cm-core's modules import each other without a cycle (ARCHITECTURE.md: no module import
//! cycles; quoting lives in the bottom-level `quote`, which imports nothing of the crate).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a file belongs to (`copy/sys.rs` -> `copy`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// module -> the modules its code (not its comments) names as `crate::NAME`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = cm_tests::repo_root().join("crates/cm-core/src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in all {
        let m = module_of(&src, &f);
        if m == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // unit tests may reach anywhere; only the module's own code counts
        let code = text.split("#[cfg(test)]").next().unwrap();
        let deps = g.entry(m.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + 7..];
                // `crate::{a, b::c}` names each of a and b
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group.split('}').next().unwrap().split(',').collect(),
                    None => vec![rest],
                };
                for n in names {
                    let name: String = n
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != m {
                        deps.insert(name);
                    }
                }
            }
        }
    }
    g
}

#[test]
fn cm_core_modules_import_each_other_without_a_cycle() {
    let g = graph();
    assert!(g.contains_key("quote") && g.contains_key("tree"), "{g:?}");
    assert!(
        g["quote"].is_empty(),
        "quote is the bottom: {:?}",
        g["quote"]
    );
    // depth-first search; a module met again on the current path is a cycle
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            visit(d, g, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        visit(m, &g, &mut Vec::new(), &mut done);
    }
}
