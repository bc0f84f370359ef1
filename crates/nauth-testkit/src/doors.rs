//! One [`Door`](crate::Door) per framework, each behind the cargo feature of the same name: the
//! adapter's router around the engine plus the example app's protected routes, with the same
//! extractors, the adapter's 405/OPTIONS answers and its JSON 404 fallback. The adapters'
//! conformance tests and `tests/wire` serve through these, so a door is written once.
//!
//! | route | methods | extractor | answer |
//! |---|---|---|---|
//! | `/api/data` | GET, HEAD, POST | `AuthUser` | `{"sub", "message": "protected data"}` |
//! | `/api/admin` | GET, HEAD | `RequireRole<Admin>` | `{"sub", "message": "admin data"}` |
//! | `/api/optional` | GET, HEAD | `OptionalAuthUser` | `{"sub"}` (`null` when anonymous) |

#[cfg(feature = "actix")]
mod actix_door;
#[cfg(feature = "axum")]
mod axum_door;
#[cfg(feature = "poem")]
mod poem_door;

#[cfg(feature = "actix")]
pub use actix_door::Actix;
#[cfg(feature = "axum")]
pub use axum_door::Axum;
#[cfg(feature = "poem")]
pub use poem_door::Poem;
