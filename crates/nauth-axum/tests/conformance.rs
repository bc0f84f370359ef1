//! The shared conformance suite (nauth-testkit), through axum. The door serves the example app's
//! protected routes, so the extractors are held to the contract too.

nauth_testkit::conformance_tests!(&nauth_testkit::doors::Axum);
