//! What `plcc build` may write to: its output path must be absent, an empty
//! directory, or a plcc artifact (a directory whose manifest says so), and it
//! must not hold any of the build's own inputs (the recipe, the teacher's
//! checkpoint folder, the data files). Anything else — a regular file, a
//! symbolic link, a checkpoint or any other folder with files, `.` or `..` —
//! is refused before any work starts, and nothing is touched.
//!
//! A recipe's own `output:` must also stay inside the recipe's folder (after
//! resolving symbolic links), so that a shared recipe cannot write anywhere
//! its user can; `-o` on the command line or `--allow-outside` lifts that.
//!
//! Also here: removing the staging folders that an earlier, killed build left
//! beside the output (`.<name>.staging-<pid>`, `.<name>.old-<pid>`) once the
//! process that made them is gone.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::artifact::{is_artifact_dir, MOVED_ASIDE, STAGING};
use crate::diag::Diag;

/// One of the build's inputs, which the output must not replace.
pub struct Input<'a> {
    /// What it is, in words: "the teacher's checkpoint folder".
    pub what: &'a str,
    pub path: &'a Path,
}

/// Why an output path was refused: the diagnostic, without the recipe
/// source or labels (the caller adds those when the path came from the
/// recipe).
pub fn check_output(output: &Path, inputs: &[Input<'_>]) -> Result<(), Diag> {
    check_output_for(output, inputs, &ARTIFACT)
}

/// What a command writes as a directory and may therefore replace.
pub struct OwnOutput {
    /// Whether a directory is one this command wrote.
    pub is_ours: fn(&Path) -> bool,
    /// What it is, in words: "a plcc artifact".
    pub what: &'static str,
    /// How one is recognised, in words: "it has no plcc manifest".
    pub mark: &'static str,
    /// One of them, in a word: "artifact".
    pub noun: &'static str,
}

/// `plcc build`'s output: an artifact.
pub const ARTIFACT: OwnOutput = OwnOutput {
    is_ours: is_artifact_dir,
    what: "a plcc artifact",
    mark: "it has no plcc manifest",
    noun: "artifact",
};

/// [`check_output`] for an output of kind `kind`.
pub fn check_output_for(output: &Path, inputs: &[Input<'_>], kind: &OwnOutput) -> Result<(), Diag> {
    let shown = output.display();
    if !has_final_name(output) {
        return Err(Diag::new(
            "plcc::build::output-not-a-name",
            format!("the output `{shown}` does not end in a folder name"),
        )
        .help(format!(
            "name the {} directory itself, e.g. `-o out/model`",
            kind.noun
        )));
    }
    let meta = match fs::symlink_metadata(output) {
        Ok(m) => m,
        // Absent, or under a file: creating it fails later with its own diagnostic.
        Err(e) if absent(&e) => return Ok(()),
        Err(e) => return Err(Diag::io("plcc::io::read", "inspect", output, &e)),
    };
    if meta.file_type().is_symlink() {
        return Err(Diag::new(
            "plcc::build::output-not-ours",
            format!("the output `{shown}` is a symbolic link, which plcc did not write"),
        )
        .help(format!(
            "write the {} to a path that does not exist yet (or to an earlier {})",
            kind.noun, kind.what
        )));
    }
    if let Ok(out) = fs::canonicalize(output) {
        for input in inputs {
            let Ok(inp) = fs::canonicalize(input.path) else {
                continue;
            };
            if inp.starts_with(&out) {
                let (code, relation) = if inp == out {
                    ("plcc::build::output-is-input", "is")
                } else {
                    ("plcc::build::output-holds-input", "holds")
                };
                return Err(Diag::new(
                    code,
                    format!(
                        "the output `{shown}` {relation} {} (`{}`); writing the {} would replace it",
                        input.what,
                        input.path.display(),
                        kind.noun
                    ),
                )
                .help(format!("write the {} somewhere else, e.g. `-o out/model`", kind.noun)));
            }
        }
    }
    replaceable_as(output, kind)
}

/// Whether the directory at `output` (which exists) is one that a build may
/// replace: a plcc artifact or an empty directory.
pub fn replaceable(output: &Path) -> Result<(), Diag> {
    replaceable_as(output, &ARTIFACT)
}

/// Whether the directory at `output` may be replaced by an output of kind
/// `kind`: one of that kind or an empty directory.
pub fn replaceable_as(output: &Path, kind: &OwnOutput) -> Result<(), Diag> {
    let shown = output.display();
    let meta = match fs::symlink_metadata(output) {
        Ok(m) => m,
        // Absent, or under a file: creating it fails later with its own diagnostic.
        Err(e) if absent(&e) => return Ok(()),
        Err(e) => return Err(Diag::io("plcc::io::read", "inspect", output, &e)),
    };
    let refuse = |what: &str| {
        Diag::new(
            "plcc::build::output-not-ours",
            format!("the output `{shown}` {what}; plcc replaces only its own {}s", kind.noun),
        )
        .help(format!("write the {} to a new path, an empty directory or an earlier {}; plcc never deletes what it did not write", kind.noun, kind.what))
    };
    if meta.file_type().is_symlink() {
        return Err(refuse("is a symbolic link"));
    }
    if !meta.is_dir() {
        return Err(refuse("is a file, not a directory"));
    }
    if (kind.is_ours)(output) {
        return Ok(());
    }
    let mut entries =
        fs::read_dir(output).map_err(|e| Diag::io("plcc::io::read", "list", output, &e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    Err(refuse(&format!(
        "is a directory that is not {} ({})",
        kind.what, kind.mark
    )))
}

/// Refuses an output outside `recipe_dir`: an absolute path elsewhere, a
/// `..` that climbs out, or a symbolic link on the way that leads out.
pub fn confine(output: &Path, recipe_dir: &Path) -> Result<(), Diag> {
    let (Some(out), Some(dir)) = (resolved(output), resolved(recipe_dir)) else {
        return Ok(());
    };
    if out.starts_with(&dir) && out != dir {
        return Ok(());
    }
    Err(Diag::new(
        "plcc::build::output-outside",
        format!(
            "the recipe's output `{}` is outside the recipe's folder `{}`",
            output.display(),
            recipe_dir.display()
        ),
    )
    .note(format!("it resolves to `{}`", out.display()))
    .help("name a path inside the recipe's folder, give the output on the command line with `-o`, or pass `--allow-outside`"))
}

/// `path` made absolute with its symbolic links resolved: the deepest part
/// that exists is canonicalized, the rest (which cannot hold links) is
/// joined lexically. `None` when the working directory is unknown.
fn resolved(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest: Vec<Component<'_>> = Vec::new();
    let mut base = loop {
        if let Ok(c) = fs::canonicalize(existing) {
            break c;
        }
        let Some(last) = existing.components().next_back() else {
            return Some(absolute);
        };
        rest.push(last);
        existing = existing.parent()?;
    };
    for c in rest.into_iter().rev() {
        match c {
            Component::ParentDir => {
                base.pop();
            }
            Component::Normal(n) => base.push(n),
            _ => {}
        }
    }
    Some(base)
}

/// Whether `e` says the path (or a folder above it) does not exist.
pub(crate) fn absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// True when the path's last component names something: not `.`, `..`, a
/// root, or empty.
fn has_final_name(path: &Path) -> bool {
    let text = path.to_string_lossy();
    let trimmed = text.trim_end_matches('/');
    if trimmed == "." || trimmed.ends_with("/.") {
        return false;
    }
    matches!(path.components().next_back(), Some(Component::Normal(_)))
}

/// The leftovers the atomic directory writer makes beside `output`, with the
/// process ids in their names: `.<name>.staging-<pid>` and `.<name>.old-<pid>`.
fn leftover_pid(output_name: &str, entry: &str) -> Option<(u32, bool)> {
    let rest = entry.strip_prefix('.')?.strip_prefix(output_name)?;
    let rest = rest.strip_prefix('.')?;
    let tagged = |tag: &str| rest.strip_prefix(tag).and_then(|r| r.strip_prefix('-'));
    let (pid, staging) = if let Some(p) = tagged(STAGING) {
        (p, true)
    } else if let Some(p) = tagged(MOVED_ASIDE) {
        (p, false)
    } else {
        return None;
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || pid.starts_with('0') {
        return None;
    }
    pid.parse().ok().map(|p| (p, staging))
}

/// Whether process `pid` may still be running. Where that cannot be told
/// (no `/proc`), every process counts as running, so nothing is removed.
fn maybe_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the staging folders beside `output` left by builds whose process
/// is gone. A `.old-<pid>` folder (an earlier artifact moved aside) is removed
/// only when the output itself is in place, so it is never the only copy.
/// Returns what was removed.
pub fn remove_stale_staging(output: &Path) -> Vec<PathBuf> {
    let Some(name) = output.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let output_present = output.exists();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, staging)) = leftover_pid(&name, &entry_name) else {
            continue;
        };
        if !staging && !output_present {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        if !ft.is_dir() || maybe_running(pid) {
            continue;
        }
        let path = entry.path();
        if fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_leftover_names_match() {
        assert_eq!(leftover_pid("m", ".m.staging-123"), Some((123, true)));
        assert_eq!(leftover_pid("m", ".m.old-7"), Some((7, false)));
        assert_eq!(leftover_pid("m", ".m.staging-"), None);
        assert_eq!(leftover_pid("m", ".m.staging-12x"), None);
        assert_eq!(leftover_pid("m", ".m.staging-012"), None);
        assert_eq!(leftover_pid("m", ".mm.staging-12"), None);
        assert_eq!(leftover_pid("m", "m.staging-12"), None);
        assert_eq!(leftover_pid("m", ".m.lock"), None);
        assert_eq!(leftover_pid("m", ".m.tmp-12"), None);
    }

    #[test]
    fn names_that_are_not_folders_are_refused() {
        for p in [".", "..", "/", "a/..", "a/.", "./", "a/./"] {
            assert!(!has_final_name(Path::new(p)), "{p}");
        }
        for p in ["a", "a/b", "a/b/", "./a", "../a"] {
            assert!(has_final_name(Path::new(p)), "{p}");
        }
    }
}
