//! Checking a request's API and version against the table of what weir advertises.
//!
//! The table itself belongs to the broker, which implements the APIs (its registry in
//! `weir_broker::api` derives it from the handlers), and is passed in: this crate knows how
//! to check a header against a table, not which APIs exist. ApiVersions answers from the
//! same table, so what is advertised is exactly what is handled.

use kafka_protocol::messages::ApiKey;

/// One advertised API: (api, min version, max version).
pub type ApiVersionRange = (ApiKey, i16, i16);

/// The range `table` advertises for `api`, or None if it is not there.
pub fn supported_range(table: &[ApiVersionRange], api: ApiKey) -> Option<(i16, i16)> {
    table
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// The range the dispatcher actually accepts: the advertised one narrowed to what the codec
/// can decode. The two differ where a client needs a version listed that the codec refuses:
/// Produce advertises min 0 although v0-2 cannot be decoded (KIP-896), because librdkafka
/// before 2.11.1 only compresses when Produce v0 is listed.
pub fn accepted_range(table: &[ApiVersionRange], api: ApiKey) -> Option<(i16, i16)> {
    let (min, max) = supported_range(table, api)?;
    let codec = api.valid_versions();
    Some((min.max(codec.min), max.min(codec.max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[ApiVersionRange] = &[(ApiKey::Produce, 0, 10), (ApiKey::Metadata, 0, 12)];

    #[test]
    fn accepted_range_is_the_advertised_one_narrowed_to_the_codec() {
        assert_eq!(supported_range(TABLE, ApiKey::Produce), Some((0, 10)));
        assert_eq!(accepted_range(TABLE, ApiKey::Produce), Some((3, 10)));
        assert_eq!(accepted_range(TABLE, ApiKey::Metadata), Some((0, 12)));
    }

    #[test]
    fn an_api_missing_from_the_table_is_not_accepted() {
        assert_eq!(supported_range(TABLE, ApiKey::Fetch), None);
        assert_eq!(accepted_range(TABLE, ApiKey::Fetch), None);
    }
}
