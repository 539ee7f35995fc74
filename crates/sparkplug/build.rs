//! Generates the Sparkplug B payload types from `proto/sparkplug_b.proto`.
//!
//! protox parses and checks the schema in Rust, so no `protoc` has to be
//! installed; prost-build turns its descriptors into the Rust types
//! (`$OUT_DIR/org.eclipse.tahu.protobuf.rs`, included by `src/proto.rs`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sparkplug_b.proto");
    let descriptors = protox::compile(["sparkplug_b.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
