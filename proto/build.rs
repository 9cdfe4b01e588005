//! Compiles `proto/*.proto` with protox (pure Rust) so that a fresh clone
//! builds without a system `protoc`.

fn main() {
    let files = [
        "proto/bgp.proto",
        "proto/dataplane.proto",
        "proto/ipam.proto",
        "proto/node.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = match protox::compile(files, ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("compiling proto files: {e}"),
    };
    if let Err(e) = tonic_prost_build::configure().compile_fds(fds) {
        panic!("generating Rust from proto files: {e}");
    }
}
