//! Receipt checks shared by routing (new events) and de-outliering (events stored earlier).

use crate::auth::{self, AuthFailure};
use crate::pdu::Pdu;
use crate::room_version::RoomVersion;
use crate::signatures::{self, SignatureError};

/// The signature-presence check: `Ok(Some(_))` rejects the event; `Err` (an authoriser that names no
/// server, which Synapse cannot process) makes the line invalid.
pub(super) fn presence(pdu: &Pdu<'_>) -> Result<Option<Box<AuthFailure>>, String> {
    match signatures::check_present(pdu) {
        Ok(()) => Ok(None),
        Err(e @ SignatureError::Authoriser { .. }) => Err(format!(
            "signature check: {}",
            auth::signature_failure(&e, pdu.version)
        )),
        Err(e) => Ok(Some(Box::new(auth::signature_failure(&e, pdu.version)))),
    }
}

/// The signature-presence failure of an event stored earlier (an outlier being de-outliered: Synapse
/// validates it again). Its bytes passed the parse when received, so a parse failure finds nothing.
pub(super) fn stored_presence(
    bytes: &[u8],
    version: &'static RoomVersion,
) -> Option<Box<AuthFailure>> {
    let pdu = Pdu::parse(bytes, version).ok()?;
    presence(&pdu).ok().flatten()
}
