//! Who may call what: mutating calls need the bearer token from the configured file; reads are
//! open unless the configuration closes them (then they need the token too).

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

    fn token_ok(&self, given: Option<&str>) -> bool {
        match (&self.token, given) {
            (Some(token), Some(given)) => {
                constant_time_eq(given.trim().as_bytes(), token.as_bytes())
            }
            _ => false,
        }
    }

    /// What the bearer token `given` (if any) grants.
    pub(crate) fn grant(&self, given: Option<&str>) -> Grant {
        if self.token_ok(given) {
            Grant::Write
        } else if self.reads_open {
            Grant::Read
        } else {
            Grant::Nothing
        }
    }

    /// The grant of an `authorization: Bearer ...` header (HTTP) or metadata entry (gRPC).
    pub(crate) fn grant_of(&self, authorization: Option<&[u8]>) -> Grant {
        let given = authorization
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        self.grant(given)
    }

    /// The gRPC side: every call needs a read grant; the grant rides along in the request's
    /// extensions for the handlers of mutating calls ([`Grant::may_write`]).
    pub(crate) fn interceptor(
        self: std::sync::Arc<Self>,
    ) -> impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
        move |mut req: tonic::Request<()>| {
            let grant = self.grant_of(req.metadata().get("authorization").map(|v| v.as_bytes()));
            if grant == Grant::Nothing {
                return Err(tonic::Status::unauthenticated(
                    "a valid bearer token is required",
                ));
            }
            req.extensions_mut().insert(grant);
            Ok(req)
        }
    }
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Grant {
    Nothing,
    Read,
    Write,
}

impl Grant {
    /// For a gRPC handler: the grant the interceptor found, write or not.
    pub(crate) fn may_write<T>(req: &tonic::Request<T>) -> bool {
        req.extensions().get::<Grant>() == Some(&Grant::Write)
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
        assert_eq!(a.grant_of(None), Grant::Read);
        assert_eq!(a.grant_of(Some(b"Bearer wrong")), Grant::Read);
        assert_eq!(a.grant_of(Some(b"s3cret")), Grant::Read);
        assert_eq!(a.grant_of(Some(b"Bearer s3cret")), Grant::Write);
        let closed = Auth::new(Some(&dir), false).unwrap();
        assert_eq!(closed.grant_of(None), Grant::Nothing);
        assert_eq!(closed.grant_of(Some(b"Bearer s3cret")), Grant::Write);
        assert_eq!(
            Auth::new(None, true)
                .unwrap()
                .grant_of(Some(b"Bearer s3cret")),
            Grant::Read
        );
        std::fs::write(&dir, " \n").unwrap();
        assert!(Auth::new(Some(&dir), true).is_err());
        let _ = std::fs::remove_file(&dir);
    }
}
