//! Compiles our proto2 definitions of the Mesos v1 executor API with prost-build,
//! using the `protoc` shipped by `protoc-bin-vendored` so no system protoc is needed.
//! A descriptor set is written too: the JSON mapping reflects over it.

use std::{env, io, path::PathBuf};

fn main() -> io::Result<()> {
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(io::Error::other)?;
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR unset"))?);

    let protos = ["proto/mesos/v1/mesos.proto", "proto/mesos/v1/executor/executor.proto"];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }

    let mut config = prost_build::Config::new();
    config
        .protoc_executable(protoc)
        .enable_type_names()
        .file_descriptor_set_path(out_dir.join("mesos_v1_descriptor.bin"))
        // `bytes::Bytes` for payloads avoids copies when events are decoded from a buffer.
        .bytes(["."]);
    config.compile_protos(&protos, &["proto"])
}
