//! The storage layer's errors.

use std::path::PathBuf;

use crate::codec;
use crate::layout::{COLUMN_FAMILIES, Cf};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("store {path}: not a roomgraph store ({detail}); refusing to open it")]
    Foreign { path: PathBuf, detail: String },
    #[error("store {path}: schema version {found}, this build reads schema version {expected}")]
    SchemaMismatch {
        path: PathBuf,
        found: String,
        expected: u32,
    },
    #[error("store {path}: no roomgraph store there ({detail}); a read-only open creates none")]
    Missing { path: PathBuf, detail: &'static str },
    #[error("store {path}: opened read-only; refusing to write")]
    ReadOnly { path: PathBuf },
    #[error("store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("store: corrupt record in column family `{cf}` at key {key}: {what}")]
    Corrupt {
        cf: &'static str,
        key: String,
        what: String,
    },
}

impl StoreError {
    pub(crate) fn corrupt(cf: Cf, key: &[u8], what: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            cf: COLUMN_FAMILIES[cf as usize],
            key: codec::hex(key),
            what: what.into(),
        }
    }
}
