//! Netlink plumbing: a batched rtnetlink socket and the messages Tabby sends
//! and reads (routes, links, addresses, neighbours, FDB). Plain data in and
//! out; the policy lives in [`crate::reconcile`].

pub mod family;
pub mod links;
pub mod neigh;
pub mod ntable;
pub mod routes;
pub mod socket;

pub use socket::{NlError, NlSocket, Request};
