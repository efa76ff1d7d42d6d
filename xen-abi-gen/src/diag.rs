//! Diagnostics that point at a file, line and column of the spec.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A position in a spec file (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    /// Path of the spec file, as given to the loader.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// An integer for a message: decimal, and hexadecimal too from 0x100 on (`4096 = 0x1000`), so a
/// mask or flag value can be read either way.
pub fn show_int(v: i128) -> String {
    if v.unsigned_abs() < 0x100 {
        v.to_string()
    } else if v < 0 {
        format!("{v} = -{:#x}", v.unsigned_abs())
    } else {
        format!("{v} = {v:#x}")
    }
}

/// A mask for a message: hexadecimal (`0x7`).
pub fn show_mask(v: i128) -> String {
    if v < 0 {
        format!("-{:#x}", v.unsigned_abs())
    } else {
        format!("{v:#x}")
    }
}

/// One error found in the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the problem is.
    pub loc: Loc,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.loc, self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// All errors of one run, sorted by position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        write!(
            f,
            "\n{} error{} in the spec",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

/// Maps byte offsets of one source file to line/column.
#[derive(Clone, Debug)]
pub struct SourceMap {
    file: PathBuf,
    text: String,
    line_starts: Vec<usize>,
    /// Per line, whether it is ASCII: then a column is a byte count, not a character count
    /// (counting made locations quadratic in the length of a long line).
    ascii_lines: Vec<bool>,
}

impl SourceMap {
    /// Index `text`, which was read from `file`.
    pub fn new(file: &Path, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let ascii_lines = line_starts
            .iter()
            .zip(line_starts.iter().skip(1).chain([&text.len()]))
            .map(|(&a, &b)| text.get(a..b).is_some_and(|l| l.is_ascii()))
            .collect();
        SourceMap {
            file: file.to_path_buf(),
            text: text.to_owned(),
            line_starts,
            ascii_lines,
        }
    }

    /// The file this map belongs to.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Location of the byte offset `at` (clamped to the file).
    pub fn loc(&self, at: usize) -> Loc {
        let at = at.min(self.text.len());
        let line = match self.line_starts.binary_search(&at) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = if self.ascii_lines.get(line).copied().unwrap_or(false) {
            at - start
        } else {
            self.text
                .get(start..at)
                .map(|s| s.chars().count())
                .unwrap_or(at - start)
        } + 1;
        Loc {
            file: self.file.clone(),
            line: line + 1,
            col,
        }
    }

    /// Location of the start of a span.
    pub fn span(&self, span: &Range<usize>) -> Loc {
        self.loc(span.start)
    }

    /// A location at the very start of the file.
    pub fn start(&self) -> Loc {
        self.loc(0)
    }
}

/// Collects diagnostics while validating.
#[derive(Debug, Default)]
pub struct Sink {
    diags: Vec<Diagnostic>,
}

impl Sink {
    /// Record an error at `loc`.
    pub fn error(&mut self, loc: Loc, message: impl Into<String>, help: impl Into<String>) {
        let help = help.into();
        self.diags.push(Diagnostic {
            loc,
            message: message.into(),
            help: if help.is_empty() { None } else { Some(help) },
        });
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.diags.is_empty()
    }

    /// Finish: `Ok(())` when no error was recorded.
    pub fn finish(mut self) -> Result<(), Diagnostics> {
        if self.diags.is_empty() {
            return Ok(());
        }
        self.diags.sort_by(|a, b| a.loc.cmp(&b.loc));
        self.diags.dedup();
        Err(Diagnostics(self.diags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_show_hex_from_0x100() {
        assert_eq!(show_int(255), "255");
        assert_eq!(show_int(-3), "-3");
        assert_eq!(show_int(256), "256 = 0x100");
        assert_eq!(show_int(-4096), "-4096 = -0x1000");
        assert_eq!(show_mask(7), "0x7");
    }
}
