//! SQL identifier quoting for the few names pgmi-upload must splice into SQL text
//! (`CREATE DATABASE <name>`, the extension's schema). Everything else the user supplies
//! travels as COPY data, never as SQL text.
//!
//! Always quoted (PostgreSQL's `quote_ident` leaves some names bare; quoting all of them is
//! equally valid and needs no keyword list): wrap in `"` and double every inner `"`. A NUL
//! cannot be represented in an identifier, so it is refused rather than truncated.

pub fn quote_ident(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("an empty name cannot be used as an SQL identifier".into());
    }
    if name.contains('\0') {
        return Err("a name containing a NUL byte cannot be used as an SQL identifier".into());
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn quotes_and_doubles_inner_quotes() {
        assert_eq!(quote_ident("app").unwrap(), "\"app\"");
        assert_eq!(quote_ident("My DB").unwrap(), "\"My DB\"");
        assert_eq!(quote_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("x\"; DROP DATABASE y; --").unwrap(),
            "\"x\"\"; DROP DATABASE y; --\""
        );
        assert_eq!(quote_ident("ünï").unwrap(), "\"ünï\"");
    }

    #[test]
    fn refuses_empty_and_nul() {
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\0b").is_err());
    }
}
