//! What a handler or a coordinator answers: now, later (after an fsync or a long poll), or
//! not at all. Kept out of `api` so the coordinators can return it without depending on the
//! request layer.

use std::future::Future;
use std::pin::Pin;

/// A boxed future that can be sent to the connection's writer and awaited there.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A handler's answer.
pub enum Reply<T> {
    /// Ready now.
    Now(T),
    /// Ready when the future completes (after an fsync, or a long poll).
    Later(BoxFuture<T>),
    /// No response at all (Produce with acks=0).
    Nothing,
}
