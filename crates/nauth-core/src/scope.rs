//! Names of API-key scopes for the adapters' `RequireScope<S>` guards (docs/api.md §6). A
//! user's session holds every scope; an API key holds those it was created with, which must
//! be among `api_keys.scopes`. An app names its own scopes the same way:
//!
//! ```
//! struct Billing;
//! impl nauth_core::scope::ScopeName for Billing {
//!     const NAME: &'static str = "billing:write";
//! }
//! ```

/// Names a scope for `RequireScope`.
pub trait ScopeName {
    /// The scope, e.g. `"read"`.
    const NAME: &'static str;
}

/// The `read` scope.
#[derive(Debug, Clone, Copy)]
pub struct Read;

impl ScopeName for Read {
    const NAME: &'static str = "read";
}

/// The `write` scope.
#[derive(Debug, Clone, Copy)]
pub struct Write;

impl ScopeName for Write {
    const NAME: &'static str = "write";
}
