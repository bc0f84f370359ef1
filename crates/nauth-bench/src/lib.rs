//! The library half of `nauth-bench`: the bulk seeding of the scale benchmark (issue 11), shared
//! by the `nauth-seed` command, the benchmark's scale section and the tests.

pub mod seed;
