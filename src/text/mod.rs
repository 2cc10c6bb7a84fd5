//! Text before it becomes tensors: tokenizers (a checkpoint's, or the
//! built-in models' own), reading a recipe's data files into examples, and
//! the WordPiece vocabulary a pruned model keeps, and encoder-decoder
//! examples (with BART's text infilling). Free of candle; the passes
//! and the lowering stage both read text through here.

pub mod data;
pub mod respelling;
pub mod seq2seq;
pub mod tokenizer;
pub mod vocab;

pub use data::{read_dataset, Example};
pub use tokenizer::TextTokenizer;
