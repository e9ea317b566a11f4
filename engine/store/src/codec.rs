//! Byte layouts of the store's keys and values (see `docs/store.md`). Decoders never panic: a short or
//! malformed value is reported as a corrupt record by the caller.

/// What the pipeline decided about a stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventStatus {
    Accepted = 0,
    Rejected = 1,
    SoftFailed = 2,
    /// Stored outside the timeline (its prev events are missing): passed the checks against its auth
    /// events; no state of its own, never a forward extremity.
    Outlier = 3,
    /// An outlier that failed the checks against its auth events.
    RejectedOutlier = 4,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Accepted => "accepted",
            EventStatus::Rejected => "rejected",
            EventStatus::SoftFailed => "soft_failed",
            EventStatus::Outlier => "outlier",
            EventStatus::RejectedOutlier => "rejected_outlier",
        }
    }

    /// Rejected, in the timeline or as an outlier: never part of any state.
    pub fn is_rejected(self) -> bool {
        matches!(self, EventStatus::Rejected | EventStatus::RejectedOutlier)
    }

    /// Stored outside the timeline.
    pub fn is_outlier(self) -> bool {
        matches!(self, EventStatus::Outlier | EventStatus::RejectedOutlier)
    }

    fn from_u8(b: u8) -> Option<EventStatus> {
        match b {
            0 => Some(EventStatus::Accepted),
            1 => Some(EventStatus::Rejected),
            2 => Some(EventStatus::SoftFailed),
            3 => Some(EventStatus::Outlier),
            4 => Some(EventStatus::RejectedOutlier),
            _ => None,
        }
    }
}

/// The `events` value: `status u8 ‖ flags u8 ‖ version-id len u8 ‖ version id ‖ reason len u32 BE ‖
/// reason ‖ PDU bytes` (the stored form: as received, or the redacted form after a hash mismatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub status: EventStatus,
    /// The content hash did not match: `pdu` is the redacted form.
    pub redacted: bool,
    pub room_version: String,
    pub reason: String,
    pub pdu: Vec<u8>,
}

const FLAG_REDACTED: u8 = 1;

impl EventRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(8 + self.room_version.len() + self.reason.len() + self.pdu.len());
        encode_event_record_into(
            &mut out,
            self.status,
            self.redacted,
            &self.room_version,
            &self.reason,
            &self.pdu,
        );
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<EventRecord, String> {
        let mut r = Reader(bytes);
        let status = r
            .u8()
            .and_then(EventStatus::from_u8)
            .ok_or("bad status byte")?;
        let flags = r.u8().ok_or("missing flags")?;
        let vlen = r.u8().ok_or("missing room version length")? as usize;
        let room_version = r.str(vlen).ok_or("bad room version")?;
        let rlen = r.u32().ok_or("missing reason length")? as usize;
        let reason = r.str(rlen).ok_or("bad reason")?;
        Ok(EventRecord {
            status,
            redacted: flags & FLAG_REDACTED != 0,
            room_version,
            reason,
            pdu: r.0.to_vec(),
        })
    }
}

/// The `event_state` value: the snapshots before and after the event, its status, room, id and DAG
/// edges (see `docs/store.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub before: u64,
    pub after: u64,
    pub status: EventStatus,
    pub room_id: String,
    pub event_id: String,
    /// Event numbers of `prev_events`, in PDU order.
    pub prev: Vec<u64>,
    /// Event numbers of `auth_events`, in PDU order.
    pub auth: Vec<u64>,
}

impl EventMeta {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_event_meta(
            &mut out,
            self.before,
            self.after,
            self.status,
            &self.room_id,
            &self.event_id,
            &self.prev,
            &self.auth,
        );
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<EventMeta, String> {
        let mut r = Reader(bytes);
        let before = r.u64().ok_or("missing snapshot before")?;
        let after = r.u64().ok_or("missing snapshot after")?;
        let status = r
            .u8()
            .and_then(EventStatus::from_u8)
            .ok_or("bad status byte")?;
        let room_id = r
            .u16()
            .and_then(|n| r.str(n as usize))
            .ok_or("room id: short or not UTF-8")?;
        let event_id = r
            .u16()
            .and_then(|n| r.str(n as usize))
            .ok_or("event id: short or not UTF-8")?;
        let mut list = |what: &str| -> Result<Vec<u64>, String> {
            let n = r.u16().ok_or_else(|| format!("missing {what} count"))?;
            (0..n)
                .map(|_| r.u64().ok_or_else(|| format!("short {what} list")))
                .collect()
        };
        let prev = list("prev_events")?;
        let auth = list("auth_events")?;
        if !r.0.is_empty() {
            return Err(format!("{} trailing bytes", r.0.len()));
        }
        Ok(EventMeta {
            before,
            after,
            status,
            room_id,
            event_id,
            prev,
            auth,
        })
    }
}

/// Appends the `events` value of an [`EventRecord`] to `out`, without building one (the version id is
/// cut at 255 bytes, as the format holds).
pub fn encode_event_record_into(
    out: &mut Vec<u8>,
    status: EventStatus,
    redacted: bool,
    room_version: &str,
    reason: &str,
    pdu: &[u8],
) {
    out.reserve(7 + room_version.len().min(255) + reason.len() + pdu.len());
    out.push(status as u8);
    out.push(if redacted { FLAG_REDACTED } else { 0 });
    let v = &room_version.as_bytes()[..room_version.len().min(255)];
    out.push(v.len() as u8);
    out.extend_from_slice(v);
    let reason = &reason.as_bytes()[..reason.len().min(u32::MAX as usize)];
    out.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    out.extend_from_slice(reason);
    out.extend_from_slice(pdu);
}

/// Appends the `event_state` value (see `docs/store.md`) to `out`, without building an [`EventMeta`].
/// Ids and lists longer than the format holds are cut (PDU limits keep them far below: ids 255 bytes,
/// 20 prev and 10 auth events).
#[allow(clippy::too_many_arguments)]
pub fn encode_event_meta(
    out: &mut Vec<u8>,
    before: u64,
    after: u64,
    status: EventStatus,
    room_id: &str,
    event_id: &str,
    prev: &[u64],
    auth: &[u64],
) {
    let cap = |b: &[u8]| b.len().min(u16::MAX as usize);
    let room = &room_id.as_bytes()[..cap(room_id.as_bytes())];
    let id = &event_id.as_bytes()[..cap(event_id.as_bytes())];
    let prev = &prev[..prev.len().min(u16::MAX as usize)];
    let auth = &auth[..auth.len().min(u16::MAX as usize)];
    out.reserve(25 + room.len() + id.len() + 4 + 8 * (prev.len() + auth.len()));
    out.extend_from_slice(&before.to_be_bytes());
    out.extend_from_slice(&after.to_be_bytes());
    out.push(status as u8);
    for b in [room, id] {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    }
    for list in [prev, auth] {
        out.extend_from_slice(&(list.len() as u16).to_be_bytes());
        for n in list {
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// The `rooms` value: `version-id len u8 ‖ version id ‖ create event number u64 BE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    pub room_version: String,
    pub create_event: u64,
}

impl RoomRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// [`RoomRecord::encode`], appending to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let v = &self.room_version.as_bytes()[..self.room_version.len().min(255)];
        out.reserve(9 + v.len());
        out.push(v.len() as u8);
        out.extend_from_slice(v);
        out.extend_from_slice(&self.create_event.to_be_bytes());
    }

    pub fn decode(bytes: &[u8]) -> Result<RoomRecord, String> {
        let mut r = Reader(bytes);
        let vlen = r.u8().ok_or("missing room version length")? as usize;
        let room_version = r.str(vlen).ok_or("bad room version")?;
        let create_event = r.u64().ok_or("missing create event number")?;
        Ok(RoomRecord {
            room_version,
            create_event,
        })
    }
}

/// A `(type, state_key)` pair; encoded as `type len u16 BE ‖ type ‖ state_key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeStateKey {
    pub event_type: String,
    pub state_key: String,
}

impl TypeStateKey {
    pub fn new(event_type: &str, state_key: &str) -> TypeStateKey {
        TypeStateKey {
            event_type: event_type.to_owned(),
            state_key: state_key.to_owned(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        encode_state_key(&self.event_type, &self.state_key)
    }

    pub fn decode(bytes: &[u8]) -> Result<TypeStateKey, String> {
        let mut r = Reader(bytes);
        let tlen = r.u16().ok_or("missing type length")? as usize;
        let event_type = r.str(tlen).ok_or("bad type")?;
        let state_key = std::str::from_utf8(r.0)
            .map_err(|_| "state key is not UTF-8")?
            .to_owned();
        Ok(TypeStateKey {
            event_type,
            state_key,
        })
    }
}

/// Encodes a `(type, state_key)` pair without building a [`TypeStateKey`].
/// [`encode_state_key`] into `out`, returning the length; `None` when it does not fit.
pub fn encode_state_key_into(event_type: &str, state_key: &str, out: &mut [u8]) -> Option<usize> {
    let (t, s) = (event_type.as_bytes(), state_key.as_bytes());
    let len = 2 + t.len() + s.len();
    if t.len() > u16::MAX as usize || len > out.len() {
        return None;
    }
    out[..2].copy_from_slice(&(t.len() as u16).to_be_bytes());
    out[2..2 + t.len()].copy_from_slice(t);
    out[2 + t.len()..len].copy_from_slice(s);
    Some(len)
}

pub fn encode_state_key(event_type: &str, state_key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    append_state_key(&mut out, event_type, state_key);
    out
}

/// [`encode_state_key`], appending to `out`.
pub fn append_state_key(out: &mut Vec<u8>, event_type: &str, state_key: &str) {
    // Types are at most 255 bytes (checked at parse time), so the length always fits.
    let t = &event_type.as_bytes()[..event_type.len().min(u16::MAX as usize)];
    out.reserve(2 + t.len() + state_key.len());
    out.extend_from_slice(&(t.len() as u16).to_be_bytes());
    out.extend_from_slice(t);
    out.extend_from_slice(state_key.as_bytes());
}

pub fn u64_from(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

pub fn u64_list(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(bytes.chunks_exact(8).filter_map(u64_from).collect())
}

/// Appends the `extremities` value to `out`: `current snapshot u64 ‖ extremity event numbers u64…`.
pub fn append_extremities(out: &mut Vec<u8>, current: u64, extremities: &[u64]) {
    out.reserve(8 * (1 + extremities.len()));
    out.extend_from_slice(&current.to_be_bytes());
    for e in extremities {
        out.extend_from_slice(&e.to_be_bytes());
    }
}

pub fn decode_extremities(bytes: &[u8]) -> Option<(u64, Vec<u64>)> {
    let list = u64_list(bytes)?;
    let (first, rest) = list.split_first()?;
    Some((*first, rest.to_vec()))
}

pub fn hex(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes)
        && s.chars().all(|c| c.is_ascii_graphic())
    {
        return format!("`{s}`");
    }
    bytes.iter().take(64).map(|b| format!("{b:02x}")).collect()
}

pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_be_bytes)
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(u64_from)
    }
    pub fn str(&mut self, n: usize) -> Option<String> {
        self.take(n)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
    }
}

/// One event's row of the chain cover index (`auth_chains`): the hash of its `(type, state_key)` and
/// what [`ChainCover::insert`](roomgraph_core::resolve::ChainCover::insert) added.
/// Layout: `key u32 ‖ chain u64 ‖ seq u32 ‖ (chain u64 ‖ seq u32)*`, big-endian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    pub key: u32,
    pub inserted: roomgraph_core::resolve::Inserted,
}

impl ChainRow {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// [`ChainRow::encode`], appending to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let links = &self.inserted.links;
        out.reserve(16 + 12 * links.len());
        out.extend_from_slice(&self.key.to_be_bytes());
        for p in std::iter::once(&self.inserted.pos).chain(links.iter()) {
            out.extend_from_slice(&p.chain.to_be_bytes());
            out.extend_from_slice(&p.seq.to_be_bytes());
        }
    }

    pub fn decode(v: &[u8]) -> Result<ChainRow, String> {
        use roomgraph_core::resolve::{ChainPos, Inserted};
        let (key, rest) = v
            .split_first_chunk::<4>()
            .ok_or("chain row shorter than its key hash")?;
        if rest.is_empty() || rest.len() % 12 != 0 {
            return Err(format!(
                "chain row of {} bytes is not 4 + 12 per position",
                v.len()
            ));
        }
        let mut positions = rest.chunks_exact(12).map(|c| {
            let (chain, seq) = c.split_at(8);
            ChainPos {
                chain: u64::from_be_bytes(chain.try_into().unwrap_or_default()),
                seq: u32::from_be_bytes(seq.try_into().unwrap_or_default()),
            }
        });
        let pos = positions.next().ok_or("chain row without a position")?;
        if pos.seq == 0 {
            return Err("chain row with sequence number 0".into());
        }
        Ok(ChainRow {
            key: u32::from_be_bytes(*key),
            inserted: Inserted {
                pos,
                links: positions.collect(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_rows_round_trip_and_bad_ones_are_refused() {
        use roomgraph_core::resolve::{ChainPos, Inserted};
        let row = ChainRow {
            key: 0xdead_beef,
            inserted: Inserted {
                pos: ChainPos { chain: 7, seq: 3 },
                links: [
                    ChainPos { chain: 1, seq: 1 },
                    ChainPos { chain: 9, seq: 40 },
                ]
                .into_iter()
                .collect(),
            },
        };
        let bytes = row.encode();
        assert_eq!(bytes.len(), 4 + 3 * 12);
        assert_eq!(ChainRow::decode(&bytes), Ok(row));
        for bad in [
            &bytes[..3],
            &bytes[..4],
            &bytes[..20],
            &bytes[..bytes.len() - 1],
        ] {
            assert!(ChainRow::decode(bad).is_err(), "{} bytes", bad.len());
        }
        let mut zero = bytes.clone();
        zero[12..16].copy_from_slice(&0u32.to_be_bytes());
        assert!(ChainRow::decode(&zero).is_err());
    }

    #[test]
    fn records_round_trip() {
        let rec = EventRecord {
            status: EventStatus::SoftFailed,
            redacted: true,
            room_version: "11".into(),
            reason: "rule 4.7: nope".into(),
            pdu: b"{\"a\":1}".to_vec(),
        };
        assert_eq!(EventRecord::decode(&rec.encode()), Ok(rec));
        let room = RoomRecord {
            room_version: "12".into(),
            create_event: 42,
        };
        assert_eq!(RoomRecord::decode(&room.encode()), Ok(room));
        let mut buf = [0u8; 24];
        let n = encode_state_key_into("m.room.member", "@a:x", &mut buf);
        assert_eq!(
            n.map(|n| &buf[..n]),
            Some(&encode_state_key("m.room.member", "@a:x")[..])
        );
        assert_eq!(
            encode_state_key_into("m.room.member", "@abcdefgh:x", &mut buf),
            None
        );
        let key = TypeStateKey::new("m.room.member", "@a:x");
        assert_eq!(TypeStateKey::decode(&key.encode()), Ok(key));
        let mut extremities = Vec::new();
        append_extremities(&mut extremities, 5, &[1, 2]);
        assert_eq!(decode_extremities(&extremities), Some((5, vec![1, 2])));
        let meta = EventMeta {
            before: 7,
            after: 8,
            status: EventStatus::Rejected,
            room_id: "!r:x".into(),
            event_id: "$e".into(),
            prev: vec![3, 4],
            auth: vec![1, 2, 6],
        };
        assert_eq!(EventMeta::decode(&meta.encode()), Ok(meta));
    }

    #[test]
    fn event_meta_prefixes_and_trailing_bytes_are_errors() {
        let meta = EventMeta {
            before: 1,
            after: 2,
            status: EventStatus::Accepted,
            room_id: "!r:x".into(),
            event_id: "$e".into(),
            prev: vec![1],
            auth: vec![],
        };
        let bytes = meta.encode();
        for n in 0..bytes.len() {
            assert!(EventMeta::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(EventMeta::decode(&longer).is_err());
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let rec = EventRecord {
            status: EventStatus::Accepted,
            redacted: false,
            room_version: "11".into(),
            reason: "x".repeat(10),
            pdu: vec![],
        };
        let bytes = rec.encode();
        for n in 0..bytes.len() - 1 {
            assert!(EventRecord::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        assert!(EventRecord::decode(&[9]).is_err());
        assert!(RoomRecord::decode(&[3, b'1']).is_err());
        assert!(u64_list(&[1, 2, 3]).is_none());
    }
}
