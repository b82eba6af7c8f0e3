//! What people look at: colour maps and overlays ([`render`]), review bundles ([`review`]) and
//! the replay report ([`report`]).

pub mod render;
pub mod report;
pub mod review;
