//! A source map for YAML: where each key and value of a pipeline file is (line, column).
//!
//! serde (through figment) gives us typed values but forgets positions; this pass walks the
//! parser's events once and remembers, for every dotted path (`nodes.pem.count`,
//! `train.schedule.milestones.0`), the position of its key and of its value. It also finds what
//! serde would silently accept or report without a position: duplicate keys.

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::SourceText;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 lines are 1-based, columns 0-based.
        Pos { line: m.line().max(1), col: m.col() + 1 }
    }
}

/// Positions of every key and value in a YAML document, by dotted path.
#[derive(Clone, Debug, Default)]
pub struct YamlMap {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
    /// Top-level keys in file order (useful for stable, file-ordered output).
    pub order: Vec<String>,
    /// Node names under `nodes:` in file order.
    pub node_order: Vec<String>,
}

impl YamlMap {
    /// Position of the key at `path` (e.g. `nodes.pem`), if it is in the file.
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied()
    }

    /// Position of the value at `path`, falling back to its key.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.values.get(path).or_else(|| self.keys.get(path)).copied()
    }

    /// Best position for `path`: the value, else the key, else the nearest ancestor's.
    pub fn locate(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.value(p) {
                return Some(pos);
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// Best position for the key at `path`, falling back like [`locate`](Self::locate).
    pub fn locate_key(&self, path: &str) -> Option<Pos> {
        self.key(path).or_else(|| self.locate(path))
    }

    /// Parse `src` with yaml-rust2, collecting positions and duplicate-key errors.
    /// A syntax error is returned as `Err` with its position.
    pub fn build(src: &SourceText) -> Result<(YamlMap, Diagnostics), Diagnostic> {
        let mut recv = Receiver { src, map: YamlMap::default(), stack: Vec::new(), dups: Diagnostics::new(), docs: 0 };
        let mut parser = Parser::new_from_str(&src.text);
        if let Err(e) = parser.load(&mut recv, true) {
            let pos = Pos::from(*e.marker());
            return Err(Diagnostic::error(src.at(pos.line, pos.col), format!("YAML syntax: {}", e.info()))
                .with_opt_hint(syntax_hint(e.info())));
        }
        if recv.docs > 1 {
            return Err(Diagnostic::error(src.at(1, 1), "the file holds several YAML documents (`---`)")
                .with_hint("a pipeline is one YAML document: remove the extra `---` sections"));
        }
        Ok((recv.map, recv.dups))
    }
}

/// A hint for common YAML syntax mistakes, keyed on the parser's message.
pub fn syntax_hint(info: &str) -> Option<String> {
    let info = info.to_lowercase();
    if info.contains("repetition limit") {
        Some("anchors and aliases expand to too much data (an alias bomb?); write the values out".into())
    } else if info.contains("recursion limit") {
        Some("the YAML nests too deeply for a pipeline".into())
    } else if info.contains("tab") {
        Some("YAML indentation must use spaces, not tabs".into())
    } else if info.contains("mapping values are not allowed") {
        Some("a value containing `: ` must be quoted, or a key is indented wrongly".into())
    } else if info.contains("did not find expected ',' or '}'") || info.contains("did not find expected ',' or ']'") {
        Some("an inline `{...}` or `[...]` is not closed".into())
    } else if info.contains("quoted scalar") {
        Some("a quoted string is not closed".into())
    } else if info.contains("indentation") || info.contains("did not find expected key") {
        Some("check the indentation: keys of one mapping must line up".into())
    } else {
        None
    }
}

enum Frame {
    Map {
        path: String,
        expect_key: bool,
        key: Option<String>,
        seen: HashMap<String, Pos>,
    },
    Seq {
        path: String,
        index: usize,
    },
    /// A collection used as a mapping key (`? [a, b]: 1`): we do not index inside it.
    Opaque {
        depth: usize,
    },
}

struct Receiver<'a> {
    src: &'a SourceText,
    map: YamlMap,
    stack: Vec<Frame>,
    dups: Diagnostics,
    docs: usize,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

impl Receiver<'_> {
    /// Path of the value about to be read in the current frame, if it is a value position.
    fn value_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, expect_key: false, key, .. }) => key.as_ref().map(|k| join(path, k)),
            Some(Frame::Seq { path, index }) => {
                let p = join(path, &index.to_string());
                *index += 1;
                Some(p)
            }
            _ => None,
        }
    }

    /// After a value is complete, the enclosing map expects a key again.
    fn value_done(&mut self) {
        if let Some(Frame::Map { expect_key, .. }) = self.stack.last_mut() {
            *expect_key = true;
        }
    }

    fn on_scalar(&mut self, text: String, pos: Pos) {
        match self.stack.last_mut() {
            Some(Frame::Opaque { .. }) => {}
            Some(Frame::Map { path, expect_key: true, key, seen }) => {
                let full = join(path, &text);
                if let Some(first) = seen.get(&text) {
                    self.dups.push(
                        Diagnostic::error(self.src.at(pos.line, pos.col), format!("duplicate key `{text}`"))
                            .with_hint(format!("`{text}` is already set at line {}; remove one of them", first.line)),
                    );
                } else {
                    seen.insert(text.clone(), pos);
                }
                if path.is_empty() {
                    self.map.order.push(text.clone());
                } else if path == "nodes" {
                    self.map.node_order.push(text.clone());
                }
                self.map.keys.entry(full).or_insert(pos);
                *key = Some(text);
                if let Some(Frame::Map { expect_key, .. }) = self.stack.last_mut() {
                    *expect_key = false;
                }
            }
            _ => {
                if let Some(p) = self.value_path() {
                    self.map.values.entry(p).or_insert(pos);
                }
                self.value_done();
            }
        }
    }

    fn on_start(&mut self, is_map: bool, pos: Pos) {
        let frame = match self.stack.last_mut() {
            Some(Frame::Opaque { depth }) => {
                *depth += 1;
                return;
            }
            Some(Frame::Map { expect_key: true, .. }) => Frame::Opaque { depth: 1 },
            _ => {
                let path = self.value_path().unwrap_or_default();
                if !path.is_empty() && !is_map {
                    self.map.values.entry(path.clone()).or_insert(pos);
                }
                if is_map {
                    Frame::Map { path, expect_key: true, key: None, seen: HashMap::new() }
                } else {
                    Frame::Seq { path, index: 0 }
                }
            }
        };
        self.stack.push(frame);
    }

    fn on_end(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Opaque { depth }) if *depth > 1 => *depth -= 1,
            Some(Frame::Opaque { .. }) => {
                self.stack.pop();
                // The opaque collection was a key; the map now expects its value.
                if let Some(Frame::Map { expect_key, key, .. }) = self.stack.last_mut() {
                    *expect_key = false;
                    *key = Some("<complex key>".into());
                }
            }
            _ => {
                self.stack.pop();
                self.value_done();
            }
        }
    }
}

impl MarkedEventReceiver for Receiver<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from(mark);
        match ev {
            Event::DocumentStart => self.docs += 1,
            Event::Scalar(text, ..) => self.on_scalar(text, pos),
            Event::Alias(_) => self.on_scalar(String::from("<alias>"), pos),
            Event::MappingStart(..) => self.on_start(true, pos),
            Event::SequenceStart(..) => self.on_start(false, pos),
            Event::MappingEnd | Event::SequenceEnd => self.on_end(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> (YamlMap, Diagnostics) {
        YamlMap::build(&SourceText::from_string("t.yaml", text)).unwrap()
    }

    #[test]
    fn positions_of_nested_keys_and_values() {
        let (m, d) = build("name: x\nnodes:\n  pem:\n    kind: pem\n    hidden: [64, 32]\n");
        assert!(d.is_empty());
        assert_eq!(m.key("nodes.pem"), Some(Pos { line: 3, col: 3 }));
        assert_eq!(m.value("nodes.pem.kind"), Some(Pos { line: 4, col: 11 }));
        assert_eq!(m.value("nodes.pem.hidden.1"), Some(Pos { line: 5, col: 18 }));
        assert_eq!(m.node_order, vec!["pem"]);
        // Unknown paths fall back to the nearest known ancestor.
        assert_eq!(m.locate("nodes.pem.nope"), Some(Pos { line: 3, col: 3 }));
    }

    #[test]
    fn duplicate_keys_are_found_with_both_lines() {
        let (_, d) = build("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n");
        assert_eq!(d.len(), 2);
        assert!(d.0[0].to_string().starts_with("t.yaml:4:3: error: duplicate key `c`"));
        assert!(d.0[1].hint.as_ref().unwrap().contains("line 1"));
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = YamlMap::build(&SourceText::from_string("t.yaml", "a:\n\tb: 1\n")).unwrap_err();
        assert!(matches!(e.origin, crate::diag::Origin::File { line: 2, .. }));
        assert!(e.hint.unwrap().contains("tabs"));
    }
}
