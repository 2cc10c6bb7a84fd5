//! The model code: BERT-family encoders, GPT-2 and BART on candle, and the
//! pieces they are built from (layer norm and activations, float and
//! fake-quantized linear layers and their packed inference forms, packed
//! embedding tables, pooling and classifier heads, input taps), with what
//! goes into and comes out of a forward pass.

pub mod bart;
pub mod bert;
pub mod gpt2;
pub mod grad_sink;
pub mod heads;
pub mod input_tap;
pub mod joined_linear;
pub mod layers;
pub mod linear;
pub mod linear_grad;
pub mod linear_kernel;
pub mod output;
pub mod packed_table;
pub mod straight_through;
