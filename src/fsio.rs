//! Reading input files without trusting them: every file plcc reads (recipe,
//! checkpoint config, tokenizer and weights, data sets, run inputs, artifact
//! files) must be a regular file no larger than its kind's limit. The file
//! type is checked from metadata before the file is opened, so a FIFO, a
//! device or a directory is refused instead of blocking or failing late.
//! Text files must be UTF-8; the first bad byte is reported by line and column.

use std::io::Read;
use std::path::Path;

use crate::diag::Diag;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One kind of input file: what messages call it, its codes and its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKind {
    /// `recipe`, `checkpoint config`, ... (used in messages).
    pub what: &'static str,
    /// The code of a missing or unreadable file.
    pub unreadable: &'static str,
    /// The code of text that is not UTF-8.
    pub invalid_utf8: &'static str,
    /// The largest accepted file, in bytes.
    pub max_bytes: u64,
}

/// A `.pc` recipe.
pub const RECIPE: FileKind = FileKind {
    what: "recipe",
    unreadable: "plcc::recipe::unreadable",
    invalid_utf8: "plcc::syntax::invalid-utf8",
    max_bytes: MIB,
};

/// A checkpoint's `config.json`.
pub const CONFIG: FileKind = FileKind {
    what: "checkpoint config",
    unreadable: "plcc::checkpoint::missing-config",
    invalid_utf8: "plcc::checkpoint::bad-config",
    max_bytes: 64 * MIB,
};

/// A checkpoint's or artifact's `tokenizer.json`.
pub const TOKENIZER: FileKind = FileKind {
    what: "tokenizer",
    unreadable: "plcc::checkpoint::missing-tokenizer",
    invalid_utf8: "plcc::checkpoint::bad-tokenizer",
    max_bytes: 64 * MIB,
};

/// A checkpoint's `model.safetensors`.
pub const WEIGHTS: FileKind = FileKind {
    what: "checkpoint weights",
    unreadable: "plcc::checkpoint::missing-weights",
    invalid_utf8: "plcc::checkpoint::corrupt-weights",
    max_bytes: 64 * GIB,
};

/// A recipe's data set.
pub const DATA: FileKind = FileKind {
    what: "data file",
    unreadable: "plcc::data::unreadable",
    invalid_utf8: "plcc::data::invalid-utf8",
    max_bytes: 4 * GIB,
};

/// The input lines of `plcc run`, `bench` and `calibrate`.
pub const INPUT: FileKind = FileKind {
    what: "input file",
    unreadable: "plcc::run::bad-input",
    invalid_utf8: "plcc::run::invalid-utf8",
    max_bytes: 4 * GIB,
};

/// An artifact's manifest (a missing one is the reader's own diagnostic).
pub const MANIFEST: FileKind = FileKind {
    what: "artifact manifest",
    unreadable: "plcc::artifact::unreadable",
    invalid_utf8: "plcc::artifact::corrupt",
    max_bytes: 64 * MIB,
};

/// An artifact's weights (a missing file is the reader's own diagnostic).
pub const ARTIFACT_WEIGHTS: FileKind = FileKind {
    what: "artifact weights",
    unreadable: "plcc::artifact::unreadable",
    invalid_utf8: "plcc::artifact::corrupt",
    max_bytes: 64 * GIB,
};

/// An artifact's `tokenizer.json`.
pub const ARTIFACT_TOKENIZER: FileKind = FileKind {
    what: "artifact tokenizer",
    unreadable: "plcc::artifact::unreadable",
    invalid_utf8: "plcc::artifact::corrupt",
    max_bytes: 64 * MIB,
};

/// Checks that `path` is a regular file (symbolic links followed) within
/// `kind`'s size limit, without opening it; returns its length.
pub fn check_regular(path: &Path, kind: &FileKind) -> Result<u64, Diag> {
    check_named(path, path, kind)
}

/// Reads the bytes of `path` after `check_regular`; a file that grows past the
/// limit while it is read is refused as well.
pub fn read_regular(path: &Path, kind: &FileKind) -> Result<Vec<u8>, Diag> {
    read_named(path, path, kind)
}

/// Like `read_regular`, naming the file `name` in messages (e.g. a path
/// relative to the recipe's folder).
pub fn read_named(path: &Path, name: &Path, kind: &FileKind) -> Result<Vec<u8>, Diag> {
    let len = check_named(path, name, kind)?;
    let unreadable =
        |e: std::io::Error| Diag::io(kind.unreadable, &format!("read {}", kind.what), name, &e);
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(kind.max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > kind.max_bytes {
        return Err(too_large(name, kind, bytes.len() as u64));
    }
    Ok(bytes)
}

fn check_named(path: &Path, name: &Path, kind: &FileKind) -> Result<u64, Diag> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Diag::io(kind.unreadable, &format!("read {}", kind.what), name, &e))?;
    if !meta.is_file() {
        return Err(Diag::new(
            "plcc::io::not-a-file",
            format!(
                "the {} `{}` is {}, not a regular file",
                kind.what,
                name.display(),
                file_type_name(&meta.file_type())
            ),
        )
        .help(format!("give the path of a regular {} file", kind.what)));
    }
    if meta.len() > kind.max_bytes {
        return Err(too_large(name, kind, meta.len()));
    }
    Ok(meta.len())
}

/// Reads `path` as UTF-8 text (see `read_regular` and `decode_utf8`).
pub fn read_text(path: &Path, kind: &FileKind) -> Result<String, Diag> {
    decode_utf8(path, kind, read_regular(path, kind)?)
}

/// Decodes the bytes of `path`; invalid UTF-8 is a diagnostic with the byte
/// offset, line and column of the first bad byte.
pub fn decode_utf8(path: &Path, kind: &FileKind, bytes: Vec<u8>) -> Result<String, Diag> {
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line_start = bytes[..offset]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
        let column = offset - line_start + 1;
        Diag::new(
            kind.invalid_utf8,
            format!(
                "`{}` is not valid UTF-8: bad byte 0x{:02X} at offset {offset} (line {line}, column {column})",
                path.display(),
                bytes.get(offset).copied().unwrap_or(0)
            ),
        )
        .help(format!("save the {} as UTF-8", kind.what))
    })
}

fn too_large(path: &Path, kind: &FileKind, len: u64) -> Diag {
    Diag::new(
        "plcc::io::too-large",
        format!(
            "the {} `{}` is {}, more than the limit of {}",
            kind.what,
            path.display(),
            size(len),
            size(kind.max_bytes)
        ),
    )
    .help(format!(
        "a {} larger than {} is not something plcc reads; check the path",
        kind.what,
        size(kind.max_bytes)
    ))
}

/// `1 MiB`, `64 GiB`, `1536 bytes`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= GIB && b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

/// `a directory`, `a FIFO (named pipe)`, ...
fn file_type_name(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_not_a_file() {
        let d = read_regular(&std::env::temp_dir(), &RECIPE).unwrap_err();
        assert_eq!(d.code, "plcc::io::not-a-file");
        assert!(d.message.contains("a directory"), "{}", d.message);
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let path = std::env::temp_dir().join(format!("plcc-fsio-big-{}", std::process::id()));
        std::fs::write(&path, vec![b'a'; (MIB + 1) as usize]).unwrap();
        let d = read_regular(&path, &RECIPE).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert_eq!(d.code, "plcc::io::too-large");
        assert!(d.message.contains("limit of 1 MiB"), "{}", d.message);
    }

    #[test]
    fn invalid_utf8_names_line_and_column() {
        let d = decode_utf8(Path::new("d.txt"), &DATA, b"ok\nab\xffc".to_vec()).unwrap_err();
        assert_eq!(d.code, "plcc::data::invalid-utf8");
        assert!(
            d.message.contains("offset 5 (line 2, column 3)"),
            "{}",
            d.message
        );
    }
}
