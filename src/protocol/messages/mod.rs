//! Placeholder until the generator (tests/codegen.rs) writes this folder.
use super::api::ApiKey;

impl ApiKey {
    /// ApiVersions (18).
    pub const API_VERSIONS: ApiKey = ApiKey(18);

    /// The API's name.
    pub fn name(self) -> &'static str {
        "UNKNOWN"
    }
}
