//! The client's error type. Kafka error codes are reported by their Kafka names
//! (`UNKNOWN_TOPIC_OR_PARTITION`), the names every Kafka operator already knows.

use kafka_protocol::error::ResponseError;

/// What every fallible call of this crate returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a client call failed, worded for the CLI user who will read it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connect to one broker failed.
    #[error("cannot connect to {addr}: {cause}")]
    Connect {
        /// The broker address tried.
        addr: String,
        /// The OS error.
        cause: std::io::Error,
    },
    /// Bootstrap failed on every configured broker.
    #[error("no broker reachable (tried {tried}); set --brokers or WEIR_BROKERS")]
    NoBrokerReachable {
        /// The addresses tried, comma-separated.
        tried: String,
    },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {name} (error code {code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        /// What was being done (request and resource), for the message.
        context: String,
        /// The Kafka error code (never 0).
        code: i16,
        /// Kafka's name of `code`, as operators know it (`NOT_LEADER_OR_FOLLOWER`).
        name: String,
        /// The broker's error message, if it sent a non-empty one.
        message: Option<String>,
    },
    /// ApiVersions showed no version of an API this client needs.
    #[error("the broker does not support {api} at any version this client speaks")]
    UnsupportedApi {
        /// The API's name (`ListOffsets`).
        api: String,
    },
    /// A request or connect got no answer in time; the string names it.
    #[error("{0} timed out")]
    Timeout(String),
    /// A read or write on an established connection failed.
    #[error("connection to {addr}: {cause}")]
    Io {
        /// The broker address.
        addr: String,
        /// The OS error.
        cause: std::io::Error,
    },
    /// The broker sent something this client cannot make sense of (bad frame, wrong
    /// correlation id, undecodable body).
    #[error("protocol error talking to {addr}: {detail}")]
    Protocol {
        /// The broker address.
        addr: String,
        /// What was wrong.
        detail: String,
    },
    /// A bad argument or an answer that does not fit the request (checked before or
    /// after the wire).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A Kafka error for `code` (which must not be 0).
    pub fn kafka(context: impl Into<String>, code: i16, message: Option<String>) -> Error {
        Error::Kafka {
            context: context.into(),
            code,
            name: error_name(code),
            message: message.filter(|m| !m.is_empty()),
        }
    }

    /// A connection problem that a later attempt may not have (the broker restarting,
    /// a dropped socket), as opposed to an answer that will not change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Io { .. }
                | Error::Timeout(_)
                | Error::NoBrokerReachable { .. }
        ) || matches!(self.code(), Some(5 | 6 | 7 | 13 | 14 | 15 | 16))
    }

    /// The Kafka error code if this is a Kafka error.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `Ok(())` for 0, else the Kafka error.
pub fn check(code: i16, context: impl FnOnce() -> String, message: Option<String>) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::kafka(context(), code, message))
    }
}

/// The one entry a single-resource request's response must hold (`what` names the
/// request and the resource, for the message when the broker answered none).
pub fn only<'a, T>(items: &'a [T], what: &str) -> Result<&'a T> {
    items
        .first()
        .ok_or_else(|| Error::Invalid(format!("{what} answered nothing")))
}

/// Kafka's name of an error code, as in Errors.java: `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => screaming_snake(&format!("{e:?}")),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
    }
}
