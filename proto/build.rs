//! Compiles `spddl/v1/*.proto` with protox (a protobuf compiler in Rust, so no system `protoc`)
//! and generates the prost messages and tonic services. Only with the `grpc` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=spddl");
    if std::env::var_os("CARGO_FEATURE_GRPC").is_none() {
        return Ok(());
    }
    let files = [
        "spddl/v1/messages.proto",
        "spddl/v1/aggregator.proto",
        "spddl/v1/client.proto",
        "spddl/v1/fog.proto",
        "spddl/v1/keyholder.proto",
    ];
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
