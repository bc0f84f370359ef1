//! The OpenAPI document at `/auth/openapi.json` and the API page at `/auth/docs`: the
//! document lists exactly the routes this door serves (every documented operation answers
//! OPTIONS with its method in `Allow`, and every route of the engine is documented), and the
//! page is served from the crate with a strict Content-Security-Policy, only when enabled.

use std::collections::BTreeSet;

use serde_json::Value;

use super::cases::assert_error;
use super::{Backend, CaseFn, Door, Env, TestRequest};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const OPENAPI_CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

cases!(
    openapi_document_matches_the_routes,
    api_page_is_served_from_the_crate
);

/// A well-formed value for a path parameter of the document.
fn sample(param: &Value) -> String {
    let schema = &param["schema"];
    if schema["format"] == "uuid" {
        uuid::Uuid::new_v4().to_string()
    } else if let Some(first) = schema["enum"].get(0).and_then(Value::as_str) {
        first.to_string()
    } else {
        "0123456789abcdef".to_string() // an API key id
    }
}

async fn openapi_document_matches_the_routes(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let r = env
        .send(TestRequest::new("GET", "/auth/openapi.json"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc, nauth_core::openapi_document(env.nauth.config()));

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method = method.to_ascii_uppercase();
            documented.insert((method.clone(), path.clone()));
            // Fill the path's parameter and ask the door which methods it serves there.
            let mut concrete = path.clone();
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = format!("{{{}}}", p["name"].as_str().expect("name"));
                    concrete = concrete.replace(&name, &sample(p));
                }
            }
            assert!(
                !concrete.contains('{'),
                "{path}: a parameter is not described"
            );
            let r = env.send(TestRequest::new("OPTIONS", &concrete)).await;
            assert_eq!(
                r.status, 204,
                "OPTIONS {concrete} (documented {method} {path})"
            );
            let allow = r.header("allow").unwrap_or_default();
            assert!(
                allow.split(", ").any(|m| m == method),
                "{method} {path} is documented, but {concrete} allows only {allow}"
            );
            assert!(op["responses"].is_object() && op["operationId"].is_string());
        }
    }
    let served: BTreeSet<(String, String)> = env
        .nauth
        .routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an entry: {undocumented:?}"
    );
    assert!(unrouted.is_empty(), "entries without a route: {unrouted:?}");

    // Every auth scheme of the contract is described, and errors have one shape.
    let schemes = &doc["components"]["securitySchemes"];
    for s in ["bearer", "cookie", "csrf", "apiKey"] {
        assert!(schemes[s].is_object(), "security scheme {s}");
    }
    assert_eq!(schemes["cookie"]["name"], "nauth_access_token");
    let error = &doc["components"]["schemas"]["Error"]["required"];
    for f in ["code", "message", "timestamp"] {
        assert!(
            error
                .as_array()
                .is_some_and(|r| r.contains(&Value::from(f)))
        );
    }

    // The page is off by default; the document can be turned off.
    assert_error(
        &env.send(TestRequest::new("GET", "/auth/docs")).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    let env = Env::start(door, &b.url(), |c| c.openapi.enabled = false).await;
    assert_error(
        &env.send(TestRequest::new("GET", "/auth/openapi.json"))
            .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
}

async fn api_page_is_served_from_the_crate(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| c.openapi.page = true).await;
    let page = env.send(TestRequest::new("GET", "/auth/docs")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").expect("CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN: {html}"
    );
    for (asset, kind) in [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("init.js", "text/javascript"),
    ] {
        assert!(
            html.contains(&format!("docs/{asset}"))
                || asset == "init.js" && html.contains("docs/init.js")
        );
        let r = env
            .send(TestRequest::new("GET", &format!("/auth/docs/{asset}")))
            .await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with(kind)),
            "{asset}"
        );
        assert!(r.body.len() > 100, "{asset}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let init = env
        .send(TestRequest::new("GET", "/auth/docs/init.js"))
        .await;
    assert!(String::from_utf8_lossy(&init.body).contains("/openapi.json"));
    // HEAD like GET without a body; other names and methods are the router's answers.
    let head = env.send(TestRequest::new("HEAD", "/auth/docs")).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    for path in [
        "/auth/docs/other.js",
        "/auth/docs/",
        "/auth/docs/../openapi.json",
    ] {
        assert_error(
            &env.send(TestRequest::new("GET", path)).await,
            404,
            "RESOURCE_NOT_FOUND",
        );
    }
    let post = env.send(TestRequest::new("POST", "/auth/docs")).await;
    assert_error(&post, 405, "METHOD_NOT_ALLOWED");
}
