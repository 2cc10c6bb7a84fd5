//! What one sample costs when it leaves at a given exit, from the compiler's
//! cost model (`ir::cost::node_flops_per_sequence`) applied to the artifact's
//! own shapes: the embedding, every layer up to the exit, and every exit head
//! evaluated on the way. A sample that runs to the end also pays the final
//! head; the same artifact without exits pays no exit head at all.

use std::collections::HashMap;

use crate::artifact::ExitRecord;
use crate::base::ModelConfig;
use crate::base::Task;
use crate::diag::Span;
use crate::ir::cost::node_flops_per_sequence;
use crate::ir::{exit_node, model_from_config, Model, NodeIndex, Op};

/// FLOPs of the parts of one sequence of a given length.
#[derive(Debug, Clone)]
struct Parts {
    embed: u64,
    /// Per layer.
    layers: Vec<u64>,
    /// Per exit (in manifest order).
    exit_heads: Vec<u64>,
    head: u64,
}

/// Per-sample cost of the artifact's exits, by sequence length.
pub struct ExitCosts {
    model: Model,
    embed: Option<NodeIndex>,
    layers: Vec<(NodeIndex, NodeIndex)>,
    exits: Vec<(usize, NodeIndex)>,
    head: Option<NodeIndex>,
    cache: HashMap<usize, Parts>,
}

impl ExitCosts {
    /// The cost model of a model with `config`, `task` and `exits`.
    pub fn new(config: &ModelConfig, task: Task, exits: &[ExitRecord]) -> Self {
        let span = Span::new(0, 0);
        let mut model = model_from_config(config, task, span);
        let layers: Vec<(NodeIndex, NodeIndex)> = model
            .layers()
            .iter()
            .map(|l| (l.attention, l.ffn))
            .collect();
        let exits = exits
            .iter()
            .filter_map(|r| {
                let (_, ffn) = *layers.get(r.after.checked_sub(1)?)?;
                let ix = model.add(exit_node(r.after, r.head, task, config, span));
                model.connect(ffn, ix);
                Some((r.after, ix))
            })
            .collect();
        let embed = model.find_op(|op| matches!(op, Op::Embeddings(_)));
        let head = model.find_op(|op| matches!(op, Op::Head(_)));
        ExitCosts {
            model,
            embed,
            layers,
            exits,
            head,
            cache: HashMap::new(),
        }
    }

    fn parts(&mut self, seq: usize) -> &Parts {
        let (model, embed, layers, exits, head) = (
            &self.model,
            self.embed,
            &self.layers,
            &self.exits,
            self.head,
        );
        self.cache.entry(seq).or_insert_with(|| {
            let f = |ix: NodeIndex| node_flops_per_sequence(model.node(ix), seq as u64);
            Parts {
                embed: embed.map_or(0, f),
                layers: layers.iter().map(|&(a, m)| f(a) + f(m)).collect(),
                exit_heads: exits.iter().map(|&(_, ix)| f(ix)).collect(),
                head: head.map_or(0, f),
            }
        })
    }

    /// FLOPs of a sequence of `seq` tokens through every layer and the final
    /// head, evaluating no exit head.
    pub fn without_exits(&mut self, seq: usize) -> u64 {
        let p = self.parts(seq);
        p.embed + p.layers.iter().sum::<u64>() + p.head
    }

    /// FLOPs of a sequence that leaves at exit `exit` (index into the
    /// manifest's exits), or runs to the end (`None`) evaluating every exit
    /// head in `evaluated` on the way.
    pub fn leaving_at(&mut self, seq: usize, exit: Option<usize>, evaluated: &[bool]) -> u64 {
        let after: Vec<usize> = self.exits.iter().map(|(a, _)| *a).collect();
        let p = self.parts(seq);
        let depth = exit
            .and_then(|e| after.get(e).copied())
            .unwrap_or(p.layers.len());
        let heads: u64 = p
            .exit_heads
            .iter()
            .zip(&after)
            .zip(evaluated)
            .enumerate()
            .filter(|(e, ((_, &a), &on))| on && a <= depth && exit.is_none_or(|x| *e <= x))
            .map(|(_, ((h, _), _))| *h)
            .sum();
        let layers: u64 = p.layers.iter().take(depth).sum();
        p.embed + layers + heads + if exit.is_none() { p.head } else { 0 }
    }
}
