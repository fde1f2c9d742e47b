//! Spec → IR in named passes (resolve, wire, cycles, order, infer, lint); every problem becomes a
//! located diagnostic, all collected in one run.

use super::{Ir, IrEdge, IrNode, NodeBody, Role, Sig};
use crate::data::{DataSig, describe};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::kind::{Adjust, ParseError};
use crate::nodes::Accuracy;
use crate::registry::Registry;
use crate::spec::load::deserialize_all;
use crate::spec::{LoadedPipeline, Task};
use crate::types::{Category, InferCtx};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, HashMap};

/// Build and validate the IR of a loaded pipeline. `Ok` carries the warnings.
pub fn build(loaded: &LoadedPipeline, registry: &Registry) -> Result<(Ir, Diagnostics), Diagnostics> {
    build_with_data(loaded, registry, None)
}

/// Like [`build`], with the data signature measured from the actual data (used at train time,
/// when the files are read, so that e.g. an image folder's real class count is checked).
///
/// The passes run in order, each adding its diagnostics and marking what later passes must skip
/// so that one mistake is reported once: `resolve` (data node, node kinds), `wire` (inputs),
/// `cycles`, `order` (a stable topological order), `infer` (signatures) and `lint` (whole-pipeline
/// checks: losses, double adjustment, untrained PEMs, training settings).
pub fn build_with_data(
    loaded: &LoadedPipeline,
    registry: &Registry,
    data_override: Option<DataSig>,
) -> Result<(Ir, Diagnostics), Diagnostics> {
    let mut p = Passes::resolve(loaded, registry, data_override);
    p.wire();
    p.cycles();
    p.order();
    p.infer();
    p.lint();
    p.finish()
}

/// The state the passes share.
struct Passes<'a> {
    loaded: &'a LoadedPipeline,
    /// The data section with every source option typed and defaulted.
    data_spec: crate::spec::DataSpec,
    data: Option<DataSig>,
    diags: Diagnostics,
    graph: DiGraph<IrNode, IrEdge>,
    index: BTreeMap<String, NodeIndex>,
    data_idx: NodeIndex,
    /// Nodes with an unresolvable input.
    broken: Vec<bool>,
    /// Nodes on a cycle.
    cyclic: Vec<bool>,
    order: Vec<NodeIndex>,
}

impl<'a> Passes<'a> {
    /// Describe the data and parse every node with its kind.
    fn resolve(loaded: &'a LoadedPipeline, registry: &Registry, data_override: Option<DataSig>) -> Self {
        let mut diags = loaded.diagnostics.clone();
        // The sources' options sections, typed and with defaults (what the IR records).
        let mut data_spec = loaded.spec.data.clone();
        if loaded.data_ok {
            crate::data::source::resolve_options(&mut data_spec, &loaded.locator, &mut diags);
        }
        let data = describe_data(loaded, &data_spec, data_override, &mut diags);
        let mut graph: DiGraph<IrNode, IrEdge> = DiGraph::new();
        let mut index = BTreeMap::new();
        let data_sig = data.map(|d| d.image).unwrap_or(Sig::map(Role::Image, 1, 1, 1));
        let data_idx = graph.add_node(IrNode {
            name: "data".into(),
            body: NodeBody::Data,
            sig: data_sig,
            origin: loaded.locator.key("data"),
        });
        index.insert("data".to_string(), data_idx);
        for n in &loaded.spec.nodes {
            if let Some(op) = parse_node(n, registry, &loaded.locator, &mut diags) {
                let origin = loaded.locator.key(&format!("nodes.{}", n.name));
                let idx = graph.add_node(IrNode {
                    name: n.name.clone(),
                    body: NodeBody::Op(op),
                    sig: Sig::scalar(Role::Report),
                    origin,
                });
                index.insert(n.name.clone(), idx);
            }
        }
        let n = graph.node_count();
        Self {
            loaded,
            data_spec,
            data,
            diags,
            graph,
            index,
            data_idx,
            broken: vec![false; n],
            cyclic: vec![false; n],
            order: vec![],
        }
    }

    /// Connect every input to its source; suggestions draw on every node of the file.
    fn wire(&mut self) {
        let (spec, loc) = (&self.loaded.spec, &self.loaded.locator);
        let (graph, index, diags, broken, data_idx) =
            (&mut self.graph, &self.index, &mut self.diags, &mut self.broken, self.data_idx);
        let names: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).chain(["data".to_string()]).collect();
        let op_nodes: Vec<NodeIndex> = graph.node_indices().filter(|&i| i != data_idx).collect();
        for &i in &op_nodes {
            let name = graph[i].name.clone();
            let inputs = graph[i].op().map(|op| op.inputs()).unwrap_or_default();
            for inp in inputs {
                let path = format!("nodes.{name}.{}", inp.port);
                let src = &inp.source;
                let Some(&s) = index.get(&src.node) else {
                    let spec_has = spec.nodes.iter().any(|n| n.name == src.node) || src.node == "data";
                    let msg = if spec_has {
                        format!("`{}` reads node `{}`, which has errors of its own", name, src.node)
                    } else {
                        format!("`{}` reads unknown node `{}`", name, src.node)
                    };
                    if !spec_has {
                        diags.push(
                            Diagnostic::error(loc.value(&path), msg)
                                .with_opt_hint(did_you_mean(&src.node, names.iter())),
                        );
                    }
                    broken[i.index()] = true;
                    continue;
                };
                if let Some(out) = &src.output {
                    let ok = s == data_idx && out == "image";
                    if !ok {
                        let hint = if s == data_idx && out == "label" {
                            "labels reach losses and evaluators automatically; read `data` (the images)".to_string()
                        } else if s == data_idx {
                            "the data node's output is `data` (or `data.image`)".to_string()
                        } else {
                            format!("write just `{}`", src.node)
                        };
                        diags.push(
                            Diagnostic::error(loc.value(&path), format!("node `{}` has no output `{out}`", src.node))
                                .with_hint(hint),
                        );
                        broken[i.index()] = true;
                        continue;
                    }
                }
                if s == i {
                    diags.push(
                        Diagnostic::error(loc.value(&path), format!("cycle: `{name}` reads its own output"))
                            .with_hint("a node's input must come from another node"),
                    );
                }
                graph.add_edge(s, i, IrEdge { port: inp.port.clone() });
            }
        }
    }

    /// Every strongly connected component with more than one node, and self-loops.
    fn cycles(&mut self) {
        let (spec, graph, diags, cyclic) = (&self.loaded.spec, &self.graph, &mut self.diags, &mut self.cyclic);
        for scc in tarjan_scc(&graph) {
            let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
            if scc.len() > 1 || self_loop {
                for &i in &scc {
                    cyclic[i.index()] = true;
                }
                if scc.len() > 1 {
                    let mut members: Vec<NodeIndex> = scc.clone();
                    members.sort_by_key(|&i| spec.nodes.iter().position(|n| n.name == graph[i].name));
                    let ring = cycle_path(&graph, &members);
                    let first = &graph[members[0]];
                    diags.push(
                        Diagnostic::error(first.origin.clone(), format!("cycle: {}", ring.join(" → ")))
                            .with_hint("the pipeline must be a DAG: break the loop by changing one of these inputs"),
                    );
                }
            }
        }
    }

    /// Execution order (only meaningful without cycles): a topological sort that keeps file
    /// order among independent nodes.
    fn order(&mut self) {
        self.order = stable_topo(&self.graph, self.data_idx, &self.cyclic);
    }

    /// Signatures in order; a node whose input failed is skipped (no cascade).
    fn infer(&mut self) {
        let (spec, data, data_idx) = (&self.loaded.spec, self.data, self.data_idx);
        let (graph, index, diags, order) = (&mut self.graph, &self.index, &mut self.diags, &self.order);
        let (broken, cyclic) = (&self.broken, &self.cyclic);
        let ctx = InferCtx {
            num_classes: data.map_or(0, |d| d.num_classes),
            task: spec.task,
            label_size: data.and_then(|d| d.label.spatial),
        };
        let mut inferred = vec![false; graph.node_count()];
        inferred[data_idx.index()] = data.is_some();
        for &i in order {
            if i == data_idx || broken[i.index()] || cyclic[i.index()] {
                continue;
            }
            let NodeBody::Op(op) = &graph[i].body else { continue };
            let op = op.clone();
            let srcs: Vec<NodeIndex> = op.inputs().iter().map(|inp| index[&inp.source.node]).collect();
            if srcs.iter().any(|s| !inferred[s.index()]) {
                continue; // an input already has an error; do not cascade
            }
            let sigs: Vec<Sig> = srcs.iter().map(|s| graph[*s].sig).collect();
            match op.infer(&sigs, &ctx) {
                Ok(sig) => {
                    graph[i].sig = sig;
                    inferred[i.index()] = true;
                }
                Err(msg) => diags.push(Diagnostic::error(
                    graph[i].origin.clone(),
                    format!("node `{}` ({}): {msg}", graph[i].name, op.kind()),
                )),
            }
        }
    }

    /// Whole-pipeline checks.
    fn lint(&mut self) {
        let loc = &self.loaded.locator;
        let all: Vec<NodeIndex> = self.graph.node_indices().collect();
        check_combinations(&self.graph, &all, loc, &mut self.diags);
        let classes = self.data.map_or(0, |d| d.num_classes);
        crate::spec::ranges::check(&self.loaded.spec, loc, &mut self.diags);
        check_training(&self.loaded.spec, &self.graph, &self.index, classes, loc, &mut self.diags);
    }

    /// The IR, or every error found.
    fn finish(self) -> Result<(Ir, Diagnostics), Diagnostics> {
        if self.diags.has_errors() {
            return Err(self.diags);
        }
        let spec = &self.loaded.spec;
        let ir = Ir {
            name: spec.name.clone(),
            seed: spec.seed,
            task: spec.task,
            data_spec: self.data_spec,
            data: self.data.expect("no errors means the data was described"),
            train: spec.train.clone(),
            eval: spec.eval.clone(),
            graph: self.graph,
            order: self.order,
            index: self.index,
        };
        let mut diags = self.diags;
        if let Some(d) = super::size::check_parameters(&ir) {
            diags.push(d);
            return Err(diags);
        }
        Ok((ir, diags))
    }
}

/// Names around a cycle, starting and ending at the first member.
fn cycle_path(graph: &DiGraph<IrNode, IrEdge>, members: &[NodeIndex]) -> Vec<String> {
    let inside: std::collections::HashSet<NodeIndex> = members.iter().copied().collect();
    let start = members[0];
    let mut path = vec![graph[start].name.clone()];
    let mut cur = start;
    let mut seen = std::collections::HashSet::new();
    seen.insert(start);
    loop {
        // Follow an edge to a member: prefer closing the loop once every member is visited.
        let next: Vec<NodeIndex> = graph.neighbors(cur).filter(|n| inside.contains(n)).collect();
        let step = next.iter().find(|n| !seen.contains(n)).or_else(|| next.iter().find(|&&n| n == start));
        match step {
            Some(&n) if n == start => {
                path.push(graph[start].name.clone());
                return path;
            }
            Some(&n) => {
                seen.insert(n);
                path.push(graph[n].name.clone());
                cur = n;
            }
            None => {
                path.push("…".into());
                return path;
            }
        }
    }
}

/// Kahn's algorithm, taking ready nodes in insertion (file) order; nodes on cycles are left out.
fn stable_topo(graph: &DiGraph<IrNode, IrEdge>, first: NodeIndex, cyclic: &[bool]) -> Vec<NodeIndex> {
    let mut indeg: Vec<usize> =
        graph.node_indices().map(|i| graph.neighbors_directed(i, petgraph::Direction::Incoming).count()).collect();
    let mut ready: std::collections::BTreeSet<NodeIndex> =
        graph.node_indices().filter(|i| indeg[i.index()] == 0 && !cyclic[i.index()]).collect();
    let mut out = Vec::with_capacity(graph.node_count());
    if ready.remove(&first) {
        out.push(first);
        for n in graph.neighbors(first) {
            indeg[n.index()] -= 1;
            if indeg[n.index()] == 0 && !cyclic[n.index()] {
                ready.insert(n);
            }
        }
    }
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for n in graph.neighbors(i) {
            indeg[n.index()] -= 1;
            if indeg[n.index()] == 0 && !cyclic[n.index()] {
                ready.insert(n);
            }
        }
    }
    out
}

/// The data node's signature, from the typed data section (or the caller's override); `None`
/// when it cannot be described (the error is reported, unless the section already failed to parse).
fn describe_data(
    loaded: &LoadedPipeline,
    data_spec: &crate::spec::DataSpec,
    data_override: Option<DataSig>,
    diags: &mut Diagnostics,
) -> Option<DataSig> {
    let loc = &loaded.locator;
    let described = match data_override {
        Some(d) => Ok(d),
        None if loaded.data_ok => describe(data_spec),
        None => return None,
    };
    let data = match described {
        Err((path, _)) if path.is_empty() => return None,
        Err((path, msg)) => {
            diags.push(Diagnostic::error(loc.value(&path), msg));
            return None;
        }
        Ok(d) => d,
    };
    match (loaded.spec.task, data.is_dense()) {
        (Task::Classification, true) => diags.push(
            Diagnostic::error(
                loc.value("data.source"),
                "this source has per-pixel labels but `task` is classification",
            )
            .with_hint("add `task: segmentation`"),
        ),
        (Task::Segmentation, false) => {
            let dense: Vec<_> =
                crate::data::source::all().iter().filter(|s| s.segmentation()).map(|s| s.name()).collect();
            diags.push(
                Diagnostic::error(loc.value("task"), "`task: segmentation` needs a source with per-pixel labels")
                    .with_hint(format!("segmentation sources: {}", dense.join(", "))),
            )
        }
        _ => {}
    }
    Some(data)
}

/// One node's kind and parameters parsed by the registry; every error is reported at its field.
fn parse_node(
    n: &crate::spec::NodeSpec,
    registry: &Registry,
    loc: &crate::spec::Locator,
    diags: &mut Diagnostics,
) -> Option<std::sync::Arc<dyn crate::kind::Node>> {
    let path = format!("nodes.{}", n.name);
    match registry.parse(&n.kind, &n.params) {
        Ok(op) => return Some(op),
        Err(ParseError::UnknownKind) => diags.push(
            Diagnostic::error(loc.value(&format!("{path}.kind")), format!("unknown node kind `{}`", n.kind))
                .with_opt_hint(
                    did_you_mean(&n.kind, registry.names().iter())
                        .or_else(|| Some("`npe kinds` lists the kinds".into())),
                ),
        ),
        Err(ParseError::Serde(_)) => {
            // Report every bad field of the node, not just the first.
            let _ = deserialize_all(&n.params, &path, loc, diags, |p| match registry.parse(&n.kind, p) {
                Ok(op) => Ok(op),
                Err(ParseError::Serde(e)) => Err(e),
                Err(_) => Err(figment::Error::from(String::from("invalid node"))),
            });
        }
        Err(ParseError::Custom(m)) => diags.push(Diagnostic::error(loc.key(&path), format!("node `{}`: {m}", n.name))),
    }
    None
}

/// Forbidden and suspicious combinations of node kinds.
fn check_combinations(
    graph: &DiGraph<IrNode, IrEdge>,
    order: &[NodeIndex],
    loc: &crate::spec::Locator,
    diags: &mut Diagnostics,
) {
    let by_name: HashMap<&str, &IrNode> = graph.node_weights().map(|n| (n.name.as_str(), n)).collect();
    // Logits trained with a loss that adds the counts' log-prior.
    let la_trained: HashMap<String, &str> = graph
        .node_weights()
        .filter_map(|n| match n.op()?.adjusts()? {
            Adjust::TrainsWithCounts(logits) => Some((logits.node.clone(), n.name.as_str())),
            Adjust::AtInference(_) => None,
        })
        .collect();
    // A node is trained when a loss reads it, directly or through adjusters (e.g. a resize).
    let mut trained = std::collections::HashSet::new();
    let mut has_loss = false;
    for i in graph.node_indices() {
        if graph[i].category() != Some(Category::Loss) {
            continue;
        }
        has_loss = true;
        let mut stack = vec![i];
        while let Some(j) = stack.pop() {
            for src in graph.neighbors_directed(j, petgraph::Direction::Incoming) {
                if trained.insert(graph[src].name.clone()) && graph[src].category() == Some(Category::Adjuster) {
                    stack.push(src);
                }
            }
        }
    }
    for &i in order {
        let n = &graph[i];
        let Some(op) = n.op() else { continue };
        if let Some(Adjust::AtInference(logits)) = op.adjusts() {
            if let Some(loss) = la_trained.get(&logits.node) {
                let port = op.inputs().into_iter().find(|i| &i.source == logits).map_or("input".into(), |i| i.port);
                diags.push(
                    Diagnostic::error(
                        loc.value(&format!("nodes.{}.{port}", n.name)),
                        format!(
                            "double adjustment: `{}` is trained with logit-adjusted CE (`{loss}`) and `{}` adjusts it again",
                            logits.node, n.name
                        ),
                    )
                    .with_hint("adjust logits trained with plain `cross_entropy`, or drop one of the two adjustments"),
                );
            }
        }
        if op.category() == Category::Pem && !trained.contains(&n.name) {
            diags.push(
                Diagnostic::warning(
                    n.origin.clone(),
                    format!(
                        "PEM `{}` is not trained by any `one_way_logistic` loss; its estimate stays at initialisation",
                        n.name
                    ),
                )
                .with_hint(format!("add `{}_loss: {{kind: one_way_logistic, input: {}}}`", n.name, n.name)),
            );
        }
    }
    if !has_loss && !by_name.is_empty() {
        diags.push(
            Diagnostic::error(loc.key("nodes"), "the pipeline has no loss: nothing would be trained")
                .with_hint("add e.g. `ce: {kind: cross_entropy, input: logits}`"),
        );
    }
}

/// Checks of the `train:`/`eval:` sections against the graph.
fn check_training(
    spec: &crate::spec::PipelineSpec,
    graph: &DiGraph<IrNode, IrEdge>,
    index: &BTreeMap<String, NodeIndex>,
    num_classes: usize,
    loc: &crate::spec::Locator,
    diags: &mut Diagnostics,
) {
    let cx = TrainingChecks { graph, index, loc };
    if spec.eval.prior_train_samples == 0 {
        cx.unlabelled_readers(diags);
    }
    for (g, group) in spec.train.optimizer.param_groups.iter().enumerate() {
        for (i, node) in group.nodes.iter().enumerate() {
            let path = format!("train.optimizer.param_groups.{g}.nodes.{i}");
            cx.trainable(&path, node, "parameter group names", "has no parameters", "parameter groups take", diags);
        }
    }
    for (i, f) in spec.train.freeze.iter().enumerate() {
        let path = format!("train.freeze.{i}");
        cx.trainable(&path, f, "`freeze` names", "has no parameters to freeze", "freeze", diags);
    }
    // Without a described data source (its error is already reported) there is no class count
    // to check the groups against.
    if num_classes > 0 {
        cx.accuracy_groups(num_classes, diags);
    }
}

/// What the `train:`/`eval:` checks read: the graph, its names and the file's locations.
struct TrainingChecks<'a> {
    graph: &'a DiGraph<IrNode, IrEdge>,
    index: &'a BTreeMap<String, NodeIndex>,
    loc: &'a crate::spec::Locator,
}

impl TrainingChecks<'_> {
    /// `prior_train_samples: 0` is caught here, not after the last epoch: nodes that read
    /// unlabelled training images at evaluation (the prior fit, count-free calibrations) need some.
    fn unlabelled_readers(&self, diags: &mut Diagnostics) {
        let reader = self.graph.node_weights().find(|n| {
            n.op().is_some_and(|op| {
                let any = op.as_any();
                any.is::<crate::nodes::PriorEstimate>()
                    || any.downcast_ref::<crate::nodes::NpeLa>().is_some_and(|n| !n.calibration_requests().is_empty())
                    || any
                        .downcast_ref::<crate::nodes::PosthocLa>()
                        .is_some_and(|n| !n.calibration_requests().is_empty())
            })
        });
        if let Some(node) = reader {
            diags.push(
                Diagnostic::error(
                    self.loc.value("eval.prior_train_samples"),
                    format!(
                        "`prior_train_samples` is 0, but node `{}` ({}) reads unlabelled training images at evaluation",
                        node.name,
                        node.kind()
                    ),
                )
                .with_hint("set it > 0 (default 5000), or remove that node"),
            );
        }
    }

    /// `node`, named at `path`, must exist and have parameters (a backbone, head or PEM).
    fn trainable(&self, path: &str, node: &str, names: &str, lacks: &str, takes: &str, diags: &mut Diagnostics) {
        match self.index.get(node).map(|&n| &self.graph[n]) {
            None => diags.push(
                Diagnostic::error(self.loc.value(path), format!("{names} unknown node `{node}`"))
                    .with_opt_hint(did_you_mean(node, self.index.keys())),
            ),
            Some(n) if !n.category().is_some_and(Category::has_parameters) => diags.push(
                Diagnostic::error(self.loc.value(path), format!("`{node}` ({}) {lacks}", n.kind()))
                    .with_hint(format!("{takes} backbones, heads or PEMs")),
            ),
            _ => {}
        }
    }

    /// Every `accuracy` node's class groups must fit the data's class count.
    fn accuracy_groups(&self, num_classes: usize, diags: &mut Diagnostics) {
        for n in self.graph.node_weights() {
            if let Some(p) = n.op().and_then(|op| op.as_any().downcast_ref::<Accuracy>()) {
                if let Err(m) = p.groups.validate(num_classes) {
                    diags.push(Diagnostic::error(
                        self.loc.value(&format!("nodes.{}.groups", n.name)),
                        format!("node `{}`: {m}", n.name),
                    ));
                }
            }
        }
    }
}
