//! The teacher an artifact was built from, found and checked: the one its
//! manifest records (as recorded, or relative to the recipe's folder), which
//! must still have the weights the artifact was built from
//! (`checkpoint_sha256`). `plcc bench` compares an artifact with it by
//! default; `plcc calibrate` measures the report's fidelity against it.

use std::path::{Path, PathBuf};

use crate::artifact::{is_artifact_dir, read_manifest, Manifest};
use crate::base::TeacherRef;
use crate::diag::Diag;
use crate::lower::teacher::checkpoint_sha256;
use crate::recipe::{parse_str, Recipe};

/// The teacher of the artifact `model`, when `model` is an artifact: the
/// one its manifest records, which must still have the weights the artifact
/// was built from.
pub fn recorded_teacher(model: &str) -> Result<Option<String>, Diag> {
    let dir = Path::new(model);
    if !dir.is_dir() || !is_artifact_dir(dir) {
        return Ok(None);
    }
    let manifest = read_manifest(dir)?;
    let recipe = recorded_recipe(&manifest);
    let teacher = find_teacher(model, &manifest, recipe.as_ref())?;
    let pretrained = recipe.as_ref().is_some_and(|r| r.pretrain.is_some());
    check_teacher(model, &manifest, &teacher, pretrained)?;
    Ok(Some(match teacher {
        TeacherRef::Builtin(name) => format!("builtin:{name}"),
        TeacherRef::Dir(d) => d.display().to_string(),
    }))
}

/// The recipe the manifest records, read again relative to its file's
/// folder, when it names its file and still parses.
pub fn recorded_recipe(manifest: &Manifest) -> Option<Recipe> {
    let file = manifest.recipe.file.as_ref()?;
    let base = Path::new(file).parent().unwrap_or(Path::new("."));
    parse_str(&manifest.recipe.text, base).ok()
}

/// Where the teacher the manifest records is now: as recorded, or relative
/// to the recipe's folder.
fn find_teacher(
    model: &str,
    manifest: &Manifest,
    recipe: Option<&Recipe>,
) -> Result<TeacherRef, Diag> {
    let recorded = &manifest.source.teacher;
    if let Some(name) = recorded.strip_prefix("builtin:") {
        return Ok(TeacherRef::Builtin(name.to_string()));
    }
    let mut tried = vec![PathBuf::from(recorded)];
    if let Some(TeacherRef::Dir(d)) = recipe.map(|r| &r.teacher.value) {
        tried.push(d.clone());
    }
    match tried.iter().find(|p| p.is_dir()) {
        Some(p) => Ok(TeacherRef::Dir(p.clone())),
        None => Err(Diag::new(
            "plcc::bench::teacher-not-found",
            format!("cannot find the teacher of artifact `{model}`"),
        )
        .note(format!(
            "looked for {}",
            tried
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .note("the manifest records the teacher relative to the directory the build ran in")
        .help(
            "give the teacher with `--against DIR`, or measure the artifact alone with `--alone`",
        )),
    }
}

/// Refuses a teacher whose weights are not those the artifact was built
/// from (hashed as the build hashed them). `pretrained`: the recipe
/// pretrained the teacher during the build, so its weights exist nowhere.
fn check_teacher(
    model: &str,
    manifest: &Manifest,
    teacher: &TeacherRef,
    pretrained: bool,
) -> Result<(), Diag> {
    let found = checkpoint_sha256(teacher)?;
    let recorded = &manifest.source.checkpoint_sha256;
    if &found == recorded {
        return Ok(());
    }
    let shown = match teacher {
        TeacherRef::Builtin(name) => format!("builtin:{name}"),
        TeacherRef::Dir(d) => d.join("model.safetensors").display().to_string(),
    };
    let mut d = Diag::new(
        "plcc::bench::teacher-changed",
        format!("the teacher at `{shown}` is not the one artifact `{model}` was built from"),
    )
    .note(format!(
        "its weights hash to sha256 {found}; the manifest records {recorded}"
    ))
    .note("fidelity measured against it would not be fidelity to the artifact's teacher");
    if pretrained {
        d = d.note("the recipe pretrains the teacher during the build; that teacher is not kept");
    }
    Err(d
    .help("rebuild the artifact from this teacher, compare with this model anyway by naming it with `--against`, or measure the artifact alone with `--alone`"))
}
