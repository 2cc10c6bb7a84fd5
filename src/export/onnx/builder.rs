//! Building an ONNX graph node by node: fresh value names, initializers from
//! Rust slices, and the attribute forms the exporters use. Values are named
//! by the module they belong to, so a graph reads like the model.

use super::proto::{
    attribute_type, data_type, dimension, type_proto, AttributeProto, Dimension, GraphProto,
    NodeProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};

/// A graph under construction.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    used: std::collections::HashMap<String, usize>,
    /// The operator domains other than ONNX's own that nodes use.
    domains: std::collections::BTreeMap<&'static str, i64>,
}

/// An operator domain other than ONNX's own, and the version the graph
/// imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain {
    pub name: &'static str,
    pub version: i64,
}

/// One dimension of a graph input or output: fixed or named (dynamic).
pub enum Dim<'a> {
    Fixed(usize),
    Named(&'a str),
}

/// An attribute of one node.
pub enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, Vec<i64>),
    Float(&'a str, f32),
}

impl Attr<'_> {
    fn proto(&self) -> AttributeProto {
        match self {
            Attr::Int(name, i) => AttributeProto {
                name: name.to_string(),
                r#type: attribute_type::INT,
                i: *i,
                ..Default::default()
            },
            Attr::Ints(name, ints) => AttributeProto {
                name: name.to_string(),
                r#type: attribute_type::INTS,
                ints: ints.clone(),
                ..Default::default()
            },
            Attr::Float(name, f) => AttributeProto {
                name: name.to_string(),
                r#type: attribute_type::FLOAT,
                f: *f,
                ..Default::default()
            },
        }
    }
}

/// The low 4 bits of each value, two to a byte, the first in the low nibble
/// (an odd count leaves the last high nibble zero).
pub fn nibbles(values: impl IntoIterator<Item = u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut values = values.into_iter();
    while let Some(lo) = values.next() {
        let hi = values.next().unwrap_or(0);
        out.push((lo & 0x0f) | ((hi & 0x0f) << 4));
    }
    out
}

fn value_info(name: &str, elem_type: i32, dims: &[Dim<'_>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
                Dim::Named(s) => dimension::Value::DimParam(s.to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
    }
}

impl GraphBuilder {
    /// A name not used before, built from `hint`.
    pub fn fresh(&mut self, hint: &str) -> String {
        let n = self.used.entry(hint.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            hint.to_string()
        } else {
            format!("{hint}_{}", *n - 1)
        }
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem_type: i32, dims: &[Dim<'_>]) -> String {
        self.used.insert(name.to_string(), 1);
        self.inputs.push(value_info(name, elem_type, dims));
        name.to_string()
    }

    /// Declares `value` a graph output named `name`.
    pub fn output(&mut self, value: &str, name: &str, elem_type: i32, dims: &[Dim<'_>]) {
        self.op("Identity", &[value], &[], name);
        self.outputs.push(value_info(name, elem_type, dims));
    }

    /// Adds node `op` with one output named from `hint`; returns that name.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: &[Attr<'_>], hint: &str) -> String {
        self.node(None, op, inputs, attrs, hint)
    }

    /// Adds node `op` of operator domain `domain` with one output named
    /// from `hint`; returns that name. An empty input name leaves an
    /// optional input out.
    pub fn op_in(
        &mut self,
        domain: Domain,
        op: &str,
        inputs: &[&str],
        attrs: &[Attr<'_>],
        hint: &str,
    ) -> String {
        self.domains.insert(domain.name, domain.version);
        self.node(Some(domain), op, inputs, attrs, hint)
    }

    fn node(
        &mut self,
        domain: Option<Domain>,
        op: &str,
        inputs: &[&str],
        attrs: &[Attr<'_>],
        hint: &str,
    ) -> String {
        let out = self.fresh(hint);
        let name = self.fresh(&format!("{out}/{op}"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name,
            op_type: op.to_string(),
            domain: domain.map_or(String::new(), |d| d.name.to_string()),
            attribute: attrs.iter().map(Attr::proto).collect(),
        });
        out
    }

    /// The operator domains other than ONNX's own that the nodes use.
    pub fn domains(&self) -> impl Iterator<Item = Domain> + '_ {
        self.domains
            .iter()
            .map(|(&name, &version)| Domain { name, version })
    }

    fn initializer(&mut self, hint: &str, data_type: i32, dims: &[usize], raw: Vec<u8>) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.clone(),
            raw_data: raw,
        });
        name
    }

    pub fn f32s(&mut self, hint: &str, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(hint, data_type::FLOAT, dims, raw)
    }

    pub fn u8s(&mut self, hint: &str, dims: &[usize], values: Vec<u8>) -> String {
        self.initializer(hint, data_type::UINT8, dims, values)
    }

    pub fn i8s(&mut self, hint: &str, dims: &[usize], values: &[i8]) -> String {
        let raw = values.iter().map(|&v| v as u8).collect();
        self.initializer(hint, data_type::INT8, dims, raw)
    }

    /// Values within −8..=7 as INT4, two to a byte, the first in the low
    /// nibble.
    pub fn i4s(&mut self, hint: &str, dims: &[usize], values: &[i8]) -> String {
        let raw = nibbles(values.iter().map(|&v| v as u8));
        self.initializer(hint, data_type::INT4, dims, raw)
    }

    pub fn i64s(&mut self, hint: &str, values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(hint, data_type::INT64, &[values.len()], raw)
    }

    /// A scalar i64 constant.
    pub fn i64_scalar(&mut self, hint: &str, value: i64) -> String {
        self.initializer(hint, data_type::INT64, &[], value.to_le_bytes().to_vec())
    }

    /// A scalar f32 constant.
    pub fn scalar(&mut self, hint: &str, value: f32) -> String {
        self.initializer(hint, data_type::FLOAT, &[], value.to_le_bytes().to_vec())
    }

    /// The bytes the initializers hold.
    pub fn initializer_bytes(&self) -> usize {
        self.initializers.iter().map(|t| t.raw_data.len()).sum()
    }

    pub fn finish(self, name: &str) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: name.to_string(),
            initializer: self.initializers,
            input: self.inputs,
            output: self.outputs,
        }
    }
}
