//! Diagnostics: located, human-readable errors and warnings with hints.
//!
//! Every problem found in a pipeline becomes a [`Diagnostic`] that names where it came from
//! (a file position, an environment variable or a `--set` flag) and, where we can, how to fix it.

use std::fmt;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; the pipeline still runs.
    Warning,
    /// The pipeline cannot run.
    Error,
}

/// Where a value (or a problem) came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A position in a file: 1-based line and column.
    File {
        /// Path as the user gave it.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
    },
    /// An `NPE_...` environment variable.
    Env(String),
    /// A `--set key=value` flag.
    Flag(String),
    /// Somewhere else (a built-in default, a program's own registration).
    Other(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, col } => write!(f, "{path}:{line}:{col}"),
            Origin::Env(var) => write!(f, "<environment {var}>"),
            Origin::Flag(flag) => write!(f, "<--set {flag}>"),
            Origin::Other(what) => write!(f, "<{what}>"),
        }
    }
}

/// One located problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where it is.
    pub origin: Origin,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `origin`.
    pub fn error(origin: Origin, message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, origin, message: message.into(), hint: None }
    }

    /// A warning at `origin`.
    pub fn warning(origin: Origin, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, origin, message: message.into(), hint: None }
    }

    /// Attach a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attach a hint if there is one.
    pub fn with_opt_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {level}: {}", self.origin, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A list of diagnostics, errors and warnings mixed, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Add all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Any errors (not just warnings)?
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }

    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No diagnostics at all?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Self(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if close enough to be a plausible typo.
pub fn did_you_mean<'a, I, S>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a S>,
    S: AsRef<str> + 'a + ?Sized,
{
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let c = c.as_ref();
        let score = strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase());
        let close = score >= 0.8 || (word.len() > 2 && c.contains(word)) || strsim::levenshtein(word, c) <= 2;
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let kinds = ["pem", "linear", "resnet_cifar", "cross_entropy"];
        assert_eq!(did_you_mean("resnet_cfar", kinds.iter()), Some("did you mean `resnet_cifar`?".into()));
        assert_eq!(did_you_mean("crossentropy", kinds.iter()), Some("did you mean `cross_entropy`?".into()));
        assert_eq!(did_you_mean("transformer", kinds.iter()), None);
    }

    #[test]
    fn renders_file_line_col_and_hint() {
        let d = Diagnostic::error(Origin::File { path: "p.yaml".into(), line: 3, col: 7 }, "bad").with_hint("fix it");
        assert_eq!(d.to_string(), "p.yaml:3:7: error: bad\n  hint: fix it");
    }
}
