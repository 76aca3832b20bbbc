//! AWS RDS / Aurora IAM tokens (being written).

use super::{AwsSettings, CloudError, Request, Token};

pub fn token(_settings: &AwsSettings, _request: &Request<'_>) -> Result<Token, CloudError> {
    Err(CloudError::one("AWS", "not built yet", "use a password"))
}
