//! `Model`: the model graph (a petgraph `StableDiGraph`, so node indices stay
//! valid when passes remove nodes) and the queries passes share: the
//! deterministic node order, the student layers, the linear modules.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;

use super::linear::Linear;
use super::node::{Edge, Node, Op};

/// The model graph.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub graph: StableDiGraph<Node, Edge>,
}

/// One student layer: its attention and FFN nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// 1-based student position.
    pub student: usize,
    /// 0-based teacher layer it was taken from.
    pub teacher: usize,
    /// The (self-)attention node.
    #[serde(skip)]
    pub attention: NodeIndex,
    /// An encoder-decoder's cross-attention node, between the two.
    #[serde(skip)]
    pub cross: Option<NodeIndex>,
    #[serde(skip)]
    pub ffn: NodeIndex,
}

impl Model {
    pub fn new() -> Self {
        Model::default()
    }

    pub fn add(&mut self, node: Node) -> NodeIndex {
        self.graph.add_node(node)
    }

    /// Connects `from → to` with the tensor type `from` produces.
    pub fn connect(&mut self, from: NodeIndex, to: NodeIndex) {
        let ty = self.graph[from].output_type();
        self.graph.add_edge(from, to, Edge { ty });
    }

    pub fn node(&self, ix: NodeIndex) -> &Node {
        &self.graph[ix]
    }

    pub fn node_mut(&mut self, ix: NodeIndex) -> &mut Node {
        &mut self.graph[ix]
    }

    pub fn find(&self, name: &str) -> Option<NodeIndex> {
        self.graph
            .node_indices()
            .find(|&ix| self.graph[ix].name == name)
    }

    /// Predecessors of `ix`, in index order.
    pub fn inputs(&self, ix: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<_> = self
            .graph
            .neighbors_directed(ix, Direction::Incoming)
            .collect();
        v.sort();
        v
    }

    /// Successors of `ix`, in index order.
    pub fn outputs(&self, ix: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<_> = self
            .graph
            .neighbors_directed(ix, Direction::Outgoing)
            .collect();
        v.sort();
        v
    }

    /// Topological order, deterministic: among ready nodes, exit heads first
    /// (so an exit prints right after its layer), then by node index.
    /// `None` if the graph has a cycle.
    pub fn order(&self) -> Option<Vec<NodeIndex>> {
        let key = |ix: NodeIndex| (!matches!(self.graph[ix].op, Op::Exit(_)), ix.index());
        let mut indegree: std::collections::HashMap<NodeIndex, usize> = self
            .graph
            .node_indices()
            .map(|ix| {
                (
                    ix,
                    self.graph
                        .neighbors_directed(ix, Direction::Incoming)
                        .count(),
                )
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<((bool, usize), NodeIndex)>> = indegree
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&ix, _)| Reverse((key(ix), ix)))
            .collect();
        let mut out = Vec::with_capacity(self.graph.node_count());
        while let Some(Reverse((_, ix))) = ready.pop() {
            out.push(ix);
            for e in self.graph.edges_directed(ix, Direction::Outgoing) {
                let t = e.target();
                if let Some(d) = indegree.get_mut(&t) {
                    *d -= 1;
                    if *d == 0 {
                        ready.push(Reverse((key(t), t)));
                    }
                }
            }
        }
        (out.len() == self.graph.node_count()).then_some(out)
    }

    /// Nodes in `order()`, or in index order if the graph has a cycle.
    pub fn ordered_nodes(&self) -> Vec<NodeIndex> {
        self.order()
            .unwrap_or_else(|| self.graph.node_indices().collect())
    }

    /// The student layers along the main path, in order: an
    /// encoder-decoder's decoder layers (see `encoder_layers`).
    pub fn layers(&self) -> Vec<Layer> {
        self.stack_layers(false)
    }

    /// An encoder-decoder's encoder layers, in order (`teacher` is the
    /// encoder layer's index); none for other models.
    pub fn encoder_layers(&self) -> Vec<Layer> {
        self.stack_layers(true)
    }

    /// The layers of the encoder (`encoder`) or of the stack that ends in
    /// the head.
    fn stack_layers(&self, encoder: bool) -> Vec<Layer> {
        let mut layers = Vec::new();
        let mut pending_attention: Option<NodeIndex> = None;
        let mut pending_cross: Option<NodeIndex> = None;
        for ix in self.ordered_nodes() {
            let node = &self.graph[ix];
            if node.encoder_layer.is_some() != encoder {
                continue;
            }
            match &node.op {
                Op::Attention(a) if a.cross => pending_cross = Some(ix),
                Op::Attention(_) => {
                    pending_attention = Some(ix);
                    pending_cross = None;
                }
                Op::Ffn(_) => {
                    if let Some(attention) = pending_attention.take() {
                        let teacher = if encoder {
                            node.encoder_layer
                        } else {
                            node.teacher_layer
                        };
                        layers.push(Layer {
                            student: layers.len() + 1,
                            teacher: teacher.unwrap_or(usize::MAX),
                            attention,
                            cross: pending_cross.take(),
                            ffn: ix,
                        });
                    }
                }
                _ => {}
            }
        }
        layers
    }

    pub fn num_layers(&self) -> usize {
        self.layers().len()
    }

    /// The first node whose op matches.
    pub fn find_op(&self, pred: impl Fn(&Op) -> bool) -> Option<NodeIndex> {
        self.ordered_nodes()
            .into_iter()
            .find(|&ix| pred(&self.graph[ix].op))
    }

    /// The exit head nodes, in order.
    pub fn exits(&self) -> Vec<NodeIndex> {
        self.ordered_nodes()
            .into_iter()
            .filter(|&ix| matches!(self.graph[ix].op, Op::Exit(_)))
            .collect()
    }

    /// Every linear module with the node that owns it, in node order.
    pub fn linears(&self) -> Vec<(NodeIndex, Linear)> {
        self.ordered_nodes()
            .into_iter()
            .flat_map(|ix| self.graph[ix].linears().into_iter().map(move |l| (ix, l)))
            .collect()
    }

    /// Removes `ix`, connecting each of its predecessors to each of its successors.
    pub fn remove_and_bridge(&mut self, ix: NodeIndex) {
        let ins = self.inputs(ix);
        let outs = self.outputs(ix);
        self.graph.remove_node(ix);
        for &a in &ins {
            for &b in &outs {
                self.connect(a, b);
            }
        }
    }

    /// Re-derives every edge's tensor type from its source node (after a pass
    /// changed shapes).
    pub fn retype_edges(&mut self) {
        let edges: Vec<_> = self.graph.edge_indices().collect();
        for e in edges {
            if let Some((a, _)) = self.graph.edge_endpoints(e) {
                let ty = self.graph[a].output_type();
                self.graph[e].ty = ty;
            }
        }
    }
}
