//! Ballista session configuration wired with pickleball's codecs.
//!
//! Codecs do not travel with plans, so client, scheduler and executors all build their
//! session config through [`with_pickleball_codecs`].

use std::sync::Arc;

use ballista_core::extension::SessionConfigExt;
use datafusion::prelude::SessionConfig;

use crate::{PythonLogicalCodec, PythonPhysicalCodec};

/// Room for plans that carry in-memory tables by value (default limit 256 MiB plus headroom).
pub const GRPC_MAX_MESSAGE_BYTES: usize = 512 * 1024 * 1024;

/// Returns `config` with Ballista enabled and pickleball's logical and physical codecs installed.
pub fn with_pickleball_codecs(config: SessionConfig) -> SessionConfig {
    with_pickleball_codecs_limited(config, crate::DEFAULT_MAX_INLINE_TABLE_BYTES)
}

/// Like [`with_pickleball_codecs`], refusing in-memory tables over `max_inline_table_bytes`.
///
/// Only the client encodes in-memory tables, so only the client needs a limit other than the
/// default.
pub fn with_pickleball_codecs_limited(
    config: SessionConfig,
    max_inline_table_bytes: usize,
) -> SessionConfig {
    config
        .upgrade_for_ballista()
        .with_ballista_logical_extension_codec(Arc::new(PythonLogicalCodec::new(
            max_inline_table_bytes,
        )))
        .with_ballista_physical_extension_codec(Arc::new(PythonPhysicalCodec::default()))
        .with_ballista_grpc_client_max_message_size(GRPC_MAX_MESSAGE_BYTES)
}

/// A fresh Ballista session config with pickleball's codecs.
pub fn pickleball_session_config() -> SessionConfig {
    with_pickleball_codecs(SessionConfig::new_with_ballista())
}

/// Parses a Ballista task scheduling policy name: `push-staged` or `pull-staged`.
///
/// Scheduler and executors must use the same policy; both parse it with this function.
pub fn parse_scheduling_policy(
    value: &str,
) -> std::result::Result<ballista_core::config::TaskSchedulingPolicy, String> {
    use ballista_core::config::TaskSchedulingPolicy;
    match value.to_ascii_lowercase().replace('_', "-").as_str() {
        "push-staged" | "push" => Ok(TaskSchedulingPolicy::PushStaged),
        "pull-staged" | "pull" => Ok(TaskSchedulingPolicy::PullStaged),
        other => Err(format!(
            "unknown scheduling policy '{other}': use push-staged or pull-staged"
        )),
    }
}
