//! Interop harness: network namespaces, real BIRD 2 and GoBGP daemons.
#![allow(dead_code)]

pub mod bird;
pub mod gobgp;
pub mod inproc;
pub mod netns;
pub mod raw;
pub mod tabby;

mod wait;

#[allow(unused_imports)]
pub use wait::{eventually, wait_until};
