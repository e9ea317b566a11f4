//! `libroomgraph.so` and `libroomgraph.a`: the C API of [`roomgraph_ffi`] (`ffi/include/roomgraph.h`)
//! under the name C programs link with `-lroomgraph`. The functions are roomgraph-ffi's own
//! `#[no_mangle]` definitions; this crate only gives the libraries their name.

pub use roomgraph_ffi::*;
