//! Who may call what: mutating calls need the bearer token from the configured file; reads are
//! open unless the configuration closes them (then they need the token too).

use axum::http::HeaderMap;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the API token file {path}: {source}")]
    TokenFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the API token file {0} is empty")]
    EmptyToken(String),
}

#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// None: no token configured, so mutating calls are refused.
    token: Option<String>,
    reads_open: bool,
}

/// Compares without returning early on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub fn new(token_file: Option<&std::path::Path>, reads_open: bool) -> Result<Auth, AuthError> {
        let token = match token_file {
            None => None,
            Some(p) => {
                let t = std::fs::read_to_string(p).map_err(|source| AuthError::TokenFile {
                    path: p.display().to_string(),
                    source,
                })?;
                let t = t.trim().to_string();
                if t.is_empty() {
                    return Err(AuthError::EmptyToken(p.display().to_string()));
                }
                Some(t)
            }
        };
        Ok(Auth { token, reads_open })
    }

    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        self.token_ok(given)
    }

    fn token_ok(&self, given: Option<&str>) -> bool {
        match (&self.token, given) {
            (Some(token), Some(given)) => {
                constant_time_eq(given.trim().as_bytes(), token.as_bytes())
            }
            _ => false,
        }
    }

    /// For gRPC: the token from the `authorization: Bearer ...` metadata, if any.
    pub fn may_read_token(&self, given: Option<&str>) -> bool {
        self.reads_open || self.token_ok(given)
    }

    pub fn may_write_token(&self, given: Option<&str>) -> bool {
        self.token_ok(given)
    }

    pub fn may_read(&self, headers: &HeaderMap) -> bool {
        self.reads_open || self.bearer_ok(headers)
    }

    pub fn may_write(&self, headers: &HeaderMap) -> bool {
        self.bearer_ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_required_for_writes() {
        let dir = std::env::temp_dir().join(format!("nsd-token-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let a = Auth::new(Some(&dir), true).unwrap();
        let mut h = HeaderMap::new();
        assert!(a.may_read(&h));
        assert!(!a.may_write(&h));
        h.insert("authorization", "Bearer wrong".parse().unwrap());
        assert!(!a.may_write(&h));
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(a.may_write(&h));
        let closed = Auth::new(Some(&dir), false).unwrap();
        assert!(!closed.may_read(&HeaderMap::new()));
        assert!(closed.may_read(&h));
        assert!(!Auth::new(None, true).unwrap().may_write(&h));
        std::fs::write(&dir, " \n").unwrap();
        assert!(Auth::new(Some(&dir), true).is_err());
        let _ = std::fs::remove_file(&dir);
    }
}
