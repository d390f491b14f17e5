//! Lab: engine simulator, load generator, chaos scenarios and the demo.
#![forbid(unsafe_code)]
