//! Quantization: GPTQ's calibration of the student's weights (`gptq`),
//! then every planned quantizer applied and the weights packed (`pack`).

pub mod gptq;
pub mod pack;
