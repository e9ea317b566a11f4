//! Typed tables: every kind of row the store holds, as a [`Table<K, V>`] whose key and value types
//! know their byte layout (redb's `TableDefinition` is the model). Code outside this crate reads and
//! writes rows only through these tables ([`crate::Store::read`], [`crate::Store::scan`],
//! [`crate::Writes::insert`], [`crate::Writes::remove`]): it never names a column family nor builds a
//! key by hand.
//!
//! A table's `K` and `V` are *formats* ([`Format`]): what a row's bytes read back as. What may be
//! written into a format is said by [`Encode`]: a format's own type encodes as itself, and borrowed
//! forms encode without building the owned value (an event's record from its parts, say).
//!
//! Tables inside the `meta` column family carry a fixed key prefix (`pending/`, …), written and
//! stripped by the table. Room-scoped rows are keyed `room id length u16 ‖ room id ‖ rest`
//! ([`InRoom`]), so one room's rows are one prefix scan.

use std::marker::PhantomData;

use crate::codec;
use crate::codec::{
    ChainRow, EventMeta, EventRecord, EventStatus, Reader, RoomRecord, TypeStateKey,
    encode_event_meta, encode_event_record_into, u64_from,
};
use crate::error::StoreError;
use crate::layout::{
    COLUMN_FAMILIES, Cf, META_CITED_PREFIX, META_OUTLIER_WAIT_PREFIX, META_PENDING_PREFIX,
};
use crate::snapshot::{SnapshotRecord, StateHash};

/// What a key or value's bytes read back as.
pub trait Format {
    /// The owned value a row's bytes decode to.
    type Read;
    /// Decodes a row's bytes; a malformed row is a message for [`StoreError::Corrupt`].
    fn decode(bytes: &[u8]) -> Result<Self::Read, String>;
}

/// A value that can be written where format `F` is stored.
pub trait Encode<F: ?Sized> {
    /// Appends the bytes of `self` in format `F`.
    fn encode(&self, out: &mut Vec<u8>);
}

/// A prefix of keys of format `K`: [`crate::Store::scan`] reads the rows whose keys start with it.
pub trait KeyPrefix<K: ?Sized> {
    fn encode_prefix(&self, out: &mut Vec<u8>);
}

/// The whole table.
impl<K: ?Sized> KeyPrefix<K> for () {
    fn encode_prefix(&self, _out: &mut Vec<u8>) {}
}

/// The formats a [`Table`] is typed by (a function pointer type: no ownership, any `?Sized`).
type Formats<K, V> = fn(&K, &V);

/// The decoded rows of a scan of a [`Table<K, V>`].
pub type Rows<K, V> = Vec<(<K as Format>::Read, <V as Format>::Read)>;

/// A kind of row: its column family, its key prefix inside it, its key and value formats.
pub struct Table<K: ?Sized, V: ?Sized> {
    cf: Cf,
    prefix: &'static [u8],
    _formats: PhantomData<Formats<K, V>>,
}

impl<K: ?Sized, V: ?Sized> Table<K, V> {
    const fn new(cf: Cf, prefix: &'static [u8]) -> Table<K, V> {
        Table {
            cf,
            prefix,
            _formats: PhantomData,
        }
    }

    pub(crate) fn cf(&self) -> Cf {
        self.cf
    }

    pub(crate) fn prefix(&self) -> &'static [u8] {
        self.prefix
    }

    /// The name of the column family the table lives in (as errors name it).
    pub fn cf_name(&self) -> &'static str {
        COLUMN_FAMILIES[self.cf as usize]
    }

    /// The full RocksDB key of `key` (prefix included).
    pub(crate) fn key_bytes(&self, key: &(impl Encode<K> + ?Sized)) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + 16);
        out.extend_from_slice(self.prefix);
        key.encode(&mut out);
        out
    }

    /// A [`StoreError::Corrupt`] naming this table's row at `key`: a row that is missing where the
    /// store's invariants say it exists, or that does not decode.
    pub fn corrupt(&self, key: &(impl Encode<K> + ?Sized), what: impl Into<String>) -> StoreError {
        StoreError::corrupt(self.cf, &self.key_bytes(key), what)
    }
}

// ----- the tables -----

/// Event id → event number.
pub const EVENT_NUMS: Table<str, u64> = Table::new(Cf::EventIdToNum, b"");
/// Event number → its record: status, reason, the stored PDU bytes.
pub const EVENTS: Table<u64, EventRecord> = Table::new(Cf::Events, b"");
/// Event number → snapshots before and after, status, room, id and DAG edges.
pub const EVENT_STATE: Table<u64, EventMeta> = Table::new(Cf::EventState, b"");
/// Room id → room version and create event.
pub const ROOMS: Table<str, RoomRecord> = Table::new(Cf::Rooms, b"");
/// Room id → current-state snapshot and forward extremities.
pub const EXTREMITIES: Table<str, Extremities> = Table::new(Cf::Extremities, b"");
/// `(type, state_key)` → its number.
pub const STATE_KEY_NUMS: Table<TypeStateKey, u32> = Table::new(Cf::StateKeyToNum, b"");
/// State-key number → `(type, state_key)`.
pub const STATE_KEYS: Table<u32, TypeStateKey> = Table::new(Cf::StateNumToKey, b"");
/// Snapshot number → snapshot record (full, or a delta against its parent).
pub const SNAPSHOTS: Table<u64, SnapshotRecord> = Table::new(Cf::Snapshots, b"");
/// State hash → the snapshot number holding that state.
pub const SNAPSHOT_HASHES: Table<StateHash, u64> = Table::new(Cf::SnapshotHashes, b"");
/// Room ‖ event number → the event's chain cover row (state events).
pub const AUTH_CHAINS: Table<ChainKey, ChainRow> = Table::new(Cf::AuthChains, b"");
/// Sequence number → the raw bytes of an event held back for its auth events (replayed at open).
pub const PENDING: Table<u64, [u8]> = Table::new(Cf::Meta, META_PENDING_PREFIX);
/// Room ‖ prev event id ‖ outlier number: an outlier waiting for a missing or outlier prev event.
pub const OUTLIER_WAITS: Table<OutlierWaitKey, ()> = Table::new(Cf::Meta, META_OUTLIER_WAIT_PREFIX);
/// Room ‖ event id: a missing or outlier event an accepted timeline event cites as a prev event.
pub const CITED: Table<CitedKey, ()> = Table::new(Cf::Meta, META_CITED_PREFIX);

// ----- plain formats -----

impl Format for u64 {
    type Read = u64;
    fn decode(bytes: &[u8]) -> Result<u64, String> {
        u64_from(bytes).ok_or_else(|| format!("{} bytes where a u64 was expected", bytes.len()))
    }
}

impl Encode<u64> for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl Format for u32 {
    type Read = u32;
    fn decode(bytes: &[u8]) -> Result<u32, String> {
        <[u8; 4]>::try_from(bytes)
            .map(u32::from_be_bytes)
            .map_err(|_| format!("{} bytes where a u32 was expected", bytes.len()))
    }
}

impl Encode<u32> for u32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl Format for str {
    type Read = String;
    fn decode(bytes: &[u8]) -> Result<String, String> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| "not UTF-8".to_owned())
    }
}

impl Encode<str> for str {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Encode<str> for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Format for [u8] {
    type Read = Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Vec<u8>, String> {
        Ok(bytes.to_vec())
    }
}

impl Encode<[u8]> for [u8] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

/// An empty value: the row's presence is the fact.
impl Format for () {
    type Read = ();
    fn decode(_bytes: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

impl Encode<()> for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
}

// ----- records -----

impl Format for EventRecord {
    type Read = EventRecord;
    fn decode(bytes: &[u8]) -> Result<EventRecord, String> {
        EventRecord::decode(bytes)
    }
}

impl Encode<EventRecord> for EventRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_event_record_into(
            out,
            self.status,
            self.redacted,
            &self.room_version,
            &self.reason,
            &self.pdu,
        );
    }
}

/// An [`EventRecord`] written from its parts.
#[derive(Debug, Clone, Copy)]
pub struct EventRecordRef<'a> {
    pub status: EventStatus,
    pub redacted: bool,
    pub room_version: &'a str,
    pub reason: &'a str,
    pub pdu: &'a [u8],
}

impl Encode<EventRecord> for EventRecordRef<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_event_record_into(
            out,
            self.status,
            self.redacted,
            self.room_version,
            self.reason,
            self.pdu,
        );
    }
}

impl Format for EventMeta {
    type Read = EventMeta;
    fn decode(bytes: &[u8]) -> Result<EventMeta, String> {
        EventMeta::decode(bytes)
    }
}

impl Encode<EventMeta> for EventMeta {
    fn encode(&self, out: &mut Vec<u8>) {
        EventMetaRef {
            before: self.before,
            after: self.after,
            status: self.status,
            room_id: &self.room_id,
            event_id: &self.event_id,
            prev: &self.prev,
            auth: &self.auth,
        }
        .encode(out);
    }
}

/// An [`EventMeta`] written from its parts.
#[derive(Debug, Clone, Copy)]
pub struct EventMetaRef<'a> {
    pub before: u64,
    pub after: u64,
    pub status: EventStatus,
    pub room_id: &'a str,
    pub event_id: &'a str,
    pub prev: &'a [u64],
    pub auth: &'a [u64],
}

impl Encode<EventMeta> for EventMetaRef<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_event_meta(
            out,
            self.before,
            self.after,
            self.status,
            self.room_id,
            self.event_id,
            self.prev,
            self.auth,
        );
    }
}

impl Format for RoomRecord {
    type Read = RoomRecord;
    fn decode(bytes: &[u8]) -> Result<RoomRecord, String> {
        RoomRecord::decode(bytes)
    }
}

impl Encode<RoomRecord> for RoomRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_into(out);
    }
}

/// A room's current-state snapshot and forward extremities: `snapshot u64 ‖ event numbers u64…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extremities {
    pub current: u64,
    pub events: Vec<u64>,
}

impl Format for Extremities {
    type Read = Extremities;
    fn decode(bytes: &[u8]) -> Result<Extremities, String> {
        codec::decode_extremities(bytes)
            .map(|(current, events)| Extremities { current, events })
            .ok_or_else(|| "extremities record length".to_owned())
    }
}

/// [`Extremities`] written from their parts.
#[derive(Debug, Clone, Copy)]
pub struct ExtremitiesRef<'a> {
    pub current: u64,
    pub events: &'a [u64],
}

impl Encode<Extremities> for ExtremitiesRef<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::append_extremities(out, self.current, self.events);
    }
}

impl Format for TypeStateKey {
    type Read = TypeStateKey;
    fn decode(bytes: &[u8]) -> Result<TypeStateKey, String> {
        TypeStateKey::decode(bytes)
    }
}

impl Encode<TypeStateKey> for TypeStateKey {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::append_state_key(out, &self.event_type, &self.state_key);
    }
}

/// A `(type, state_key)` pair already in its stored form ([`codec::encode_state_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncodedTypeStateKey(Vec<u8>);

impl EncodedTypeStateKey {
    pub fn new(event_type: &str, state_key: &str) -> EncodedTypeStateKey {
        EncodedTypeStateKey(codec::encode_state_key(event_type, state_key))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Encode<TypeStateKey> for EncodedTypeStateKey {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Format for StateHash {
    type Read = StateHash;
    fn decode(bytes: &[u8]) -> Result<StateHash, String> {
        StateHash::from_bytes(bytes).ok_or_else(|| "state hash is not 32 bytes".to_owned())
    }
}

impl Encode<StateHash> for StateHash {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }
}

impl Format for SnapshotRecord {
    type Read = SnapshotRecord;
    fn decode(bytes: &[u8]) -> Result<SnapshotRecord, String> {
        SnapshotRecord::decode(bytes)
    }
}

impl Encode<SnapshotRecord> for SnapshotRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_into(out);
    }
}

impl Format for ChainRow {
    type Read = ChainRow;
    fn decode(bytes: &[u8]) -> Result<ChainRow, String> {
        ChainRow::decode(bytes)
    }
}

impl Encode<ChainRow> for ChainRow {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_into(out);
    }
}

// ----- room-scoped keys -----

/// A key scoped to a room: `room id length u16 ‖ room id ‖ key`. `InRoom { room_id, key: () }` is
/// the prefix of all the room's rows of a table ([`KeyPrefix`]).
#[derive(Debug, Clone, Copy)]
pub struct InRoom<'a, T> {
    pub room_id: &'a str,
    pub key: T,
}

impl<T> InRoom<'_, T> {
    fn encode_room(&self, out: &mut Vec<u8>) {
        let room = &self.room_id.as_bytes()[..self.room_id.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(room.len() as u16).to_be_bytes());
        out.extend_from_slice(room);
    }
}

/// Skips the room part of a room-scoped key, leaving the rest.
fn past_room(bytes: &[u8]) -> Result<&[u8], String> {
    let mut r = Reader(bytes);
    let n = r.u16().ok_or("key shorter than its room id length")?;
    r.take(n as usize).ok_or("key shorter than its room id")?;
    Ok(r.0)
}

/// The key format of [`AUTH_CHAINS`]: room ‖ event number u64. Reads back the event number (rows
/// are scanned one room at a time).
pub enum ChainKey {}

impl Format for ChainKey {
    type Read = u64;
    fn decode(bytes: &[u8]) -> Result<u64, String> {
        u64_from(past_room(bytes)?).ok_or_else(|| "key is not room prefix + 8 bytes".to_owned())
    }
}

impl Encode<ChainKey> for InRoom<'_, u64> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_room(out);
        out.extend_from_slice(&self.key.to_be_bytes());
    }
}

/// The key format of [`OUTLIER_WAITS`]: room ‖ prev event id ‖ outlier number u64. Reads back
/// `(prev event id, outlier number)`.
pub enum OutlierWaitKey {}

impl Format for OutlierWaitKey {
    type Read = (String, u64);
    fn decode(bytes: &[u8]) -> Result<(String, u64), String> {
        past_room(bytes)?
            .split_last_chunk::<8>()
            .and_then(|(id, n)| Some((std::str::from_utf8(id).ok()?, u64::from_be_bytes(*n))))
            .map(|(id, n)| (id.to_owned(), n))
            .ok_or_else(|| "outlier-wait key is not prefix + id + 8 bytes".to_owned())
    }
}

impl Encode<OutlierWaitKey> for InRoom<'_, (&str, u64)> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_room(out);
        out.extend_from_slice(self.key.0.as_bytes());
        out.extend_from_slice(&self.key.1.to_be_bytes());
    }
}

/// The key format of [`CITED`]: room ‖ event id. Reads back the event id.
pub enum CitedKey {}

impl Format for CitedKey {
    type Read = String;
    fn decode(bytes: &[u8]) -> Result<String, String> {
        std::str::from_utf8(past_room(bytes)?)
            .map(str::to_owned)
            .map_err(|_| "cited key: event id is not UTF-8".to_owned())
    }
}

impl Encode<CitedKey> for InRoom<'_, &str> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_room(out);
        out.extend_from_slice(self.key.as_bytes());
    }
}

impl KeyPrefix<ChainKey> for InRoom<'_, ()> {
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        self.encode_room(out);
    }
}

impl KeyPrefix<OutlierWaitKey> for InRoom<'_, ()> {
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        self.encode_room(out);
    }
}

impl KeyPrefix<CitedKey> for InRoom<'_, ()> {
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        self.encode_room(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<K: ?Sized + Format>(key: &(impl Encode<K> + ?Sized)) -> K::Read {
        let mut out = Vec::new();
        key.encode(&mut out);
        K::decode(&out).expect("decodes")
    }

    #[test]
    fn room_scoped_keys_read_back_what_was_written() {
        let room = "!r:example.org";
        assert_eq!(
            round_trip::<ChainKey>(&InRoom {
                room_id: room,
                key: 7u64
            }),
            7
        );
        assert_eq!(
            round_trip::<OutlierWaitKey>(&InRoom {
                room_id: room,
                key: ("$prev", 9u64)
            }),
            ("$prev".to_owned(), 9)
        );
        assert_eq!(
            round_trip::<CitedKey>(&InRoom {
                room_id: room,
                key: "$cited"
            }),
            "$cited"
        );
    }

    #[test]
    fn a_room_prefix_is_the_start_of_that_room_s_keys_only() {
        let prefix = |room| {
            let mut out = Vec::new();
            KeyPrefix::<ChainKey>::encode_prefix(
                &InRoom {
                    room_id: room,
                    key: (),
                },
                &mut out,
            );
            out
        };
        let key = AUTH_CHAINS.key_bytes(&InRoom {
            room_id: "!a:x",
            key: 1u64,
        });
        assert!(key.starts_with(&prefix("!a:x")));
        // A room whose id extends another's has a different length prefix.
        assert!(!key.starts_with(&prefix("!a:x2")));
        let longer = AUTH_CHAINS.key_bytes(&InRoom {
            room_id: "!a:x2",
            key: 1u64,
        });
        assert!(!longer.starts_with(&prefix("!a:x")));
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        assert!(<u64 as Format>::decode(&[1, 2, 3]).is_err());
        assert!(<u32 as Format>::decode(&[]).is_err());
        assert!(<str as Format>::decode(&[0xff]).is_err());
        assert!(ChainKey::decode(&[0, 9, b'!']).is_err());
        assert!(OutlierWaitKey::decode(&[0, 0, 1, 2]).is_err());
        assert!(Extremities::decode(&[1; 7]).is_err());
        assert!(StateHash::decode(&[0; 31]).is_err());
    }

    /// The rows are appended to what `out` holds, in the layouts of `docs/store.md`.
    #[test]
    fn records_append_their_stored_bytes() {
        use roomgraph_core::resolve::{ChainPos, Inserted};
        fn appended<F: ?Sized>(value: &impl Encode<F>) -> Vec<u8> {
            let mut out = vec![0xaa];
            value.encode(&mut out);
            assert_eq!(out[0], 0xaa);
            out.split_off(1)
        }
        let room = RoomRecord {
            room_version: "12".into(),
            create_event: 42,
        };
        assert_eq!(
            appended(&room),
            [&[2, b'1', b'2'][..], &42u64.to_be_bytes()].concat()
        );
        assert_eq!(
            appended(&TypeStateKey::new("m.room.member", "@a:x")),
            [&[0, 13][..], b"m.room.member", b"@a:x"].concat()
        );
        let extremities = ExtremitiesRef {
            current: 5,
            events: &[1, 2],
        };
        assert_eq!(
            appended(&extremities),
            [5u64, 1, 2].map(u64::to_be_bytes).concat()
        );
        let row = ChainRow {
            key: 0xdead_beef,
            inserted: Inserted {
                pos: ChainPos { chain: 7, seq: 3 },
                links: [ChainPos { chain: 9, seq: 40 }].into_iter().collect(),
            },
        };
        assert_eq!(
            appended(&row),
            [
                &0xdead_beefu32.to_be_bytes()[..],
                &7u64.to_be_bytes(),
                &3u32.to_be_bytes(),
                &9u64.to_be_bytes(),
                &40u32.to_be_bytes(),
            ]
            .concat()
        );
    }

    #[test]
    fn meta_tables_keep_their_prefix() {
        assert_eq!(
            PENDING.key_bytes(&5u64),
            [b"pending/".as_slice(), &5u64.to_be_bytes()].concat()
        );
        assert_eq!(PENDING.cf_name(), "meta");
    }
}
