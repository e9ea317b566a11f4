//! The committed header (`include/roomgraph.h`) is what cbindgen generates from this crate: a stale
//! header fails the suite. `ROOMGRAPH_BLESS=1` writes the generated one instead.

use std::path::Path;

#[test]
fn the_committed_header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("utf-8 header");
    let path = crate_dir.join("include/roomgraph.h");
    if std::env::var_os("ROOMGRAPH_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read_to_string(&path).expect("include/roomgraph.h");
    assert!(
        committed == generated,
        "include/roomgraph.h is stale: run `ROOMGRAPH_BLESS=1 cargo test -p roomgraph-ffi --test header` and commit it"
    );
}
