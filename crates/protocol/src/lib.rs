//! weir-protocol: everything between the socket and a decoded request.
//!
//! Owns: the length-prefixed frame (with the size cap checked before any allocation),
//! request header parsing, response framing (including the ApiVersions quirk: its
//! response header is always v0), and the check of a request's API and version against the
//! table of what weir advertises. The table itself comes from the broker's API registry
//! (`weir_broker::api::SUPPORTED_APIS`), since only the broker knows its handlers.
//! The message bodies themselves come from the `kafka-protocol` crate.
//!
//! Invariant: nothing here allocates more than the frame cap for one request, and no
//! input, however malformed, panics.

#![warn(missing_docs)]

pub mod frame;
pub mod header;
pub mod versions;

pub use frame::{read_frame, read_frame_chunk, read_frame_size, FrameError, FRAME_CHUNK_BYTES};
pub use header::{
    encode_response, encode_response_header, parse_request_header, EncodeError, HeaderError,
    RequestMeta,
};
pub use versions::{accepted_range, supported_range, ApiVersionRange};

pub use kafka_protocol;
