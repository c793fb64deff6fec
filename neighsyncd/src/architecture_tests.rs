//! The house's rules, checked on the source: imports run one way (see `lib.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which rooms each room may import from (besides itself). The shell (top-level modules) may
/// import anything.
const ALLOWED: [(&str, &[&str]); 6] = [
    ("core", &[]),
    ("telemetry", &["core"]),
    ("runtime", &["core", "telemetry"]),
    ("southbound", &["core", "telemetry", "runtime"]),
    ("sonic", &["core", "telemetry", "runtime"]),
    ("northbound", &["core", "telemetry", "runtime"]),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` a file names.
fn crate_paths(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("crate::").filter_map(|(i, _)| {
        let rest = &text[i + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (end > 0).then(|| &rest[..end])
    })
}

#[test]
fn imports_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.into_iter().collect();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let room = rel.components().next().and_then(|c| c.as_os_str().to_str());
        let Some((room, may)) = room.and_then(|r| allowed.get_key_value(r)) else {
            continue; // the shell
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for target in crate_paths(&text) {
            if target != *room && !may.contains(&target) {
                wrong.push(format!("{}: crate::{target}", rel.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the grain (rooms may use only {ALLOWED:?}):\n{}",
        wrong.join("\n")
    );
}

/// Most lines a file may have without saying, at its top, why it is longer.
const MAX_LINES: usize = 450;
/// What such a file's first lines say.
const REASON: &str = "Longer than 450 lines because";

#[test]
fn long_files_say_why() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut unexplained = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        let lines = text.lines().count();
        let head: String = text.lines().take(12).collect::<Vec<_>>().join("\n");
        if lines > MAX_LINES && !head.contains(REASON) {
            let rel = file.strip_prefix(&src).expect("under src");
            unexplained.push(format!("{} ({lines} lines)", rel.display()));
        }
    }
    assert!(
        unexplained.is_empty(),
        "files over {MAX_LINES} lines whose first lines do not say \"{REASON} ...\" \
         (split them, or say why not):\n{}",
        unexplained.join("\n")
    );
}
