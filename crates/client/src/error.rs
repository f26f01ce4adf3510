//! The client's error type. Kafka error codes are reported by their Kafka names
//! (`UNKNOWN_TOPIC_OR_PARTITION`), the names every Kafka operator already knows.

use kafka_protocol::error::ResponseError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {addr}: {cause}")]
    Connect { addr: String, cause: std::io::Error },
    #[error("no broker reachable (tried {tried}); set --brokers or WEIR_BROKERS")]
    NoBrokerReachable { tried: String },
    #[error("{context}: {name} (error code {code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        context: String,
        code: i16,
        name: String,
        message: Option<String>,
    },
    #[error("the broker does not support {api} at any version this client speaks")]
    UnsupportedApi { api: String },
    #[error("{0} timed out")]
    Timeout(String),
    #[error("connection to {addr}: {cause}")]
    Io { addr: String, cause: std::io::Error },
    #[error("protocol error talking to {addr}: {detail}")]
    Protocol { addr: String, detail: String },
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
