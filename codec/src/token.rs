//! The cluster's shared token: who may talk to a scheduler and its executors.
//!
//! Every gRPC client Ballista makes (client → scheduler, executor → scheduler, executor and
//! client → executor Flight) goes through an [`EndpointOverrideFn`]; ours sets the endpoint's
//! user agent to `pickleball-token/<sha256 of the token, hex>`, so every request carries the
//! credential without a change to Ballista. Servers (the scheduler's router, the executors'
//! Flight services) admit a request when its `user-agent` or `authorization: Bearer` header
//! carries that credential. The token itself never travels, only its digest; anyone who can
//! read the traffic can replay the digest, so a token keeps strangers out of a private network,
//! it does not replace TLS on an untrusted one.

use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::{EndpointOverrideFn, SessionConfigExt};
use datafusion::prelude::SessionConfig;
use sha2::{Digest, Sha256};

/// The gRPC/HTTP header names the credential may come in.
pub const USER_AGENT: &str = "user-agent";
/// See [`USER_AGENT`].
pub const AUTHORIZATION: &str = "authorization";

/// What a refused request is told.
pub const REFUSED: &str = "pickleball: this cluster requires its token (a missing or wrong \
     token was sent); pass token=... to pickleball.connect(), or --token / PICKLEBALL_TOKEN to \
     `pickleball executor`, with the token the scheduler was started with";

/// A cluster's shared secret, kept only as the credential derived from it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClusterToken {
    /// `pickleball-token/<hex digest>`.
    credential: String,
}

impl std::fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterToken(..)")
    }
}

impl ClusterToken {
    /// The token `secret`; empty or whitespace-only secrets are refused (an empty
    /// `PICKLEBALL_TOKEN` must not silently mean "no token").
    ///
    /// ```
    /// use pickleball_codec::token::ClusterToken;
    /// let token = ClusterToken::new("s3cret").unwrap();
    /// assert!(token.admits(Some(token.bearer().as_bytes()), None));
    /// assert!(ClusterToken::new(" ").is_err());
    /// ```
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.trim().is_empty() {
            return Err("the cluster token is empty; give a non-empty secret or none".into());
        }
        let digest = Sha256::digest(secret.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            credential: format!("pickleball-token/{hex}"),
        })
    }

    /// `Some(token)` for `Some(secret)`, checked as [`ClusterToken::new`].
    pub fn from_option(secret: Option<&str>) -> Result<Option<Self>, String> {
        secret.map(Self::new).transpose()
    }

    /// The value of an `authorization` header carrying the credential (REST calls).
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.credential)
    }

    /// The user agent that carries the credential on gRPC calls.
    pub fn user_agent(&self) -> &str {
        &self.credential
    }

    /// An endpoint override that makes every gRPC channel send the credential.
    pub fn endpoint_override(&self) -> EndpointOverrideFn {
        let agent = self.credential.clone();
        Arc::new(move |endpoint| Ok(endpoint.user_agent(agent.clone())?))
    }

    /// `config` whose gRPC channels (job submission, result and shuffle fetches) send the
    /// credential.
    pub fn apply_to(&self, config: SessionConfig) -> SessionConfig {
        config.with_ballista_override_create_grpc_client_endpoint(self.endpoint_override())
    }

    /// Whether a request with these header values carries the credential: the user agent
    /// contains it as one of its space-separated products (tonic appends its own), or the
    /// authorization header is `Bearer <credential>`.
    pub fn admits(&self, authorization: Option<&[u8]>, user_agent: Option<&[u8]>) -> bool {
        let expected = self.credential.as_bytes();
        let bearer = authorization
            .and_then(|value| value.strip_prefix(b"Bearer "))
            .is_some_and(|value| same(value.trim_ascii(), expected));
        let agent = user_agent.is_some_and(|value| {
            value
                .split(|b| *b == b' ')
                .any(|product| same(product, expected))
        });
        bearer || agent
    }
}

/// The scheduling policy of a scheduler or executor: the one chosen, else push-staged, or
/// pull-staged with a token. A token rules out push-staged: push-staged executors take tasks
/// on a gRPC port of Ballista's that has no place for a check, while pull-staged executors
/// serve nothing but Flight, which checks the token.
pub fn scheduling_policy(
    chosen: Option<TaskSchedulingPolicy>,
    token: Option<&ClusterToken>,
) -> Result<TaskSchedulingPolicy, String> {
    match (chosen, token) {
        (Some(TaskSchedulingPolicy::PushStaged), Some(_)) => Err(
            "a cluster with a token must use --scheduling-policy pull-staged (the default with \
             a token): push-staged executors accept tasks on a gRPC port that cannot check it"
                .into(),
        ),
        (Some(policy), _) => Ok(policy),
        (None, Some(_)) => Ok(TaskSchedulingPolicy::PullStaged),
        (None, None) => Ok(TaskSchedulingPolicy::PushStaged),
    }
}

/// Compares without stopping at the first difference, so timing tells nothing of the
/// credential.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_the_same_secret() {
        let token = ClusterToken::new("one").unwrap();
        let agent = format!("{} tonic/0.14.9", token.user_agent());
        assert!(token.admits(None, Some(agent.as_bytes())));
        assert!(token.admits(Some(token.bearer().as_bytes()), None));
        let other = ClusterToken::new("two").unwrap();
        let other_agent = format!("{} tonic/0.14.9", other.user_agent());
        assert!(!token.admits(None, Some(other_agent.as_bytes())));
        assert!(!token.admits(Some(other.bearer().as_bytes()), None));
        assert!(!token.admits(None, Some(b"tonic/0.14.9")));
        assert!(!token.admits(None, None));
        // The raw secret is not the credential.
        assert!(!token.admits(Some(b"Bearer one"), Some(b"one")));
    }

    #[test]
    fn empty_secrets_are_refused() {
        assert!(ClusterToken::new("").is_err());
        assert!(ClusterToken::new("  \t").is_err());
        assert_eq!(ClusterToken::from_option(None), Ok(None));
    }

    #[test]
    fn a_token_means_pull_staged() {
        let token = ClusterToken::new("one").unwrap();
        let (push, pull) = (
            TaskSchedulingPolicy::PushStaged,
            TaskSchedulingPolicy::PullStaged,
        );
        let chosen = |policy, token| format!("{:?}", scheduling_policy(policy, token));
        assert_eq!(chosen(None, None), "Ok(PushStaged)");
        assert_eq!(chosen(None, Some(&token)), "Ok(PullStaged)");
        assert_eq!(chosen(Some(pull), Some(&token)), "Ok(PullStaged)");
        assert_eq!(chosen(Some(pull), None), "Ok(PullStaged)");
        let refused = scheduling_policy(Some(push), Some(&token)).unwrap_err();
        assert!(refused.contains("pull-staged"), "{refused}");
    }

    #[test]
    fn debug_does_not_show_the_credential() {
        let token = ClusterToken::new("one").unwrap();
        assert_eq!(format!("{token:?}"), "ClusterToken(..)");
    }
}
