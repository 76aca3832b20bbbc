//! Build facts for `version`: the commit (when built from a git checkout) and the platform;
//! the project templates (`../templates/<name>/…`), embedded for `init`; and the user
//! documentation (`../docs/*.md` and the README), embedded for `ai`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PGMI_COMMIT={commit}");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    println!("cargo:rustc-env=PGMI_PLATFORM={os}/{arch}");
    embed_templates();
    embed_docs();
    // A new commit changes HEAD (detached) or the branch ref it points to.
    for path in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// Writes `$OUT_DIR/templates.rs`: `TEMPLATE_FILES`, every file of every template as
/// (template, path relative to it with `/`, bytes), sorted, dotfiles included.
fn embed_templates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if root.is_dir() {
        collect(&root, &root, &mut files);
    }
    files.sort();
    let mut out = String::from("pub static TEMPLATE_FILES: &[(&str, &str, &[u8])] = &[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let rel = path.strip_prefix(&root).expect("below the root");
        let mut parts = rel.iter().map(|p| p.to_string_lossy().into_owned());
        let template = parts.next().expect("a template directory");
        let inside: Vec<String> = parts.collect();
        out.push_str(&format!(
            "    ({template:?}, {:?}, include_bytes!({:?})),\n",
            inside.join("/"),
            path.canonicalize()
                .expect("canonical path")
                .display()
                .to_string()
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("templates.rs");
    std::fs::write(dest, out).expect("write templates.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("read a template directory");
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() && path != root.join("README.md") {
            files.push(path);
        }
    }
}

/// Writes `$OUT_DIR/docs.rs`: `DOCS`, (topic, text) for every `../docs/*.md` but the index,
/// by name, and `readme` for the README.
fn embed_docs() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = manifest.join("../docs");
    println!("cargo:rerun-if-changed={}", docs.display());
    let mut topics = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&docs) {
        for entry in entries.flatten() {
            let path = entry.path();
            println!("cargo:rerun-if-changed={}", path.display());
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            if path.extension().is_some_and(|e| e == "md") && stem.as_deref() != Some("README") {
                topics.push((stem.expect("a file name"), path));
            }
        }
    }
    topics.sort();
    let readme = manifest.join("../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    topics.push(("readme".to_string(), readme));
    let mut out = String::from("pub static DOCS: &[(&str, &str)] = &[\n");
    for (topic, path) in &topics {
        out.push_str(&format!(
            "    ({topic:?}, include_str!({:?})),\n",
            path.canonicalize()
                .expect("canonical path")
                .display()
                .to_string()
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("docs.rs");
    std::fs::write(dest, out).expect("write docs.rs");
}
