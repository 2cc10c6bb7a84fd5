//! `plcc fmt RECIPE [--write | --check]`: prints the recipe in canonical form,
//! rewrites it in place (atomically: a temporary file renamed over it), or
//! checks that it already is canonical.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::diag::Diag;
use crate::syntax::{format, parse, read_recipe};

/// What `plcc fmt` does with the canonical text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FmtMode {
    Print,
    Write,
    Check,
}

pub fn run(recipe: &Path, mode: FmtMode) -> Result<ExitCode, Diag> {
    let source = read_recipe(recipe)?;
    let doc = parse(&source.text).map_err(|d| source.attach(d))?;
    let canonical = format(&doc);
    match mode {
        FmtMode::Print => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(canonical.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| {
                    Diag::new("plcc::fmt::write", "cannot write to standard output")
                        .note(e.to_string())
                })?;
            Ok(ExitCode::SUCCESS)
        }
        FmtMode::Check if canonical == source.text => Ok(ExitCode::SUCCESS),
        FmtMode::Check => {
            eprintln!(
                "{} is not in canonical form (run `plcc fmt --write {}`)",
                recipe.display(),
                recipe.display()
            );
            Ok(ExitCode::from(1))
        }
        FmtMode::Write if canonical == source.text => Ok(ExitCode::SUCCESS),
        FmtMode::Write => {
            write_atomically(recipe, canonical.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Diag> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "recipe".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.plcc-fmt-{}.tmp", std::process::id()));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| {
            if let Ok(meta) = std::fs::metadata(path) {
                std::fs::set_permissions(&tmp, meta.permissions())?;
            }
            std::fs::rename(&tmp, path)
        });
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Diag::io("plcc::fmt::write", "rewrite", path, &e)
    })
}
