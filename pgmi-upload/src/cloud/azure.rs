//! Azure Entra ID tokens (being written).

use super::{AzureSettings, CloudError, Request, Token};

pub fn token(_settings: &AzureSettings, _request: &Request<'_>) -> Result<Token, CloudError> {
    Err(CloudError::one("Azure", "not built yet", "use a password"))
}
