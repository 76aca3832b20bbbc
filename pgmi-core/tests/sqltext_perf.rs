//! Throughput of the per-file text work on a 10,000-file project of ~2 KB files (the size the
//! loader must handle quickly). Ignored by default; run in release to reproduce the figure in
//! `checksum.rs`:
//! `cargo test --release -p pgmi-core --test sqltext_perf -- --ignored --nocapture`

use pgmi_core::{checksum, meta};
use std::time::Instant;

fn sample_file(i: usize) -> String {
    let mut s = format!(
        "/*\n  <pgmi-meta id=\"{:08x}-0000-4000-8000-000000000000\" idempotent=\"true\">\n    \
         <description>Table number {i}</description>\n    <sortKeys><key>20-core/{i:05}</key></sortKeys>\n  \
         </pgmi-meta>\n*/\n",
        i
    );
    while s.len() < 2048 {
        s.push_str(
            "CREATE TABLE IF NOT EXISTS app.\"Orders\" (\n    id bigint PRIMARY KEY, -- key\n    note text DEFAULT 'Pending  Review'\n);\n\
             CREATE OR REPLACE FUNCTION app.f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n",
        );
    }
    s
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn ten_thousand_two_kb_files() {
    let files: Vec<String> = (0..10_000).map(sample_file).collect();
    let bytes: usize = files.iter().map(String::len).sum();

    let start = Instant::now();
    let normalized_bytes: usize = files
        .iter()
        .map(|f| checksum::normalize(f.as_bytes()).len())
        .sum();
    let normalizing = start.elapsed();

    let start = Instant::now();
    let sums: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                checksum::raw(f.as_bytes()),
                checksum::normalized(f.as_bytes()),
            )
        })
        .collect();
    let hashing = start.elapsed();

    let start = Instant::now();
    let metas = files
        .iter()
        .enumerate()
        .filter(|(i, f)| matches!(meta::extract(&format!("./m/{i}.sql"), f), Ok(Some(_))))
        .count();
    let parsing = start.elapsed();

    assert_eq!(sums.len(), 10_000);
    assert_eq!(metas, 10_000);
    println!(
        "{} files, {:.1} MB: normalize alone {:?} ({} bytes out), both checksums {:?}, metadata {:?}",
        files.len(),
        bytes as f64 / 1e6,
        normalizing,
        normalized_bytes,
        hashing,
        parsing
    );
}
