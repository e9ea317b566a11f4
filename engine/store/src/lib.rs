//! The RocksDB store: durable room DAGs, per-event state snapshots and the auth-chain index.
//!
//! This module sits beside the pure core and depends on it, never the other way round. It knows
//! nothing about auth rules or state resolution: it stores what the ingest pipeline
//! (the `roomgraph` crate's `ingest`) decided. Layout, key encodings and the crash-safety argument are described in
//! `docs/store.md`; in short:
//!
//! - every integer key is big-endian, so RocksDB's byte order is numeric order;
//! - events and `(type, state_key)` pairs are interned to dense numbers (`u64` / `u32`);
//! - state snapshots are stored as deltas against a parent snapshot and deduplicated by a blake3-based
//!   hash of the sorted state ([`snapshot`]);
//! - every change the pipeline makes for a group of events goes into one atomic [`rocksdb::WriteBatch`],
//!   written with `sync = true` by default ([`SyncPolicy`]);
//! - a schema-version key is checked at open: a directory that is not ours, or one written with another
//!   schema version, is refused with an error that says so;
//! - [`Store::open_read_only`] opens an existing store for queries: no lock, so any number of processes
//!   read one store at once, and no file of the store is created or changed.

pub mod codec;
mod error;
mod layout;
pub mod snapshot;
pub mod table;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};

pub use error::StoreError;
use layout::*;

pub use codec::{ChainRow, EventMeta, EventRecord, EventStatus, RoomRecord, TypeStateKey};
pub use snapshot::{SnapshotRecord, StateHash, StateView};
pub use table::{Encode, Format, KeyPrefix, Table};

/// The schema this build reads and writes. Bump on any incompatible change of a key or value layout.
/// 3: snapshot delta chains of up to 128 records (schema 2 readers refuse chains over 34).
/// 4: outlier statuses (3, 4) and the `outlier_wait/` and `cited/` meta rows.
/// 5: `auth_chains` holds the chain cover index (room-prefixed [`ChainRow`]s) instead of one auth-chain
///    bitmap per event.
pub const SCHEMA_VERSION: u32 = 5;

/// Older schemas whose stores this build upgrades: their layout is this one's except for
/// `auth_chains`. A read-write open marks the store [`SCHEMA_VERSION`] (so that older builds refuse it
/// by its version rather than misreading it) and sets [`META_CHAIN_REBUILD`] in the same commit; the
/// ingest engine then rebuilds the chain cover index from the stored events before it ingests
/// anything. Queries (read-only opens) never read `auth_chains`: they read such a store as it is.
const UPGRADABLE_SCHEMAS: [&[u8]; 3] = [b"2", b"3", b"4"];

/// Event number `0` is never assigned; snapshot number `0` is the empty state (never stored).
pub const EMPTY_SNAPSHOT: u64 = 0;

/// When RocksDB makes a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Every write batch is fsynced before the call returns (default).
    #[default]
    PerBatch,
    /// Batches go to the WAL without fsync: survives a process crash, not a power loss.
    Never,
}

/// Options for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub sync: SyncPolicy,
    /// RocksDB block cache size in bytes.
    pub block_cache_bytes: usize,
    /// WAL bytes kept before the column families that pin the oldest WAL file are flushed, so that the
    /// file can be deleted (RocksDB's `max_total_wal_size`). It bounds the WAL on disk and what the
    /// next open replays.
    pub max_wal_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sync: SyncPolicy::PerBatch,
            block_cache_bytes: 256 << 20,
            max_wal_bytes: MAX_TOTAL_WAL_BYTES,
        }
    }
}

/// Counters persisted in `meta`, updated in every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub next_event: u64,
    pub next_state_key: u32,
    pub next_snapshot: u64,
}

/// An open store.
pub struct Store {
    db: DB,
    path: PathBuf,
    sync: SyncPolicy,
    /// Opened by [`Store::open_read_only`]: [`Store::commit`] refuses.
    read_only: bool,
}

/// How [`Store::open_db`] opens the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Creates the database and its column families (a new store, in its sibling directory).
    Create,
    ReadWrite,
    /// RocksDB's read-only mode: takes no `LOCK`, writes no file (not even the info `LOG`), replays the
    /// WAL into memory only.
    ReadOnly,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("sync", &self.sync)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// One stored `(key, value)` pair.
type KeyValue = (Vec<u8>, Vec<u8>);

/// One write: a put (`Some` value) or a delete (`None`).
type Op<'a> = (Cf, &'a [u8], Option<&'a [u8]>);

/// A write of a [`Chunk`]: its key at `start`, its value (if a put) right after the key.
#[derive(Clone, Copy)]
struct OpRef {
    cf: Cf,
    start: usize,
    key_len: usize,
    /// `None` for a delete.
    value_len: Option<usize>,
}

/// Writes sharing one byte buffer: no allocation per key or value.
#[derive(Default)]
struct Chunk {
    buf: Vec<u8>,
    ops: Vec<OpRef>,
}

/// A group of writes committed atomically by [`Store::commit`]. Keys and values are copied into
/// shared buffers (a room's writes of a batch share one, sized up front, instead of two allocations per
/// write); appending another group moves its buffers.
#[derive(Default)]
pub struct Writes {
    /// The last chunk takes new writes.
    chunks: Vec<Chunk>,
}

impl Writes {
    /// Room for about `ops` operations of `bytes` bytes in all.
    pub fn with_capacity(ops: usize, bytes: usize) -> Writes {
        Writes {
            chunks: vec![Chunk {
                buf: Vec::with_capacity(bytes),
                ops: Vec::with_capacity(ops),
            }],
        }
    }

    fn current(&mut self) -> &mut Chunk {
        if self.chunks.is_empty() {
            self.chunks.push(Chunk::default());
        }
        let last = self.chunks.len() - 1;
        &mut self.chunks[last]
    }

    /// Writes `value` at `key` of `table`.
    pub fn insert<K: ?Sized, V: ?Sized>(
        &mut self,
        table: &Table<K, V>,
        key: &(impl Encode<K> + ?Sized),
        value: &(impl Encode<V> + ?Sized),
    ) {
        self.push(
            table.cf(),
            |buf| {
                buf.extend_from_slice(table.prefix());
                key.encode(buf);
            },
            Some(|buf: &mut Vec<u8>| value.encode(buf)),
        );
    }

    /// Deletes the row at `key` of `table`.
    pub fn remove<K: ?Sized, V: ?Sized>(
        &mut self,
        table: &Table<K, V>,
        key: &(impl Encode<K> + ?Sized),
    ) {
        self.push(
            table.cf(),
            |buf| {
                buf.extend_from_slice(table.prefix());
                key.encode(buf);
            },
            None::<fn(&mut Vec<u8>)>,
        );
    }

    /// A raw put, for the store's own rows (`meta`'s fixed keys, schema upgrades).
    pub(crate) fn put(&mut self, cf: Cf, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.push(
            cf,
            |buf| buf.extend_from_slice(key),
            Some(|buf: &mut Vec<u8>| buf.extend_from_slice(value)),
        );
    }

    pub(crate) fn delete(&mut self, cf: Cf, key: impl AsRef<[u8]>) {
        let key = key.as_ref();
        self.push(
            cf,
            |buf| buf.extend_from_slice(key),
            None::<fn(&mut Vec<u8>)>,
        );
    }

    /// Appends the key `write_key` writes, then the value `write_value` appends (a put) or nothing
    /// (a delete).
    fn push(
        &mut self,
        cf: Cf,
        write_key: impl FnOnce(&mut Vec<u8>),
        write_value: Option<impl FnOnce(&mut Vec<u8>)>,
    ) {
        let chunk = self.current();
        let start = chunk.buf.len();
        write_key(&mut chunk.buf);
        let key_len = chunk.buf.len() - start;
        let value_len = write_value.map(|write| {
            write(&mut chunk.buf);
            chunk.buf.len() - start - key_len
        });
        chunk.ops.push(OpRef {
            cf,
            start,
            key_len,
            value_len,
        });
    }

    /// Adds `other`'s writes after these (moving its buffers, copying nothing). Later writes start a
    /// buffer of their own rather than grow (and copy) one sized for `other`.
    pub fn append(&mut self, other: Writes) {
        if !other.chunks.is_empty() {
            self.chunks.extend(other.chunks);
            self.chunks.push(Chunk::default());
        }
    }

    /// The writes in the order they were made.
    fn ops(&self) -> impl Iterator<Item = Op<'_>> {
        self.chunks.iter().flat_map(|c| {
            c.ops.iter().map(move |o| {
                let key = &c.buf[o.start..o.start + o.key_len];
                let value = o.value_len.map(|n| {
                    let v = o.start + o.key_len;
                    &c.buf[v..v + n]
                });
                (o.cf, key, value)
            })
        })
    }

    /// Bytes of keys and values held.
    fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.buf.len()).sum()
    }

    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.ops.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(|c| c.ops.is_empty())
    }
}

/// The positions of `ops` ordered by column family and key, stably. Buckets the operations by column
/// family (a counting pass), then stably sorts each bucket through compact `(first 16 key bytes,
/// position)` records — integer compares, no pointer chasing, whole keys compared only where 16 bytes do
/// not decide. A stable sort finds the ascending runs a batch is made of (each room's event numbers,
/// snapshots and chains grow), so most buckets merge a few runs instead of sorting from scratch.
fn sorted_order(ops: &[Op<'_>]) -> Vec<u32> {
    let prefix = |k: &[u8]| {
        let mut b = [0u8; 16];
        let n = k.len().min(16);
        b[..n].copy_from_slice(&k[..n]);
        u128::from_be_bytes(b)
    };
    let mut starts = [0usize; 257];
    for (cf, _, _) in ops {
        starts[*cf as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut next = starts;
    let mut records: Vec<(u128, u32)> = vec![(0, 0); ops.len()];
    for (i, (cf, k, _)) in ops.iter().enumerate() {
        let slot = &mut next[*cf as usize];
        records[*slot] = (prefix(k), i as u32);
        *slot += 1;
    }
    for w in starts.windows(2) {
        if let Some(bucket) = records.get_mut(w[0]..w[1]) {
            bucket.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| ops[a.1 as usize].1.cmp(ops[b.1 as usize].1))
            });
        }
    }
    records.into_iter().map(|(_, i)| i).collect()
}

/// Memtable size of each column family.
const WRITE_BUFFER_BYTES: usize = 64 << 20;

/// Default of [`StoreOptions::max_wal_bytes`]: four memtables of the busiest family.
pub const MAX_TOTAL_WAL_BYTES: u64 = 4 * WRITE_BUFFER_BYTES as u64;

fn cf_options(cache: &rocksdb::Cache) -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(&table);
    opts.set_write_buffer_size(WRITE_BUFFER_BYTES);
    opts
}

impl Store {
    /// Opens (or creates) the store at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path, &StoreOptions::default())
    }

    /// Opens (or creates) the store at `path`. An existing directory must be empty or a roomgraph store
    /// of schema version [`SCHEMA_VERSION`].
    pub fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let fresh = match std::fs::read_dir(&path) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(io(e)),
        };
        let extra = if fresh {
            Store::create(&path, options)?;
            Vec::new()
        } else {
            Store::other_column_families(&path)?
        };
        let store = Store::open_db(&path, options, Access::ReadWrite, &extra)?;
        store.check_schema()?;
        Ok(store)
    }

    /// Opens the existing store at `path` for reading only, with default options.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_read_only_with(path, &StoreOptions::default())
    }

    /// Opens the existing store at `path` for reading only (RocksDB's read-only mode): it takes no lock,
    /// so any number of readers open one store at once, and it creates, changes or deletes no file of
    /// the store — what the WAL holds is replayed into memory. A missing or empty directory is refused
    /// ([`StoreError::Missing`]), never created; [`Store::commit`] refuses ([`StoreError::ReadOnly`]).
    /// A store of an upgradable older schema is read as it is, unmarked. What a reader sees is the
    /// store as of its open: later commits of a concurrent writer are not visible to it.
    pub fn open_read_only_with(
        path: impl AsRef<Path>,
        options: &StoreOptions,
    ) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let missing = |detail| StoreError::Missing {
            path: path.clone(),
            detail,
        };
        match std::fs::read_dir(&path).map(|mut entries| entries.next().is_none()) {
            Ok(true) => return Err(missing("the directory is empty")),
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(missing("the directory does not exist"));
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        }
        let extra = Store::other_column_families(&path)?;
        let store = Store::open_db(&path, options, Access::ReadOnly, &extra)?;
        store.check_schema()?;
        Ok(store)
    }

    /// Whether the store was opened by [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Checks that the non-empty directory `path` holds a RocksDB database with every column family of
    /// this schema, and returns the column families it has besides (an older or newer schema's): they
    /// are opened too (RocksDB insists), so that the schema check can say what the store is.
    fn other_column_families(path: &Path) -> Result<Vec<String>, StoreError> {
        let foreign = |detail: String| StoreError::Foreign {
            path: path.to_path_buf(),
            detail,
        };
        if path.is_file() {
            return Err(foreign("it is a file, not a directory".into()));
        }
        if !path.join("CURRENT").is_file() {
            return Err(foreign(
                "the directory is not empty and holds no RocksDB database".into(),
            ));
        }
        let existing = DB::list_cf(&Options::default(), path)
            .map_err(|e| foreign(format!("cannot list its column families: {e}")))?;
        if let Some(missing) = COLUMN_FAMILIES
            .iter()
            .find(|cf| !existing.iter().any(|e| e == *cf))
        {
            return Err(foreign(format!(
                "a RocksDB database without the column family `{missing}`"
            )));
        }
        Ok(existing
            .into_iter()
            .filter(|e| e != "default" && !COLUMN_FAMILIES.contains(&e.as_str()))
            .collect())
    }

    /// Creates a store atomically: built and marked in a sibling directory, then renamed into place, so
    /// a crash during creation never leaves an unmarked database at `path`.
    fn create(path: &Path, options: &StoreOptions) -> Result<(), StoreError> {
        let io = |p: &Path, source| StoreError::Io {
            path: p.to_path_buf(),
            source,
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "store".into());
        let tmp = path.with_file_name(format!(".{name}.creating-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        {
            let store = Store::open_db(&tmp, options, Access::Create, &[])?;
            let mut w = Writes::default();
            w.put(Cf::Meta, META_MAGIC, MAGIC);
            w.put(
                Cf::Meta,
                META_SCHEMA,
                SCHEMA_VERSION.to_string().into_bytes(),
            );
            store.commit(w)?;
        }
        if path.exists() {
            // An empty directory (checked by the caller): rename(2) replaces it atomically.
            std::fs::rename(&tmp, path)
                .or_else(|_| std::fs::remove_dir(path).and_then(|()| std::fs::rename(&tmp, path)))
        } else {
            std::fs::rename(&tmp, path)
        }
        .map_err(|e| io(path, e))
    }

    fn open_db(
        path: &Path,
        options: &StoreOptions,
        access: Access,
        extra: &[String],
    ) -> Result<Store, StoreError> {
        let create = access == Access::Create;
        let cache = rocksdb::Cache::new_lru_cache(options.block_cache_bytes);
        let mut db_opts = cf_options(&cache);
        db_opts.create_if_missing(create);
        db_opts.create_missing_column_families(create);
        db_opts.increase_parallelism(2);
        db_opts.set_max_background_jobs(2);
        // Without a bound, RocksDB keeps every WAL file until each column family with data in it has
        // been flushed: the small families (snapshots, auth chains, state keys) never fill a memtable,
        // so a 1 M-event ingest left 870 MB of WAL beside 420 MB of tables, all replayed at the next
        // open. Past this size the families pinning the oldest WAL file are flushed and it is deleted.
        db_opts.set_max_total_wal_size(options.max_wal_bytes);
        let cfs = COLUMN_FAMILIES
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options(&cache)));
        let db = match access {
            // `false`: a WAL left by the last writer is no error; it is replayed into memory.
            Access::ReadOnly => DB::open_cf_descriptors_read_only(&db_opts, path, cfs, false)?,
            Access::Create | Access::ReadWrite => DB::open_cf_descriptors(&db_opts, path, cfs)?,
        };
        Ok(Store {
            db,
            path: path.to_path_buf(),
            sync: options.sync,
            read_only: access == Access::ReadOnly,
        })
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let magic = self.get(Cf::Meta, META_MAGIC)?;
        if magic.as_deref() != Some(MAGIC) {
            return Err(StoreError::Foreign {
                path: self.path.clone(),
                detail: "its `meta` column family has no roomgraph marker".into(),
            });
        }
        let found = self.get(Cf::Meta, META_SCHEMA)?.unwrap_or_default();
        if UPGRADABLE_SCHEMAS.contains(&found.as_slice()) {
            // Same layout: a reader reads it as it is; the next read-write open marks it.
            if self.read_only {
                return Ok(());
            }
            let mut w = Writes::default();
            w.put(Cf::Meta, META_SCHEMA, SCHEMA_VERSION.to_string());
            w.put(Cf::Meta, META_CHAIN_REBUILD, []);
            return self.commit(w);
        }
        if found != SCHEMA_VERSION.to_string().as_bytes() {
            return Err(StoreError::SchemaMismatch {
                path: self.path.clone(),
                found: String::from_utf8_lossy(&found).chars().take(32).collect(),
                expected: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, cf: Cf) -> &ColumnFamily {
        // Every column family is opened in `open_with` (missing ones are refused), so this lookup holds.
        self.db
            .cf_handle(COLUMN_FAMILIES[cf as usize])
            .expect("column family opened at open time")
    }

    /// Raw point read, for the store's own rows.
    pub(crate) fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// The row at `key` of `table`, decoded; a row that does not decode is [`StoreError::Corrupt`].
    pub fn read<K: ?Sized, V: ?Sized + Format>(
        &self,
        table: &Table<K, V>,
        key: &(impl Encode<K> + ?Sized),
    ) -> Result<Option<V::Read>, StoreError> {
        let key = table.key_bytes(key);
        match self.get(table.cf(), &key)? {
            None => Ok(None),
            Some(v) => V::decode(&v)
                .map(Some)
                .map_err(|what| StoreError::corrupt(table.cf(), &key, what)),
        }
    }

    /// The rows of `table` whose keys start with `prefix` (`&()`: all of them), decoded, in key order.
    pub fn scan<K: ?Sized + Format, V: ?Sized + Format>(
        &self,
        table: &Table<K, V>,
        prefix: &(impl KeyPrefix<K> + ?Sized),
    ) -> Result<table::Rows<K, V>, StoreError> {
        let mut start = table.prefix().to_vec();
        prefix.encode_prefix(&mut start);
        let skip = table.prefix().len();
        self.scan_prefix(table.cf(), &start)?
            .into_iter()
            .map(|(k, v)| {
                let corrupt = |what| StoreError::corrupt(table.cf(), &k, what);
                let key = K::decode(&k[skip..]).map_err(corrupt)?;
                let value = V::decode(&v).map_err(corrupt)?;
                Ok((key, value))
            })
            .collect()
    }

    /// Writes `writes` as one atomic batch, durable according to the sync policy.
    ///
    /// The operations are handed to RocksDB sorted by column family and key (stably: two operations on
    /// one key keep their order, so the batch means the same). Each memtable's skip list starts its
    /// search from the previous insert's position, so ascending keys insert in near-constant time; in
    /// arrival order (rooms interleaved, event ids random) the inserts were 14 % of ingest cycles.
    pub fn commit(&self, writes: Writes) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        }
        let ops: Vec<Op<'_>> = writes.ops().collect();
        let bytes = writes.bytes() + 16 * ops.len();
        let mut batch = WriteBatch::with_capacity_bytes(bytes + 64);
        for i in sorted_order(&ops) {
            let (cf, key, value) = &ops[i as usize];
            match value {
                Some(v) => batch.put_cf(self.cf(*cf), key, v),
                None => batch.delete_cf(self.cf(*cf), key),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync == SyncPolicy::PerBatch);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    /// All `(key, value)` pairs of a column family whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(cf),
            rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Total size of the store's files on disk, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        dir_size(&self.path)
    }

    // ----- typed reads -----

    pub fn counters(&self) -> Result<Counters, StoreError> {
        let read = |key: &[u8]| -> Result<u64, StoreError> {
            match self.get(Cf::Meta, key)? {
                None => Ok(1),
                Some(v) => codec::u64_from(&v)
                    .ok_or_else(|| StoreError::corrupt(Cf::Meta, key, "counter is not 8 bytes")),
            }
        };
        let next_state_key = u32::try_from(read(META_NEXT_KEY)?).map_err(|_| {
            StoreError::corrupt(Cf::Meta, META_NEXT_KEY, "state-key counter exceeds u32")
        })?;
        Ok(Counters {
            next_event: read(META_NEXT_EVENT)?,
            next_state_key,
            next_snapshot: read(META_NEXT_SNAPSHOT)?,
        })
    }

    pub fn put_counters(writes: &mut Writes, c: Counters) {
        writes.put(Cf::Meta, META_NEXT_EVENT, c.next_event.to_be_bytes());
        writes.put(
            Cf::Meta,
            META_NEXT_KEY,
            u64::from(c.next_state_key).to_be_bytes(),
        );
        writes.put(Cf::Meta, META_NEXT_SNAPSHOT, c.next_snapshot.to_be_bytes());
    }

    pub fn event_num(&self, event_id: &str) -> Result<Option<u64>, StoreError> {
        self.read(&table::EVENT_NUMS, event_id)
    }

    /// The id of event `num` (from its `event_state` record).
    pub fn event_id(&self, num: u64) -> Result<Option<String>, StoreError> {
        Ok(self.event_state(num)?.map(|meta| meta.event_id))
    }

    pub fn event_record(&self, num: u64) -> Result<Option<EventRecord>, StoreError> {
        self.read(&table::EVENTS, &num)
    }

    pub fn room(&self, room_id: &str) -> Result<Option<RoomRecord>, StoreError> {
        self.read(&table::ROOMS, room_id)
    }

    /// The current-state snapshot and forward extremities of a room.
    pub fn extremities(&self, room_id: &str) -> Result<Option<(u64, Vec<u64>)>, StoreError> {
        Ok(self
            .read(&table::EXTREMITIES, room_id)?
            .map(|x| (x.current, x.events)))
    }

    pub fn state_key_num(&self, key: &TypeStateKey) -> Result<Option<u32>, StoreError> {
        self.read(&table::STATE_KEY_NUMS, key)
    }

    pub fn state_key(&self, num: u32) -> Result<Option<TypeStateKey>, StoreError> {
        self.read(&table::STATE_KEYS, &num)
    }

    pub fn snapshot(&self, num: u64) -> Result<Option<SnapshotRecord>, StoreError> {
        self.read(&table::SNAPSHOTS, &num)
    }

    pub fn snapshot_by_hash(&self, hash: &StateHash) -> Result<Option<u64>, StoreError> {
        self.read(&table::SNAPSHOT_HASHES, hash)
    }

    /// The snapshots before and after an event, its status and its room.
    pub fn event_state(&self, num: u64) -> Result<Option<EventMeta>, StoreError> {
        self.read(&table::EVENT_STATE, &num)
    }

    /// Whether the chain cover index must be rebuilt: a store upgraded from schema 2–4, or one of
    /// those schemas opened read-only (not marked yet).
    pub fn chain_rebuild_pending(&self) -> Result<bool, StoreError> {
        if self.get(Cf::Meta, META_CHAIN_REBUILD)?.is_some() {
            return Ok(true);
        }
        let schema = self.get(Cf::Meta, META_SCHEMA)?.unwrap_or_default();
        Ok(UPGRADABLE_SCHEMAS.contains(&schema.as_slice()))
    }

    /// The chain cover rows of a room, ascending by event number (an order its events can be
    /// inserted in: an event is numbered after its auth events).
    pub fn chain_rows(&self, room_id: &str) -> Result<Vec<(u64, ChainRow)>, StoreError> {
        self.scan(&table::AUTH_CHAINS, &table::InRoom { room_id, key: () })
    }

    /// Calls `f` with every stored event, ascending by number, without holding them all in memory.
    pub fn for_each_event(
        &self,
        mut f: impl FnMut(u64, EventRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let iter = self
            .db
            .iterator_cf(self.cf(Cf::Events), rocksdb::IteratorMode::Start);
        for item in iter {
            let (k, v) = item?;
            let num = (*k)
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::corrupt(Cf::Events, &k, "key is not 8 bytes"))?;
            let rec = EventRecord::decode(&v)
                .map_err(|what| StoreError::corrupt(Cf::Events, &k, what))?;
            f(num, rec)?;
        }
        Ok(())
    }

    /// Queues what ends a chain cover rebuild (the rebuilt rows are written beside it): deletes the
    /// schema 2–4 `auth_chains` rows and the rebuild mark.
    pub fn finish_chain_rebuild(&self, writes: &mut Writes) -> Result<(), StoreError> {
        for k in self.old_chain_keys()? {
            writes.delete(Cf::AuthChains, &k);
        }
        writes.delete(Cf::Meta, META_CHAIN_REBUILD);
        Ok(())
    }

    /// The keys of the schema 2–4 `auth_chains` rows (bare 8-byte event numbers).
    pub(crate) fn old_chain_keys(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator_cf(self.cf(Cf::AuthChains), rocksdb::IteratorMode::Start);
        for item in iter {
            let (k, _) = item?;
            if k.len() == 8 {
                out.push(k.to_vec());
            }
        }
        Ok(out)
    }

    /// Materialises snapshot `num` by walking its delta chain down to a full snapshot.
    pub fn load_view(&self, num: u64) -> Result<StateView, StoreError> {
        self.load_view_with(num, |_| None)
    }

    /// [`Store::load_view`] for a state whose delta chain may run through snapshots not committed yet:
    /// `unsynced` gives those records, the store the rest.
    pub fn load_view_with(
        &self,
        num: u64,
        unsynced: impl Fn(u64) -> Option<SnapshotRecord>,
    ) -> Result<StateView, StoreError> {
        if num == EMPTY_SNAPSHOT {
            return Ok(StateView::empty());
        }
        let mut chain = Vec::new();
        let mut cursor = num;
        while cursor != EMPTY_SNAPSHOT {
            let rec = match unsynced(cursor) {
                Some(rec) => Some(rec),
                None => self.snapshot(cursor)?,
            };
            let rec = rec.ok_or_else(|| {
                StoreError::corrupt(
                    Cf::Snapshots,
                    &cursor.to_be_bytes(),
                    format!("snapshot {cursor} (needed by {num}) is missing"),
                )
            })?;
            let parent = rec.parent;
            chain.push((cursor, rec));
            match parent {
                // The format's bound (a record's chain length is a u8), not the writer's `MAX_CHAIN`:
                // stores written with another bound stay readable.
                Some(p) if chain.len() <= usize::from(u8::MAX) + 2 => cursor = p,
                Some(_) => {
                    return Err(StoreError::corrupt(
                        Cf::Snapshots,
                        &num.to_be_bytes(),
                        "delta chain longer than the schema allows",
                    ));
                }
                None => break,
            }
        }
        Ok(StateView::from_chain(chain))
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `sorted_order` is a stable sort by (column family, key), whatever the keys' lengths and
        /// shared prefixes (16-byte prefixes that tie, keys that are prefixes of others, zero bytes).
        #[test]
        fn sorted_order_is_a_stable_sort_by_cf_and_key(
            raw in proptest::collection::vec(
                (0u8..3, proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..20)),
                0..200,
            )
        ) {
            let cfs = [Cf::Meta, Cf::EventIdToNum, Cf::Events];
            let keys: Vec<Vec<u8>> = raw
                .iter()
                .enumerate()
                .map(|(i, (_, k))| {
                    // Half the keys start with 16 zero bytes, so their prefixes tie with each other.
                    let mut key = if i % 2 == 0 { vec![0u8; 16] } else { Vec::new() };
                    key.extend_from_slice(k);
                    key
                })
                .collect();
            let ops: Vec<Op<'_>> = raw
                .iter()
                .zip(&keys)
                .map(|((c, _), key)| (cfs[*c as usize], key.as_slice(), None))
                .collect();
            let mut expected: Vec<u32> = (0..ops.len() as u32).collect();
            expected.sort_by(|a, b| {
                let (x, y) = (&ops[*a as usize], &ops[*b as usize]);
                (x.0 as u8, &x.1).cmp(&(y.0 as u8, &y.1))
            });
            prop_assert_eq!(sorted_order(&ops), expected);
        }
    }

    /// The last write of a key wins, across appended groups and in-place values; deletes count.
    #[test]
    fn writes_keep_their_order_across_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("create");
        let mut a = Writes::default();
        a.put(Cf::Meta, b"k1", b"a1");
        a.put(Cf::Meta, b"k2", b"a2");
        let mut b = Writes::with_capacity(4, 64);
        b.put(Cf::Meta, b"k1", b"b1");
        b.delete(Cf::Meta, b"k2");
        b.put(Cf::Meta, b"k3", b"b3");
        a.append(b);
        a.put(Cf::Meta, b"k3", b"a3");
        a.append(Writes::default());
        a.put(Cf::Events, b"k4", b"a4");
        assert_eq!(a.len(), 7);
        let ops: Vec<Op<'_>> = a.ops().collect();
        assert_eq!(ops[2], (Cf::Meta, &b"k1"[..], Some(&b"b1"[..])));
        assert_eq!(ops[3], (Cf::Meta, &b"k2"[..], None));
        store.commit(a).expect("commit");
        let get = |cf, k: &[u8]| store.get(cf, k).expect("get");
        assert_eq!(get(Cf::Meta, b"k1").as_deref(), Some(&b"b1"[..]));
        assert_eq!(get(Cf::Meta, b"k2"), None);
        assert_eq!(get(Cf::Meta, b"k3").as_deref(), Some(&b"a3"[..]));
        assert_eq!(get(Cf::Events, b"k4").as_deref(), Some(&b"a4"[..]));
    }

    /// Total size of the WAL files in `dir`.
    fn wal_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .expect("read store dir")
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// With a bound, WAL files pinned only by small column families (which never fill a memtable) are
    /// flushed away; without one (RocksDB's default), the WAL keeps everything ever written.
    #[test]
    fn wal_stays_within_its_bound() {
        const BOUND: u64 = 256 << 10;
        let written = |max_wal_bytes: u64| {
            let dir = tempfile::tempdir().expect("tempdir");
            let options = StoreOptions {
                max_wal_bytes,
                sync: SyncPolicy::Never,
                ..StoreOptions::default()
            };
            let store = Store::open_with(dir.path(), &options).expect("create");
            let value = vec![7u8; 8 << 10];
            for i in 0u64..256 {
                let mut w = Writes::default();
                w.put(Cf::Events, i.to_be_bytes(), &value);
                w.put(Cf::Snapshots, i.to_be_bytes(), b"small");
                store.commit(w).expect("commit");
            }
            // RocksDB checks the bound at each write and flushes in the background, one flush at a time:
            // a few more small writes let it catch up with the burst above (a bounded wait, not a
            // timing check).
            if max_wal_bytes > 0 {
                for i in 0u64..200 {
                    if wal_bytes(dir.path()) <= 2 * BOUND {
                        break;
                    }
                    let mut w = Writes::default();
                    w.put(Cf::Meta, b"tick", i.to_be_bytes());
                    store.commit(w).expect("commit");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            let wal = wal_bytes(dir.path());
            let value_0 = store.get(Cf::Events, &0u64.to_be_bytes()).expect("get");
            assert_eq!(
                value_0.as_deref(),
                Some(value.as_slice()),
                "flushed data still reads"
            );
            wal
        };
        let bounded = written(BOUND);
        assert!(bounded <= 2 * BOUND, "bounded WAL holds {bounded} bytes");
        let unbounded = written(0);
        assert!(
            unbounded >= 2 << 20,
            "default WAL holds only {unbounded} bytes"
        );
    }

    #[test]
    fn fresh_store_reopens_and_keeps_counters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("create");
        let mut w = Writes::default();
        Store::put_counters(
            &mut w,
            Counters {
                next_event: 7,
                next_state_key: 3,
                next_snapshot: 9,
            },
        );
        store.commit(w).expect("commit");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(
            store.counters().expect("counters"),
            Counters {
                next_event: 7,
                next_state_key: 3,
                next_snapshot: 9
            }
        );
    }

    #[test]
    fn foreign_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("notes.txt"), b"hello").expect("write");
        let err = Store::open(dir.path()).expect_err("foreign dir");
        assert!(err.to_string().contains("not a roomgraph store"), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("notes.txt")).expect("still there"),
            b"hello"
        );
    }

    #[test]
    fn other_rocksdb_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut o = Options::default();
            o.create_if_missing(true);
            let db = DB::open(&o, dir.path()).expect("plain rocksdb");
            db.put(b"k", b"v").expect("put");
        }
        let err = Store::open(dir.path()).expect_err("foreign rocksdb");
        assert!(err.to_string().contains("not a roomgraph store"), "{err}");
    }

    /// Every file under `dir` (relative path → bytes).
    fn files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(&d).expect("read dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    todo.push(path);
                } else {
                    let rel = path.strip_prefix(dir).expect("under dir").to_path_buf();
                    out.insert(rel, std::fs::read(&path).expect("read file"));
                }
            }
        }
        out
    }

    /// Read-only opens take no lock (two at once, and beside a read-write open), see what only the WAL
    /// holds, refuse writes, and create, change or delete no file: not even RocksDB's info `LOG`.
    #[test]
    fn read_only_opens_share_the_store_and_change_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("create");
            let mut w = Writes::default();
            w.put(Cf::Meta, b"k", b"v");
            store.commit(w).expect("commit");
        }
        let before = files(dir.path());
        assert!(before.contains_key(Path::new("LOG")), "{:?}", before.keys());
        let a = Store::open_read_only(dir.path()).expect("first reader");
        let b = Store::open_read_only(dir.path()).expect("second reader");
        assert!(a.is_read_only() && b.is_read_only());
        for store in [&a, &b] {
            assert_eq!(
                store.get(Cf::Meta, b"k").expect("read").as_deref(),
                Some(&b"v"[..])
            );
        }
        let mut w = Writes::default();
        w.put(Cf::Meta, b"k", b"changed");
        let err = a.commit(w).expect_err("a reader refuses writes");
        assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
        assert!(err.to_string().contains("opened read-only"), "{err}");
        drop((a, b));
        assert!(
            files(dir.path()) == before,
            "files changed: {:?} → {:?}",
            before.keys().collect::<Vec<_>>(),
            files(dir.path()).keys().collect::<Vec<_>>()
        );
        // Beside a writer holding RocksDB's LOCK.
        let writer = Store::open(dir.path()).expect("writer");
        let reader = Store::open_read_only(dir.path()).expect("reader beside a writer");
        assert_eq!(
            reader.get(Cf::Meta, b"k").expect("read").as_deref(),
            Some(&b"v"[..])
        );
        drop((reader, writer));
    }

    /// A read-only open never creates a store: a missing or empty directory is refused and left as it
    /// was; a foreign directory is refused as by a read-write open.
    #[test]
    fn read_only_open_creates_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let err = Store::open_read_only(&missing).expect_err("missing");
        assert!(matches!(err, StoreError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!missing.exists());
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        let err = Store::open_read_only(&empty).expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        assert_eq!(std::fs::read_dir(&empty).expect("ls").count(), 0);
        std::fs::write(empty.join("notes.txt"), b"hello").expect("write");
        let err = Store::open_read_only(&empty).expect_err("foreign");
        assert!(err.to_string().contains("not a roomgraph store"), "{err}");
        assert_eq!(std::fs::read_dir(&empty).expect("ls").count(), 1);
    }

    /// A reader reads an upgradable schema as it is and leaves it unmarked; other schemas are refused.
    #[test]
    fn read_only_open_checks_the_schema_and_marks_nothing() {
        let old = store_of_schema(b"2");
        let store = Store::open_read_only(old.path()).expect("schema 2 reads");
        assert_eq!(
            store.get(Cf::Meta, META_SCHEMA).expect("read").as_deref(),
            Some(&b"2"[..])
        );
        let other = store_of_schema(b"999");
        let err = Store::open_read_only(other.path()).expect_err("mismatch");
        assert!(err.to_string().contains("schema version 999"), "{err}");
    }

    /// A closed store that says it has schema `version`.
    fn store_of_schema(version: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("create");
        let mut w = Writes::default();
        w.put(Cf::Meta, META_SCHEMA, version);
        store.commit(w).expect("commit");
        dir
    }

    #[test]
    fn schema_mismatch_is_refused() {
        let dir = store_of_schema(b"999");
        let err = Store::open(dir.path()).expect_err("mismatch");
        assert!(err.to_string().contains("schema version 999"), "{err}");
    }

    /// Schema 2, 3 and 4 stores (same layout but for `auth_chains`) open, are marked schema 5 and
    /// flagged for the chain cover rebuild in the same commit.
    #[test]
    fn schemas_2_to_4_are_upgraded_in_place_and_flagged_for_the_chain_rebuild() {
        for old in [b"2", b"3", b"4"] {
            let dir = store_of_schema(old);
            let store = Store::open(dir.path()).expect("old schema opens");
            let marker = store.get(Cf::Meta, META_SCHEMA).expect("read");
            assert_eq!(
                marker.as_deref(),
                Some(SCHEMA_VERSION.to_string().as_bytes())
            );
            assert!(store.chain_rebuild_pending().expect("read"));
        }
        assert_eq!(SCHEMA_VERSION, 5);
        let fresh = tempfile::tempdir().expect("tempdir");
        let store = Store::open(fresh.path()).expect("new store");
        assert!(!store.chain_rebuild_pending().expect("read"));
    }

    /// A store of schema 1 had two more column families (`event_num_to_id`, `edges`): it is refused
    /// with the schema message, not with RocksDB's complaint about unopened column families.
    #[test]
    fn older_schema_with_other_column_families_is_refused_by_version() {
        let dir = store_of_schema(b"1");
        {
            let mut db =
                DB::open_cf(&Options::default(), dir.path(), COLUMN_FAMILIES).expect("raw open");
            db.create_cf("edges", &Options::default()).expect("add cf");
        }
        let err = Store::open(dir.path()).expect_err("older schema");
        let expected =
            format!("schema version 1, this build reads schema version {SCHEMA_VERSION}");
        assert!(err.to_string().contains(&expected), "{err}");
    }
}
