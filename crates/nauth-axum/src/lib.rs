#![doc = include_str!("../README.md")]

mod extract;
mod response;
mod router;

pub use extract::{Admin, AuthUser, OptionalAuthUser, RequireRole, RequireScope, RoleName};
pub use nauth_core::scope::{Read, ScopeName, Write};
pub use nauth_core::{NAuth, NAuthConfig, Principal};
pub use response::NAuthRejection;
pub use router::{contract_routing, fallback, router};
