//! Rendering the IR as Graphviz DOT or Mermaid, for `npe graph`.

use super::{Ir, NodeBody};
use crate::types::Category;
use petgraph::visit::EdgeRef;
use std::fmt::Write;

/// Output format of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

fn fill(cat: Option<Category>) -> &'static str {
    match cat {
        None => "#e8e8e8",
        Some(Category::Backbone) => "#cfe2f3",
        Some(Category::Head) => "#d9ead3",
        Some(Category::Pem) => "#fce5cd",
        Some(Category::Loss) => "#f4cccc",
        Some(Category::Adjuster) => "#fff2cc",
        Some(Category::Evaluator) => "#d9d2e9",
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Render `ir` in `format`.
pub fn render(ir: &Ir, format: Format) -> String {
    match format {
        Format::Dot => dot(ir),
        Format::Mermaid => mermaid(ir),
    }
}

fn dot(ir: &Ir) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph \"{}\" {{", escape(&ir.name));
    let _ = writeln!(s, "  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];");
    let _ = writeln!(s, "  edge [fontname=\"Helvetica\", fontsize=10];");
    for &i in &ir.order {
        let n = &ir.graph[i];
        let label = match &n.body {
            NodeBody::Data => {
                format!("data\\n{}\\n{} classes", ir.data_spec.source, ir.data.num_classes)
            }
            NodeBody::Op(op) => format!("{}\\n{}\\n{}", escape(&n.name), op.kind(), escape(&n.sig.to_string())),
        };
        let shape = match n.category() {
            None => "cylinder",
            Some(Category::Loss) => "octagon",
            Some(Category::Evaluator) => "note",
            _ => "box",
        };
        let _ = writeln!(
            s,
            "  \"{}\" [label=\"{label}\", shape={shape}, fillcolor=\"{}\"];",
            escape(&n.name),
            fill(n.category())
        );
    }
    for e in ir.graph.edge_references() {
        let (a, b) = (&ir.graph[e.source()], &ir.graph[e.target()]);
        let port = &e.weight().port;
        let attr = if port == "input" { String::new() } else { format!(" [label=\"{}\"]", escape(port)) };
        let _ = writeln!(s, "  \"{}\" -> \"{}\"{attr};", escape(&a.name), escape(&b.name));
    }
    s.push_str("}\n");
    s
}

fn mermaid(ir: &Ir) -> String {
    let mut s = String::from("flowchart TD\n");
    let id = |name: &str| format!("n_{name}");
    for &i in &ir.order {
        let n = &ir.graph[i];
        let text = match &n.body {
            NodeBody::Data => format!("data: {}", ir.data_spec.source),
            NodeBody::Op(op) => format!("{}: {}<br/>{}", n.name, op.kind(), n.sig),
        };
        let text = text.replace('"', "'");
        let (open, close) = match n.category() {
            None => ("[(", ")]"),
            Some(Category::Loss) => ("{{", "}}"),
            Some(Category::Evaluator) => ("[/", "/]"),
            _ => ("[", "]"),
        };
        let _ = writeln!(s, "  {}{open}\"{text}\"{close}", id(&n.name));
    }
    for e in ir.graph.edge_references() {
        let (a, b) = (&ir.graph[e.source()], &ir.graph[e.target()]);
        let port = &e.weight().port;
        if port == "input" {
            let _ = writeln!(s, "  {} --> {}", id(&a.name), id(&b.name));
        } else {
            let _ = writeln!(s, "  {} -->|{}| {}", id(&a.name), port, id(&b.name));
        }
    }
    for &i in &ir.order {
        let n = &ir.graph[i];
        let _ = writeln!(s, "  style {} fill:{}", id(&n.name), fill(n.category()));
    }
    s
}
