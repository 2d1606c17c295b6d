//! The token the whole system uses: one definition of its header and claims, and the
//! signing, decoding and verification rules that `mint`, `decode`, `verify`, the
//! service and the health check share.
//!
//! Interoperability with Node's `jsonwebtoken`: the HMAC key is the UTF-8 bytes of
//! the secret string as written in `.env`, never its base64-decoded bytes.

mod claims;
mod input;
mod inspect;
mod keys;

pub use claims::{Claims, Kind, Secret, Subject, TokenConfig, random_id, sign};
pub use input::{InputError, extract};
pub use inspect::{
    Check, Failure, Inspected, MalformedToken, State, Summary, Time, inspect, rfc3339, verify_signature,
};
pub use keys::{KeyRing, Previous, key_id};
