#![doc = include_str!("../README.md")]

pub mod capture;
pub mod conformance;
mod db;
pub mod doors;
mod extract;
pub mod github;
pub mod oidc;
pub mod passkey;
pub mod proxy;
mod secrets;

pub use conformance::{Backend, Door, Env, TestRequest, TestResponse};
pub use extract::{extract_code, extract_token};
