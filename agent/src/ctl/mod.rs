//! tabbyctl's library half: `apply`/`create`/`replace`/`delete` of
//! resource files (validated whole before the first write), calicoctl's
//! tables, and the client side of the node socket. The binary
//! (`bin/tabbyctl`) parses arguments and prints; the lab
//! (`bin/tabbyctl/lab`) uses only this module and the rest of the library.

pub mod apply;
pub mod client;
mod ranges;
pub mod table;
