//! Invariants of the code base that check themselves: the crates depend on
//! each other only in the stated direction, each names only the outside
//! libraries its layer may, every source file opens with a `//!` doc,
//! every path ARCHITECTURE.md names exists, and every default the README's
//! configuration table states is the code's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Each library crate's layer: a crate may depend only on crates of lower
/// layers (so crates of one layer never on each other). A new crate must be
/// placed here.
const LAYERS: &[(&str, u8)] = &[
    ("strata-domain", 0),
    ("migration", 0),
    ("strata-embedded", 0),
    ("strata-persistence", 1),
    ("strata-agents", 1),
    ("strata-runner", 2),
    ("strata-graphql", 3),
    ("strata-server", 4),
];

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            source_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `crates/<name>` for every crate of the workspace's `crates/` folder.
fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("read crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned()
}

/// The workspace crates listed under `[dependencies]` of a manifest.
fn internal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if !in_deps {
            continue;
        }
        let name = line.split(['.', ' ', '=']).next().unwrap_or_default();
        if LAYERS.iter().any(|(n, _)| *n == name) {
            deps.push(name.to_owned());
        }
    }
    deps
}

#[test]
fn crates_depend_only_downwards() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    for dir in crate_dirs().into_iter().chain([root().join("migration")]) {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("read a manifest");
        let name = package_name(&manifest);
        let Some(&mine) = layer.get(name.as_str()) else {
            problems.push(format!("{name}: not placed in a layer (add it to LAYERS)"));
            continue;
        };
        for dep in internal_dependencies(&manifest) {
            if layer[dep.as_str()] >= mine {
                problems.push(format!(
                    "{name} (layer {mine}) depends on {dep} (layer {})",
                    layer[dep.as_str()]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Outside libraries only some crates may name: the database layer is the
/// only one that speaks SQL through SeaORM, the GraphQL layer (and the
/// HTTP edge that serves it) the only ones that know GraphQL, the HTTP
/// edge the only one that knows axum, and the domain nothing of them.
const NAMED_ONLY_BY: &[(&str, &[&str])] = &[
    ("sea_orm", &["persistence"]),
    ("async_graphql", &["graphql", "server"]),
    ("axum", &["server"]),
    ("reqwest", &["agents", "server"]),
];

#[test]
fn each_layer_names_only_the_libraries_it_may() {
    let mut problems = Vec::new();
    for dir in crate_dirs() {
        let krate = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let mut files = Vec::new();
        source_files(&dir.join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read a source file");
            for (lib, allowed) in NAMED_ONLY_BY {
                let named =
                    text.contains(&format!("{lib}::")) || text.contains(&format!("use {lib}"));
                if named && !allowed.contains(&krate.as_str()) {
                    problems.push(format!("{} names {lib}", file.display()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in crate_dirs() {
        source_files(&dir.join("src"), &mut files);
    }
    source_files(&root().join("tests/src"), &mut files);
    assert!(files.len() > 30, "found the sources");
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` doc: {missing:#?}"
    );
}

/// Paths in backticks that start at a top-level folder of the repository.
fn named_paths(markdown: &str) -> Vec<String> {
    const TOP: &[&str] = &[
        "crates/",
        "tests/",
        "migration/",
        "bench/",
        "deploy/",
        "docs/",
        ".ci/",
    ];
    markdown
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim_end_matches(['/', ',', '.']).to_owned())
        .filter(|s| TOP.iter().any(|t| s.starts_with(t)) && !s.contains(['*', '<', '{', ' ', '$']))
        .collect()
}

#[test]
fn every_path_architecture_md_names_exists() {
    let map =
        std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let named = named_paths(&map);
    assert!(named.len() > 10, "found the paths: {named:?}");
    let missing: Vec<_> = named
        .into_iter()
        .filter(|p| !root().join(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:#?}"
    );
}

#[test]
fn architecture_md_stays_a_map() {
    let size = std::fs::metadata(root().join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md")
        .len();
    assert!(
        size <= 20 * 1024,
        "ARCHITECTURE.md is {size} bytes: move details to docs/dev/"
    );
}

#[test]
fn the_readmes_defaults_are_the_codes() {
    use clap::CommandFactory as _;
    let readme = std::fs::read_to_string(root().join("README.md")).expect("read README.md");
    let cli = strata_server::cli::Cli::command();
    assert!(cli.find_subcommand("serve").is_some(), "a serve command");
    // The options of every command (serve's first), and the global ones.
    let mut commands: Vec<clap::Command> = cli.get_subcommands().cloned().collect();
    commands.sort_by_key(|c| c.get_name() != "serve");
    let default_of = |flag: &str| -> Option<String> {
        let name = flag.trim_start_matches("--");
        commands
            .iter()
            .flat_map(|c| c.get_arguments())
            .chain(cli.get_arguments())
            .find(|a| a.get_long() == Some(name))
            .map(|a| {
                a.get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            })
    };
    let mut checked = 0;
    let mut problems = Vec::new();
    for row in readme.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | flags | env | default | meaning |
        let (Some(flags), Some(default)) = (cells.get(1), cells.get(3)) else {
            continue;
        };
        let flags: Vec<&str> = flags.split(", ").map(|f| f.trim_matches('`')).collect();
        let defaults: Vec<&str> = default.split(", ").collect();
        // Only cells that are literal values, one per flag.
        if defaults.len() != flags.len()
            || !defaults
                .iter()
                .all(|d| d.starts_with('`') && d.ends_with('`') && d.len() > 2)
        {
            continue;
        }
        for (flag, documented) in flags.iter().zip(defaults) {
            let documented = documented.trim_matches('`');
            match default_of(flag) {
                None => problems.push(format!("{flag}: documented, but no such option")),
                Some(code) if code != documented => {
                    problems.push(format!(
                        "{flag}: README says `{documented}`, the code `{code}`"
                    ));
                }
                Some(_) => checked += 1,
            }
        }
    }
    assert!(checked >= 20, "checked only {checked} defaults");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The metric names the code emits: the first string after a `counter!`,
/// `gauge!` or `histogram!` macro (the `describe_*!` ones included), and
/// the series the server renders itself (`# TYPE` lines).
fn emitted_metrics() -> std::collections::BTreeSet<String> {
    let mut files = Vec::new();
    for dir in crate_dirs() {
        source_files(&dir.join("src"), &mut files);
    }
    let mut names = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for mac in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(mac) {
                let rest = text[at + mac.len()..].trim_start();
                if let Some(lit) = rest.strip_prefix('"')
                    && let Some(end) = lit.find('"')
                    && lit[..end].starts_with("strata_")
                {
                    names.insert(lit[..end].to_owned());
                }
            }
        }
        for (at, _) in text.match_indices("# TYPE strata_") {
            let name: String = text[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_metric_is_in_operations_md_and_the_dashboard_names_only_real_ones() {
    let names = emitted_metrics();
    assert!(names.len() >= 20, "found the metrics: {names:?}");
    let ops = std::fs::read_to_string(root().join("docs/OPERATIONS.md")).expect("OPERATIONS.md");
    let undocumented: Vec<_> = names
        .iter()
        .filter(|n| !ops.contains(&format!("`{n}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "metrics docs/OPERATIONS.md does not list: {undocumented:?}"
    );
    let dashboard = std::fs::read_to_string(root().join("deploy/grafana/strata.json"))
        .expect("the Grafana dashboard");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() >= 10));
    let mut used = std::collections::BTreeSet::new();
    for (at, _) in dashboard.match_indices("strata_") {
        let name: String = dashboard[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_owned();
        used.insert(base);
    }
    used.remove("strata_"); // none expected, but never a metric
    let unknown: Vec<_> = used
        .iter()
        .filter(|n| !names.contains(*n) && !n.ends_with("gateway"))
        .collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries unknown metrics: {unknown:?}"
    );
}

#[test]
fn every_operations_words_are_written_once_in_the_table() {
    let mut files = Vec::new();
    for dir in crate_dirs() {
        source_files(&dir.join("src"), &mut files);
    }
    let table = root().join("crates/domain/src/action.rs");
    let mut problems = Vec::new();
    for file in files.iter().filter(|f| **f != table) {
        let text = std::fs::read_to_string(file).expect("read a source file");
        for action in strata_domain::Action::ALL {
            if text.contains(&format!("\"{}\"", action.refusal())) {
                problems.push(format!(
                    "{} spells the refusal of {action:?}",
                    file.display()
                ));
            }
            if let Some(name) = action.audit_name()
                && text.contains(&format!("\"{name}\""))
            {
                problems.push(format!(
                    "{} spells the audit name of {action:?}",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
