//! Google Cloud SQL IAM tokens (being written).

use super::{CloudError, GoogleSettings, Request, Token};

/// Where to connect to a Cloud SQL instance, from the Cloud SQL Admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The IP address to connect to.
    pub host: String,
    /// The instance's server CA certificate(s), PEM, to verify the server with.
    pub server_ca_pem: Option<String>,
}

pub fn token(_settings: &GoogleSettings, _request: &Request<'_>) -> Result<Token, CloudError> {
    Err(CloudError::one("Google", "not built yet", "use a password"))
}

/// The instance's address (`host`/`port`/`user` of `request` are not used).
pub fn resolve_instance(
    _settings: &GoogleSettings,
    _request: &Request<'_>,
) -> Result<Address, CloudError> {
    Err(CloudError::one("Google", "not built yet", "use --host"))
}
