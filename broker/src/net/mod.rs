//! Networking: the listener, one task per connection, framing and the
//! request/response header layer.
//!
//! A connection reads one size-prefixed frame at a time, decodes the request
//! header, hands the request to [`crate::handlers`] and queues the encoded
//! response for a writer task. Requests on one connection are handled one after
//! another, as Kafka does (it mutes a socket until the response is sent), so
//! responses leave in request order even when a client pipelines.

pub mod client;
pub mod connection;
mod frame_reader;
pub mod ip_limits;
pub mod listener;

pub use listener::{serve_listener, BoundListener};
