//! Release builds carry the phone app's files (`web/`, with the WebAssembly
//! package in `web/pkg/`) inside the binary (see `src/app.rs`): rebuild them
//! when any file there changes or appears. Debug builds read `web/` at run
//! time instead, so editing the app never rebuilds the server in development.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // PROFILE is "release" for the release profile and those inheriting from
    // it, the builds in which rust-embed embeds (no debug assertions).
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rerun-if-changed=../web");
    }
}
