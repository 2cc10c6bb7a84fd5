//! The whole front end for a file: read it, parse it, check it against the
//! schema, and fill the default output directory (`out/<file stem>`).

use std::path::{Path, PathBuf};

use super::schema::from_ast;
use crate::diag::Diag;
use crate::diag::{Span, Spanned};
use crate::recipe::Recipe;
use crate::syntax::{parse, read_recipe, SourceText};

/// Reads, parses and checks the recipe at `path`. A diagnostic comes back
/// with the recipe text attached, ready to render; the source is returned so
/// later stages can attach it to their own diagnostics.
pub fn load(path: &Path) -> Result<(Recipe, SourceText), Diag> {
    let source = read_recipe(path)?;
    let base_dir = base_dir_of(path);
    let mut recipe = parse_str(&source.text, &base_dir).map_err(|d| source.attach(d))?;
    if recipe.output.is_none() {
        let stem = path
            .file_stem()
            .map_or_else(|| "recipe".into(), |s| s.to_string_lossy().into_owned());
        recipe.output = Some(Spanned::new(
            base_dir.join("out").join(stem),
            Span::default(),
        ));
    }
    Ok((recipe, source))
}

/// Parses and checks a recipe text whose relative paths resolve against
/// `base_dir`. Leaves `output` empty when the text does not set it.
pub fn parse_str(text: &str, base_dir: &Path) -> Result<Recipe, Diag> {
    let doc = parse(text)?;
    from_ast(&doc, base_dir)
}

fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
