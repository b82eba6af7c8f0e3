//! The engine, in the order a frame flows through it: decode ([`image`]) → input sanity
//! ([`sanity`]) → model input ([`preprocess`]) → dropout masks ([`sampler`]) → ONNX Runtime
//! ([`model`]) → maps ([`uncertainty`]) and frame scores ([`score`]) and the trust score ([`trust`]) → [`pipeline`], which
//! draws samples in chunks until the decision is settled ([`anytime`]); then the
//! confidence decision ([`gate`]) and the one frame loop ([`processor`]). [`config`] resolves
//! the parameters against the model's metadata. Nothing here writes files or knows about bags.

pub mod anytime;
pub mod config;
pub mod gate;
pub mod image;
pub mod model;
pub mod pipeline;
pub mod preprocess;
pub mod processor;
pub mod sampler;
pub mod sanity;
pub mod score;
pub mod trust;
pub mod uncertainty;
