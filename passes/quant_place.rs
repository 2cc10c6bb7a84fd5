//! `quant-place`: places weight and activation quantizers on the linear
//! modules whose checkpoint names match each `quantize` directive's glob
//! (embeddings and exit heads included), as annotations on the owning nodes.
//! Activation quantizers apply to module inputs, so they skip embedding
//! lookups; tied modules (the LM head) are quantized through the matrix they
//! share.
//!
//! Relies on the final student structure (`layer-reduce`, `width-prune`,
//! `exit-insert`): module names and row lengths are final. Errors: an invalid
//! glob, a selector matching no module (saying when the module was removed by
//! layer reduction), two quantizers of one kind on one module (both spans), a
//! group size that does not divide a matched module's row length, activation
//! granularities other than `token` / `tensor`, `method: gptq` on a module
//! without a calibration path (embedding tables, heads), an activation
//! quantizer on a module whose weight quantizer keeps float inputs
//! (`activations: float`; both spans).

use std::collections::HashMap;

use crate::base::{Granularity, WeightInputs};
use crate::diag::Span;
use crate::diag::{did_you_mean, Diag};
use crate::ir::{
    model_from_config, ActQuant, Linear, LinearUse, NodeIndex, Op, Program, WeightQuant,
};
use crate::pass::{Facts, Pass, PassCx};
use crate::recipe::{QuantKind, QuantSpec};

pub struct QuantPlace;

impl Pass for QuantPlace {
    fn name(&self) -> &'static str {
        "quant-place"
    }

    fn directive(&self, recipe: &crate::recipe::Recipe) -> Option<crate::diag::Span> {
        recipe.quantizers.first().map(|q| q.span)
    }

    fn description(&self) -> &'static str {
        "place weight / activation quantizers on the modules matched by each selector"
    }

    fn requires(&self) -> Facts {
        Facts::SHAPES | Facts::LAYERS_REDUCED | Facts::WIDTH_PLANNED | Facts::EXITS_PLACED
    }

    fn provides(&self) -> Facts {
        Facts::QUANT_PLACED
    }

    fn run(&self, program: &mut Program, cx: &mut PassCx) -> Result<(), Diag> {
        let modules: Vec<(NodeIndex, Linear)> = program
            .model
            .linears()
            .into_iter()
            .filter(|(_, l)| !l.tied)
            .collect();
        // (module, is a weight quantizer) → the directive that placed it.
        let mut placed: HashMap<(String, bool), Span> = HashMap::new();
        let mut changes: Vec<(NodeIndex, String, &QuantSpec)> = Vec::new();

        for spec in &cx.recipe.quantizers {
            let pattern = glob::Pattern::new(&spec.selector.value).map_err(|e| {
                Diag::new(
                    "plcc::quantize::bad-selector",
                    format!("invalid selector: {}", e.msg),
                )
                .label(spec.selector.span, "not a valid glob")
            })?;
            if spec.kind == QuantKind::Activations {
                if let Granularity::Row | Granularity::Group(_) = spec.granularity.value {
                    return Err(Diag::new(
                        "plcc::quantize::granularity",
                        "activations are quantized per token or per tensor",
                    )
                    .label(spec.granularity.span, "use `token` or `tensor`"));
                }
            }
            let candidates = modules
                .iter()
                .filter(|(_, l)| spec.kind == QuantKind::Weights || l.usage != LinearUse::Lookup);
            let matched: Vec<&(NodeIndex, Linear)> = candidates
                .filter(|(_, l)| pattern.matches(&l.name))
                .collect();
            if matched.is_empty() {
                return Err(no_match(spec, &pattern, &modules, program));
            }
            for (ix, linear) in matched {
                if !spec.method.value.is_rtn() {
                    check_calibration_path(spec, linear, &program.model.node(*ix).op)?;
                }
                if let Granularity::Group(g) = spec.granularity.value {
                    if g == 0 || linear.inp % g != 0 {
                        return Err(Diag::new(
                            "plcc::quantize::group-size",
                            format!(
                                "group size {g} does not divide the row length {} of `{}`",
                                linear.inp, linear.name
                            ),
                        )
                        .label(spec.granularity.span, "groups must tile every row")
                        .label(spec.selector.span, format!("matches `{}`", linear.name)));
                    }
                }
                if let Some(first) = placed.insert(
                    (linear.name.clone(), spec.kind == QuantKind::Weights),
                    spec.selector.span,
                ) {
                    let kind = match spec.kind {
                        QuantKind::Weights => "weight",
                        QuantKind::Activations => "activation",
                    };
                    return Err(Diag::new(
                        "plcc::quantize::conflict",
                        format!("module `{}` gets two {kind} quantizers", linear.name),
                    )
                    .label(spec.selector.span, format!("second {kind} quantizer on `{}`", linear.name))
                    .label(first, "first placed by this selector")
                    .help("make the selectors disjoint: a module has at most one quantizer of each kind"));
                }
                changes.push((*ix, linear.name.clone(), spec));
            }
        }
        check_weight_only(&changes)?;

        // Apply.
        for (ix, module, spec) in changes {
            let node = program.model.node_mut(ix);
            let entry = node.quant.entry(module).or_default();
            match spec.kind {
                QuantKind::Weights => {
                    entry.weights = Some(WeightQuant {
                        bits: spec.bits.value,
                        symmetric: spec.symmetric.value,
                        granularity: spec.granularity.value,
                        scale: spec.scale.value,
                        method: spec.method.value.clone(),
                        inputs: spec.inputs.value,
                        span: spec.span,
                    })
                }
                QuantKind::Activations => {
                    entry.activations = Some(ActQuant {
                        bits: spec.bits.value,
                        symmetric: spec.symmetric.value,
                        granularity: spec.granularity.value,
                        scale: spec.scale.value,
                        span: spec.span,
                    })
                }
            }
        }
        Ok(())
    }
}

/// A module whose weight quantizer keeps float inputs (`activations: float`)
/// cannot also have an activation quantizer.
fn check_weight_only(changes: &[(NodeIndex, String, &QuantSpec)]) -> Result<(), Diag> {
    let weight_only = changes
        .iter()
        .filter(|(_, _, s)| s.kind == QuantKind::Weights && s.inputs.value == WeightInputs::Float);
    for (_, module, w) in weight_only {
        let activation = changes
            .iter()
            .find(|(_, m, s)| m == module && s.kind == QuantKind::Activations);
        if let Some((_, _, a)) = activation {
            return Err(Diag::new(
                "plcc::quantize::conflict",
                format!("module `{module}` keeps float inputs and quantizes them"),
            )
            .label(w.inputs.span, format!("`{module}` keeps float inputs here"))
            .label(a.selector.span, format!("an activation quantizer on `{module}`"))
            .help("remove `activations: float` to quantize the inputs, or make the `quantize activations` selector skip the module"));
        }
    }
    Ok(())
}

/// GPTQ calibrates a module on the inputs it sees inside the network's
/// layers: an embedding table (a lookup) and the heads have no such path.
fn check_calibration_path(spec: &QuantSpec, linear: &Linear, op: &Op) -> Result<(), Diag> {
    if linear.usage != LinearUse::Lookup && matches!(op, Op::Attention(_) | Op::Ffn(_)) {
        return Ok(());
    }
    let what = if linear.usage == LinearUse::Lookup {
        "an embedding table is looked up, not multiplied: it has no inputs to calibrate on"
    } else {
        "GPTQ calibrates the linear modules of the encoder / decoder layers; heads are not"
    };
    Err(Diag::new(
        "plcc::quantize::gptq-no-data-path",
        format!("`method: gptq` cannot quantize `{}`", linear.name),
    )
    .label(spec.method.span, "GPTQ needs the module's inputs on calibration text")
    .label(spec.selector.span, format!("matches `{}`", linear.name))
    .note(what)
    .help("quantize it in a separate `quantize weights` block with round-to-nearest (the default `method: rtn`)"))
}

/// The diagnostic for a selector that matches nothing.
fn no_match(
    spec: &QuantSpec,
    pattern: &glob::Pattern,
    modules: &[(NodeIndex, Linear)],
    program: &Program,
) -> Diag {
    let d = Diag::new(
        "plcc::quantize::no-match",
        format!("selector `{}` matches no module", spec.selector.value),
    );
    let teacher = model_from_config(
        &program.plan.teacher.config,
        program.plan.task,
        Span::default(),
    );
    let removed: Vec<String> = teacher
        .linears()
        .into_iter()
        .map(|(_, l)| l.name)
        .filter(|n| pattern.matches(n) && !modules.iter().any(|(_, l)| &l.name == n))
        .collect();
    if let Some(first) = removed.first() {
        return d
            .label(
                spec.selector.span,
                "matches only modules the student no longer has",
            )
            .note(format!(
                "it matches `{first}`{} of the teacher, removed by layer reduction (`keep_layers`)",
                if removed.len() > 1 {
                    format!(" and {} more", removed.len() - 1)
                } else {
                    String::new()
                }
            ));
    }
    let mut d = d.label(spec.selector.span, "no linear module has a matching name");
    if let Some(s) = did_you_mean(
        &spec.selector.value,
        modules.iter().map(|(_, l)| l.name.as_str()),
    ) {
        d = d.help(format!("did you mean `{s}`?"));
    } else if spec.kind == QuantKind::Activations
        && modules.iter().any(|(_, l)| pattern.matches(&l.name))
    {
        d = d.help("activation quantizers apply to linear inputs; embedding lookups have none");
    }
    let examples: Vec<&str> = modules
        .iter()
        .take(6)
        .map(|(_, l)| l.name.as_str())
        .collect();
    d.note(format!("modules are named like {}", examples.join(", ")))
}
