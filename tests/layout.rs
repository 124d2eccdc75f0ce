//! The house rules of `src/`, checked on every test run: no import circle between files, few files
//! loose at the top, and every folder says what it owns.
//!
//! An import is any `crate::`, `super::` or `self::` path in a file (tests included: a circle
//! through a test module is still a circle), resolved to the deepest module it names, plus a
//! folder's `mod.rs` naming its children (`mod x;`). Files are modules: `a/b.rs` is `a::b`,
//! `a/mod.rs` is `a`; a file's inline `mod tests { ... }` is its child (its `super` is the file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module name -> (file, is a folder's mod.rs).
fn modules(root: &Path) -> BTreeMap<String, (PathBuf, bool)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let is_dir = parts.last().is_some_and(|p| p == "mod");
            if is_dir {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            out.insert(parts.join("::"), (path, is_dir));
        }
    }
    out
}

/// The code of a file without its `//` comments.
fn code(text: &str) -> String {
    text.lines().map(|l| l.split_once("//").map_or(l, |(c, _)| c)).collect::<Vec<_>>().join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts with `crate`, `super` or `self` in `src`, with the names inside a
/// following `{...}` group appended one by one (`crate::a::{b, c::D}` gives `crate::a::b`,
/// `crate::a::c`).
fn paths(src: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        if (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) || !is_ident(chars[i]) {
            i += 1;
            continue;
        }
        let mut segs = vec![];
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            segs.push(chars[start..j].iter().collect::<String>());
            if j + 2 < chars.len() && chars[j] == ':' && chars[j + 1] == ':' && is_ident(chars[j + 2]) {
                j += 2;
            } else {
                break;
            }
        }
        let group = chars.get(j..j + 3) == Some(&[':', ':', '{']);
        if matches!(segs[0].as_str(), "crate" | "super" | "self") && (segs.len() > 1 || group) {
            if group {
                let close = chars[j..].iter().position(|&c| c == '}').map_or(chars.len(), |p| j + p);
                let group: String = chars[j + 3..close].iter().collect();
                for item in group.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").split_whitespace().next().unwrap_or("");
                    if !first.is_empty() && first != "self" && first.chars().all(is_ident) {
                        let mut p = segs.clone();
                        p.push(first.to_string());
                        out.push(p);
                    }
                }
            }
            if segs.len() > 1 {
                out.push(segs);
            }
        }
        i = j.max(i + 1);
    }
    out
}

/// The module a path names, from module `from`: the deepest existing module along it.
fn resolve(mods: &BTreeMap<String, (PathBuf, bool)>, from: &str, path: &[String]) -> Option<String> {
    let mut full: Vec<&str> = if from.is_empty() { vec![] } else { from.split("::").collect() };
    let mut rest = path;
    match path[0].as_str() {
        "crate" => {
            full.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        _ => {
            while rest.first().is_some_and(|s| s == "super") {
                full.pop();
                rest = &rest[1..];
            }
        }
    }
    full.extend(rest.iter().map(String::as_str));
    (1..=full.len()).rev().map(|n| full[..n].join("::")).find(|m| mods.contains_key(m))
}

/// File-level import edges of the tree at `root`.
fn edges(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(root);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, (file, is_dir)) in &mods {
        let text = code(&std::fs::read_to_string(file).unwrap());
        let set = out.entry(name.clone()).or_default();
        // A file's inline `mod tests { ... }` is a child module: its `super` is the file.
        let (body, tests) = match text.find("mod tests {") {
            Some(at) => text.split_at(at),
            None => (text.as_str(), ""),
        };
        let inner = format!("{name}::tests");
        let found = paths(body).into_iter().map(|p| (name.as_str(), p));
        for (from, p) in found.chain(paths(tests).into_iter().map(|p| (inner.as_str(), p))) {
            if let Some(to) = resolve(&mods, from, &p) {
                // A module's own children are not an import of something above it.
                if to != *name && !name.starts_with(&format!("{to}::")) {
                    set.insert(to);
                }
            }
        }
        if *is_dir {
            for line in text.lines() {
                let l = line.trim_start().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
                if let Some(child) = l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                    let child = format!("{name}::{}", child.trim());
                    if mods.contains_key(&child) {
                        set.insert(child);
                    }
                }
            }
        }
    }
    out
}

/// The import circles: strongly connected components of more than one module (Tarjan).
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = vec![];
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: vec![], on: BTreeSet::new(), out: vec![] };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn src_has_no_import_circle() {
    let g = edges(&src());
    assert!(g.len() > 50, "the walk found too few modules ({}): is src/ where it should be?", g.len());
    let found = circles(&g);
    assert!(found.is_empty(), "import circles in src/ (break each by moving a type down): {found:#?}");
}

#[test]
fn few_files_stand_loose_at_the_top_of_src() {
    let loose: Vec<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        loose.len() <= 12,
        "{} files directly in src/ (at most 12; put each in the folder of its concern): {loose:?}",
        loose.len()
    );
}

#[test]
fn every_folder_says_what_it_owns() {
    for (name, (file, is_dir)) in modules(&src()) {
        if is_dir {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                text.starts_with("//!"),
                "{name} ({}) opens without a //! line saying what it owns",
                file.display()
            );
        }
    }
}

/// The check itself can fail: a circle through a `use`, a `{...}` group and a `super::` path in
/// a small tree written here is found, and breaking it clears it.
#[test]
fn a_circle_is_found_and_its_break_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let w = |p: &str, t: &str| {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, t).unwrap();
    };
    w("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n");
    w(
        "a.rs",
        "use crate::b::Thing; // crate::c in a comment is not an import\nmod tests {\n    use super::Thing;\n}\n",
    );
    w("b/mod.rs", "//! b\nmod inner;\npub struct Thing;\n");
    w("b/inner.rs", "use super::super::c;\n");
    w("c.rs", "use crate::{a::X, b};\n");
    let found = circles(&edges(dir.path()));
    assert_eq!(found, vec![vec!["a".to_string(), "b".into(), "b::inner".into(), "c".into()]]);
    w("c.rs", "pub struct X;\n");
    assert_eq!(circles(&edges(dir.path())), Vec::<Vec<String>>::new());
}
