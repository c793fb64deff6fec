//! Every code block in README.md and docs/*.md says, on the line before it, what it is: run by
//! a test (`<!-- cmd: run by PATH -->`: PATH exists and reads this document, or holds the
//! block's first command as written), illustrative (`<!-- cmd: illustrative: WHY -->`), or not
//! commands at all (`<!-- cmd: not commands: WHAT -->`). A command in the docs is a promise;
//! this keeps each one either tested or openly not.

use neighsyncd_tests::root;
use std::path::PathBuf;

struct Block {
    line: usize,
    marker: Option<String>,
    first: String,
}

/// Fenced blocks, and indented ones (four or more spaces after a blank line, outside fences).
fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let marker_before = |i: usize| {
        lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .filter(|l| l.starts_with("<!-- cmd:"))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim_start().starts_with("```") {
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_start().starts_with("```"))
                .unwrap_or(lines.len());
            out.push(Block {
                line: i + 1,
                marker: marker_before(i),
                first: lines
                    .get(i + 1)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
            });
            i = end + 1;
            continue;
        }
        if l.starts_with("    ") && !l.trim().is_empty() && i > 0 && lines[i - 1].trim().is_empty()
        {
            let mut j = i;
            while j < lines.len() && (lines[j].starts_with("    ") || lines[j].trim().is_empty()) {
                j += 1;
            }
            let first = lines[i..j]
                .iter()
                .map(|s| s.trim())
                .find(|s| !s.is_empty() && !s.starts_with('#'))
                .unwrap_or_default()
                .to_string();
            out.push(Block {
                line: i + 1,
                marker: marker_before(i),
                first,
            });
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

#[test]
fn every_command_block_in_the_docs_is_tested_or_says_why_not() {
    let mut problems = Vec::new();
    let mut run_by = 0;
    for doc in documents() {
        let rel = doc
            .strip_prefix(root())
            .unwrap_or(&doc)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&doc).unwrap();
        for b in blocks(&text) {
            let at = format!("{rel}:{}", b.line);
            let Some(m) = b.marker else {
                problems.push(format!(
                    "{at}: no `<!-- cmd: ... -->` line before the block"
                ));
                continue;
            };
            let what = m
                .trim_start_matches("<!-- cmd:")
                .trim_end_matches("-->")
                .trim();
            if let Some(path) = what.strip_prefix("run by ") {
                let test = std::fs::read_to_string(root().join(path.trim())).unwrap_or_default();
                if test.is_empty() {
                    problems.push(format!("{at}: run by {path}, which does not exist"));
                } else if !test.contains(&rel) && !test.contains(&b.first) {
                    problems.push(format!(
                        "{at}: {path} neither reads {rel} nor runs `{}`",
                        b.first
                    ));
                } else {
                    run_by += 1;
                }
            } else if !(what.starts_with("illustrative: ") || what.starts_with("not commands: ")) {
                problems.push(format!(
                    "{at}: `{m}` says neither `run by`, `illustrative:` nor `not commands:`"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(run_by >= 4, "only {run_by} blocks are run by tests");
}
