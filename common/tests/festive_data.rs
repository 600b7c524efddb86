//! The project's own festive training rows (`model/data/festive_more*.tsv`) and the
//! evaluation references (`model/eval/reference.tsv`) obey the same five rules the
//! service guarantees, judged by `common::rules::check` itself (the Python
//! `model/check_rows.py` used while writing them states the same rules, plus 平仄相对).
#![allow(clippy::unwrap_used, missing_docs)]

use common::rules::{check, CoupletRef};
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rows(path: &PathBuf) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("upper\tlower\thengpi\ttheme"), "{}", path.display());
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut c = l.split('\t').map(str::to_string);
            (c.next().unwrap(), c.next().unwrap_or_default(), c.next().unwrap_or_default(), c.next().unwrap_or_default())
        })
        .collect()
}

fn check_file(path: &PathBuf) -> usize {
    let rows = rows(path);
    let mut seen = std::collections::HashSet::new();
    for (u, l, h, theme) in &rows {
        let theme_chars: Vec<char> = theme.chars().filter(|c| common::request::is_cjk(*c)).collect();
        check(CoupletRef { upper: u, lower: l, hengpi: h }, &theme_chars, false)
            .unwrap_or_else(|e| panic!("{}: {u} / {l} / {h} ({theme}): {e}", path.display()));
        assert!(seen.insert(u.clone()) && seen.insert(l.clone()), "{}: duplicate line in {u} / {l}", path.display());
    }
    rows.len()
}

#[test]
fn every_festive_training_row_keeps_the_rules() {
    let dir = repo().join("model/data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("festive_more"))
        .collect();
    files.sort();
    let total: usize = files.iter().map(check_file).sum();
    // The floor: with the 1,311 shared rows, at least 3,000 festive couplets in all.
    assert!(total + 1311 >= 3000, "only {total} project rows");
}

#[test]
fn every_evaluation_reference_keeps_the_rules() {
    assert!(check_file(&repo().join("model/eval/reference.tsv")) >= 80);
}
