//! The determinism boundary is visible in Cargo.toml: workflow code cannot reach the database
//! or the network because neither sqlx nor reqwest is in its dependency tree.

#[test]
fn workflows_crate_has_no_sqlx_or_reqwest() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "procure-workflows",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("temporalio-sdk"), "sanity: the tree was read");
    for banned in ["sqlx", "reqwest", "axum"] {
        assert!(
            !tree.lines().any(|l| l.split(' ').next() == Some(banned)),
            "{banned} is reachable from procure-workflows"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Who may call whom: the crate graph of docs/ARCHITECTURE.md, read from `cargo metadata`-free
// sources (each crate's Cargo.toml `[dependencies]`), and the module graph inside every crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace crates: folder → package name, read from the root Cargo.toml members.
fn members() -> Vec<(String, String)> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("workspace members");
    let mut out = vec![(".".to_owned(), "procure".to_owned())];
    for dir in line.split('"').skip(1).step_by(2) {
        let toml = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
        let name = toml
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("package name")
            .to_owned();
        out.push((dir.to_owned(), name));
    }
    out
}

/// The workspace crates a crate depends on (normal dependencies only).
fn workspace_deps(dir: &str) -> BTreeSet<String> {
    let toml = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
    let mut in_deps = false;
    let mut out = BTreeSet::new();
    for l in toml.lines() {
        let l = l.trim();
        if l.starts_with('[') {
            in_deps = l == "[dependencies]";
            continue;
        }
        if in_deps && l.starts_with("procure-") {
            out.insert(l.split([' ', '.', '=']).next().unwrap().to_owned());
        }
    }
    out
}

/// The allowed crate graph. docs/ARCHITECTURE.md shows the same table; a change to either is
/// a change to the architecture and belongs in both.
const ALLOWED: &[(&str, &[&str])] = &[
    ("procure-domain", &[]),
    ("procure-metrics", &[]),
    ("procure-store", &["procure-domain", "procure-workflows"]),
    ("procure-adapters", &["procure-domain", "procure-metrics"]),
    ("procure-workflows", &["procure-domain"]),
    ("procure-temporal", &["procure-domain"]),
    (
        "procure-activities",
        &[
            "procure-domain",
            "procure-store",
            "procure-adapters",
            "procure-workflows",
            "procure-metrics",
        ],
    ),
    (
        "procure-worker",
        &[
            "procure-workflows",
            "procure-activities",
            "procure-temporal",
        ],
    ),
    (
        "procure-api",
        &[
            "procure-domain",
            "procure-store",
            "procure-workflows",
            "procure-temporal",
            "procure-metrics",
        ],
    ),
    ("procure-sandbox", &["procure-domain"]),
];

/// The crates table of docs/ARCHITECTURE.md says what `ALLOWED` says: its "may depend on"
/// column names, for each package, the same crates (without the `procure-` prefix).
#[test]
fn the_architecture_document_shows_the_allowed_graph() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ARCHITECTURE.md"))
        .unwrap();
    for (name, allowed) in ALLOWED {
        let row = doc
            .lines()
            .find(|l| l.contains(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md has no row for {name}"));
        let last = row.trim_end_matches('|').rsplit('|').next().unwrap();
        // "workflows (the signal payloads …)": the crate names, without the explanations.
        let mut said: Vec<String> = last
            .split(',')
            .map(|c| c.split('(').next().unwrap().trim().to_owned())
            .filter(|c| !c.is_empty() && c != "—")
            .collect();
        let mut want: Vec<String> = allowed
            .iter()
            .map(|d| d.trim_start_matches("procure-").to_owned())
            .collect();
        said.sort();
        want.sort();
        assert_eq!(said, want, "docs/ARCHITECTURE.md's row for {name}");
    }
}

#[test]
fn crates_depend_only_as_the_architecture_allows() {
    let mut seen = 0;
    for (dir, name) in members() {
        if name == "procure" {
            continue; // the binary wires everything together
        }
        let allowed = ALLOWED
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} ({dir}) is not in the allowed crate graph"))
            .1;
        for dep in workspace_deps(&dir) {
            assert!(
                allowed.contains(&dep.as_str()),
                "{name} depends on {dep}, which docs/ARCHITECTURE.md does not allow"
            );
        }
        seen += 1;
    }
    assert!(
        seen >= 8,
        "sanity: the workspace members were read ({seen})"
    );
}

#[test]
fn the_api_reaches_no_vendor_adapter() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "procure-api",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("procure-store"), "sanity: the tree was read");
    for banned in ["procure-adapters", "procure-activities", "reqwest"] {
        assert!(
            !tree.lines().any(|l| l.split(' ').next() == Some(banned)),
            "{banned} is reachable from procure-api"
        );
    }
}

/// Every `.rs` file under `dir`, with its module path (`a::b`; `lib.rs`/`main.rs` is the root
/// `""`, `a/mod.rs` is `a`).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            (parts.join("::"), f)
        })
        .collect()
}

/// The module paths one file names: `crate::a::b…` and `super::…` anywhere in code (including
/// `use` trees with braces), resolved against the file's own module. Comments are skipped.
fn references(module: &str, source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let boundary = i == 0
            || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        let start = if boundary && rest.starts_with("crate::") {
            Some((Vec::new(), i + 7))
        } else if boundary && rest.starts_with("super::") {
            let mut base: Vec<String> = module
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let mut j = i;
            while bytes[j..].iter().collect::<String>().starts_with("super::") {
                base.pop();
                j += 7;
            }
            Some((base, j))
        } else {
            None
        };
        match start {
            Some((base, j)) => {
                let (paths, end) = use_tree(&bytes, j);
                for p in paths {
                    let mut full = base.clone();
                    full.extend(p);
                    out.push(full.join("::"));
                }
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
    out
}

/// Parses a path or a braced use tree starting at `i`; returns the paths and where it ended.
fn use_tree(s: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        if i < s.len() && s[i] == '{' {
            i += 1;
            let mut all = Vec::new();
            loop {
                while i < s.len() && (s[i].is_whitespace() || s[i] == ',') {
                    i += 1;
                }
                if i >= s.len() || s[i] == '}' {
                    break;
                }
                let (sub, end) = use_tree(s, i);
                for p in sub {
                    let mut full = prefix.clone();
                    full.extend(p);
                    all.push(full);
                }
                i = end;
                // skip `as name`
                while i < s.len() && s[i] != ',' && s[i] != '}' {
                    i += 1;
                }
            }
            return (all, i + 1);
        }
        let start = i;
        while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
            i += 1;
        }
        if i > start {
            prefix.push(s[start..i].iter().collect::<String>());
        }
        if i + 1 < s.len() && s[i] == ':' && s[i + 1] == ':' {
            i += 2;
            continue;
        }
        return (vec![prefix], i);
    }
}

/// The longest known module that is a prefix of `path`.
fn resolve<'a>(path: &str, known: &'a BTreeMap<String, PathBuf>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|p| known.get_key_value(&p).map(|(k, _)| k.as_str()))
}

/// Edges between sibling modules: an item in `a::x` naming `a::y::z` is an edge `x → y` among
/// the children of `a`. A module naming its parent (or its own children) is not an edge.
fn sibling_edges(
    known: &BTreeMap<String, PathBuf>,
) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut edges: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for (module, file) in known {
        let source = std::fs::read_to_string(file).unwrap();
        // Unit tests inside a file are not part of the module graph.
        let source = source.split("#[cfg(test)]").next().unwrap_or_default();
        for r in references(module, source) {
            let Some(target) = resolve(&r, known) else {
                continue;
            };
            let from: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
            let to: Vec<&str> = target.split("::").filter(|s| !s.is_empty()).collect();
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue;
            }
            edges
                .entry(from[..common].join("::"))
                .or_default()
                .insert((from[common].to_owned(), to[common].to_owned()));
        }
    }
    edges
}

/// The groups of modules that reach each other (strongly connected components of more than one
/// module): each is at least one cycle.
fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<BTreeSet<String>> {
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for (_, to) in edges.iter().filter(|(f, _)| *f == n) {
                if seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for n in &nodes {
        if !reaches[n].contains(*n) || groups.iter().any(|g| g.contains(*n)) {
            continue;
        }
        let group = nodes
            .iter()
            .filter(|m| reaches[n].contains(**m) && reaches[*m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        groups.push(group);
    }
    groups
}

#[test]
fn no_module_imports_a_module_that_imports_it() {
    let mut found = Vec::new();
    let mut graph = String::new();
    let mut counted = 0;
    for (dir, name) in members() {
        let src = root().join(&dir).join("src");
        for (parent, edges) in sibling_edges(&modules(&src)) {
            let at = if parent.is_empty() {
                name.clone()
            } else {
                format!("{name}::{parent}")
            };
            counted += edges.len();
            for (from, to) in &edges {
                graph.push_str(&format!("{at}: {from} -> {to}\n"));
            }
            for group in cycles(&edges) {
                found.push(format!(
                    "{at}: {}",
                    group.into_iter().collect::<Vec<_>>().join(" ⇄ ")
                ));
            }
        }
    }
    // The graph, for people: target/architecture/module-graph.txt.
    let out = root().join("target/architecture");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("module-graph.txt"), &graph).unwrap();
    assert!(
        counted > 20,
        "sanity: the module graph was read ({counted} edges)"
    );
    assert!(
        found.is_empty(),
        "modules that import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_module_reader_sees_braced_and_relative_paths() {
    let got = references(
        "order::procure",
        "use crate::{a::{b, c as d}, e};\nuse super::cancel::X; // crate::ignored\nlet x = crate::f::g();",
    );
    assert_eq!(got, ["a::b", "a::c", "e", "order::cancel::X", "f::g"]);
}

/// Module docs and comments point at files that exist in the repository, never outside it.
#[test]
fn docs_in_code_point_only_at_files_in_the_repository() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for (dir, _) in members() {
        for (_, file) in modules(&root().join(&dir).join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines().filter(|l| l.trim_start().starts_with("//")) {
                for word in line.split(|c: char| c.is_whitespace() || "()`,;[]".contains(c)) {
                    let word = word.trim_end_matches(['.', ':']);
                    if !(word.ends_with(".md") || word.ends_with(".toml") && word.contains('/')) {
                        continue;
                    }
                    checked += 1;
                    let outside = word.starts_with("../") || word.starts_with('/');
                    let exists =
                        root().join(word).exists() || file.parent().unwrap().join(word).exists();
                    if outside || !exists {
                        missing.push(format!(
                            "{}: {word}",
                            file.strip_prefix(root()).unwrap().display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        checked > 5,
        "sanity: file references were found ({checked})"
    );
    assert!(
        missing.is_empty(),
        "references to files not in the repository:\n{}",
        missing.join("\n")
    );
}

/// Settings are parsed once by the binary (`src/settings/`) and passed down: no library crate
/// reads the environment (outside its unit tests).
#[test]
fn no_library_reads_the_environment() {
    let mut readers = Vec::new();
    let mut files = 0;
    for (dir, name) in members() {
        if name == "procure" || name == "procure-sandbox" {
            continue; // the binary reads settings; the sandbox stands in for the outside world
        }
        for (_, file) in modules(&root().join(&dir).join("src")) {
            files += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                let line = line.split("//").next().unwrap_or_default();
                if ["env::var(", "env::var_os(", "env::vars("]
                    .iter()
                    .any(|p| line.contains(p))
                {
                    readers.push(format!(
                        "{}:{}",
                        file.strip_prefix(root()).unwrap().display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        files > 50,
        "sanity: the library sources were read ({files})"
    );
    assert!(
        readers.is_empty(),
        "libraries reading the environment:\n{}",
        readers.join("\n")
    );
}
