//! API keys and scopes (SPEC §4 Security).
//!
//! A key is an opaque token of 256 random bits ([`new_api_key`] writes it as
//! 64 lowercase hex characters), presented as `Authorization: Bearer <key>`.
//! The configuration holds only the SHA-256 of the token's bytes
//! (`[[server.api_keys]]`, see docs/SERVER.md); the server hashes what it is
//! given and compares it with every configured hash in constant time. A
//! plain SHA-256 (no salt, no slow hash) is enough because the keys are
//! random 256-bit values, not passwords: there is nothing to guess.
//!
//! Keys are never logged and never echoed: errors name the key's
//! configured `name` at most.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use veltrix_config::{ApiKey, Scope};

/// A new random API key: `(key, sha256 hex)`. Give the key to the client;
/// put only the hash into `[[server.api_keys]]`.
pub fn new_api_key() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let key = hex::encode(bytes);
    let hash = hash_hex(&key);
    Ok((key, hash))
}

/// The SHA-256 of a key as the configuration stores it (64 hex characters).
pub fn hash_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The configured keys; empty means no authentication (loopback only).
#[derive(Clone, Default)]
pub struct Keys {
    keys: Arc<[ApiKey]>,
}

impl Keys {
    pub fn new(keys: &[ApiKey]) -> Keys {
        Keys { keys: keys.into() }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The configured key whose hash matches `presented`. Every configured
    /// hash is compared, in constant time, whatever matches: the time taken
    /// says nothing about how close a guess was, nor which key matched.
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let digest = Sha256::digest(presented.as_bytes());
        let mut found = None;
        for key in self.keys.iter() {
            if bool::from(key.sha256.ct_eq(digest.as_slice())) {
                found = Some(key);
            }
        }
        found
    }

    /// Checks a request's `Authorization` header for `needed`: 401 without
    /// a known key, 403 with a key lacking the scope.
    pub fn check(&self, header: Option<&HeaderValue>, needed: Scope) -> Result<(), ApiError> {
        if self.is_empty() {
            return Ok(());
        }
        let Some(header) = header else {
            return Err(unauthorized(
                "this route needs an API key: send Authorization: Bearer <key>",
            ));
        };
        let token = header.to_str().ok().and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())
                .filter(|t| !t.is_empty())
        });
        let Some(token) = token else {
            return Err(unauthorized(
                "malformed Authorization header: expected Authorization: Bearer <key>",
            ));
        };
        let Some(key) = self.find(token) else {
            return Err(unauthorized("unknown API key"));
        };
        if key.allows(needed) {
            Ok(())
        } else {
            let scopes: Vec<&str> = key.scopes.iter().map(|s| s.name()).collect();
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "API key \"{}\" lacks the scope \"{}\" this route needs (it has: {})",
                    key.name,
                    needed.name(),
                    scopes.join(", ")
                ),
            )
            .with_details(json!({
                "key": key.name,
                "required_scope": needed.name(),
                "scopes": scopes,
            })))
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// What a route's guard checks.
#[derive(Clone)]
pub struct Guard {
    pub keys: Keys,
    pub scope: Scope,
}

/// Middleware in front of one route: refuses the request unless its key
/// has the route's scope.
pub async fn require(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard
        .keys
        .check(request.headers().get(header::AUTHORIZATION), guard.scope)
    {
        Ok(()) => next.run(request).await,
        Err(error) => {
            let status = error.status;
            let mut response = error.into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"veltrix\""),
                );
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, plain: &str, scopes: &[Scope]) -> ApiKey {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(hash_hex(plain), &mut sha256).unwrap();
        ApiKey {
            name: name.into(),
            sha256,
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn new_keys_are_random_and_hash_to_their_hex() {
        let (a, hash_a) = new_api_key().unwrap();
        let (b, _) = new_api_key().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash_hex(&a), hash_a);
        assert_ne!(a, hash_a);
    }

    #[test]
    fn scopes_401_and_403() {
        let keys = Keys::new(&[
            key("backend", "k1", &[Scope::Ingest]),
            key("ops", "k2", &[Scope::Admin]),
        ]);
        let h = |v: &str| HeaderValue::from_str(v).unwrap();
        assert_eq!(keys.check(None, Scope::Read).unwrap_err().status, 401);
        let e = keys
            .check(Some(&h("Bearer nope")), Scope::Read)
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (401, "unauthorized"));
        assert!(!e.message.contains("nope"));
        assert_eq!(
            keys.check(Some(&h("Basic k1")), Scope::Ingest)
                .unwrap_err()
                .status,
            401
        );
        assert!(keys.check(Some(&h("Bearer k1")), Scope::Ingest).is_ok());
        assert!(keys.check(Some(&h("bearer  k1 ")), Scope::Ingest).is_ok());
        let e = keys.check(Some(&h("Bearer k1")), Scope::Read).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "forbidden"));
        assert!(!e.message.contains("k1\""), "{}", e.message);
        for scope in Scope::ALL {
            assert!(keys.check(Some(&h("Bearer k2")), scope).is_ok());
        }
        assert!(Keys::default().check(None, Scope::Admin).is_ok());
    }
}
