//! The same scripted session (signup → verify → login → refresh → cookie mode with CSRF →
//! errors) through every door; the normalised transcripts must be identical, and identical to
//! the snapshot `tests/wire.snap`. A deliberate change of the wire: run with
//! `NAUTH_WIRE_BLESS=1` to rewrite the snapshot, and review its diff.

use nauth_testkit::conformance::wire::transcript;
use nauth_testkit::doors::{Actix, Axum, Poem};

/// The first entry where `got` departs from `expected`, or `None` when they are equal.
fn diff(expected: &[String], got: &[String]) -> Option<String> {
    let i = (0..=expected.len().max(got.len())).find(|&i| expected.get(i) != got.get(i))?;
    let at = |v: &[String]| v.get(i).map_or("<nothing>\n".to_string(), String::clone);
    Some(format!(
        "entry {i} of {} vs {}\n--- expected\n{}--- got\n{}",
        expected.len(),
        got.len(),
        at(expected),
        at(got)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_door_sends_the_same_bytes() {
    let reference = transcript(&Axum).await;
    assert!(
        reference.len() > 25,
        "the script ran: {} exchanges",
        reference.len()
    );
    // The transcript must show the contract, not just agreement.
    assert!(
        reference[0].starts_with("signup -> 201"),
        "{}",
        reference[0]
    );
    assert!(reference.iter().any(|e| e.contains("set-cookie: nauth_refresh_token=<value>; Path=/auth; Max-Age=604800; HttpOnly; Secure; SameSite=Strict")), "{reference:#?}");
    assert!(
        reference
            .iter()
            .any(|e| e.starts_with("csrf missing -> 403"))
    );
    for (name, t) in [
        ("poem", transcript(&Poem).await),
        ("actix", transcript(&Actix).await),
    ] {
        if let Some(d) = diff(&reference, &t) {
            panic!("{name} differs from axum:\n{d}");
        }
    }
    let snapshot = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wire.snap");
    let recorded = reference.concat();
    if std::env::var_os("NAUTH_WIRE_BLESS").is_some() {
        std::fs::write(snapshot, &recorded).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(snapshot).expect("tests/wire.snap");
    if recorded != expected {
        let split = |s: &str| -> Vec<String> {
            s.split_inclusive('\n')
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let d = diff(&split(&expected), &split(&recorded)).unwrap_or_default();
        panic!("the wire differs from tests/wire.snap (NAUTH_WIRE_BLESS=1 rewrites it):\n{d}");
    }
}
