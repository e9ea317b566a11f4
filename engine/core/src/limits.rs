//! The spec's fixed limits, at the bottom of the crate so that every layer can use them.

/// Largest PDU, as canonical JSON with signatures (client-server API "Size limits").
pub const MAX_PDU_BYTES: usize = 65_536;
/// Most `auth_events` a PDU may list.
pub const MAX_AUTH_EVENTS: usize = 10;
/// Most `prev_events` a PDU may list.
pub const MAX_PREV_EVENTS: usize = 20;
/// 2^53 − 1, the canonical-JSON integer limit.
pub const MAX_SAFE_INT: i64 = (1 << 53) - 1;
