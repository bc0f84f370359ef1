//! A scripted session whose every exchange is recorded with volatile values (tokens, ids,
//! codes, timestamps) replaced by placeholders, so the transcripts of different doors can be
//! compared byte for byte.

use serde_json::{Value, json};

use super::{Door, Env, TestRequest, TestResponse};
use crate::extract_code;
use nauth_core::config::DeliveryMode;

/// One recorded exchange, normalised.
pub type Exchange = String;

fn normalise_json(v: &Value, key: &str) -> Value {
    const VOLATILE: &[&str] = &[
        "accessToken",
        "refreshToken",
        "session",
        "userSub",
        "sub",
        "sessionId",
        "timestamp",
        "createdAt",
        "updatedAt",
        "lastActivityAt",
        "expiresAt",
        "accessTokenExpiresAt",
        "refreshTokenExpiresAt",
        "email",
        "retryAfter",
        "ipAddress",
        "userAgent",
    ];
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalise_json(v, k)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| normalise_json(v, key)).collect()),
        Value::Null => Value::Null,
        _ if VOLATILE.contains(&key) => json!(format!("<{key}>")),
        other => other.clone(),
    }
}

/// `name=<value>; attributes` with the value replaced (empty values stay empty).
fn normalise_cookie(c: &str) -> String {
    match c.split_once('=') {
        Some((name, rest)) => {
            let (value, attrs) = rest.split_once(';').unwrap_or((rest, ""));
            let v = if value.is_empty() { "" } else { "<value>" };
            format!("{name}={v};{attrs}")
        }
        None => c.to_string(),
    }
}

fn record(label: &str, r: &TestResponse) -> Exchange {
    let mut out = format!("{label} -> {}\n", r.status);
    // A 2xx from an app route is the app's own handler's answer (its framework picks the
    // content type); nauth's part there is only that the request got through.
    let app_answer = label.contains("app route") && r.status < 300;
    for h in [
        "content-type",
        "cache-control",
        "www-authenticate",
        "allow",
        "location",
    ] {
        if app_answer && h == "content-type" {
            continue;
        }
        if let Some(v) = r.header(h) {
            out.push_str(&format!("  {h}: {v}\n"));
        }
    }
    if r.header("retry-after").is_some() {
        out.push_str("  retry-after: <seconds>\n");
    }
    if r.header("x-request-id").is_some() {
        out.push_str("  x-request-id: <id>\n");
    }
    for c in r.set_cookies() {
        out.push_str(&format!("  set-cookie: {}\n", normalise_cookie(&c)));
    }
    let body = if r.body.is_empty() {
        "<empty>".to_string()
    } else {
        match serde_json::from_slice::<Value>(&r.body) {
            Ok(v) => normalise_json(&v, "").to_string(),
            Err(_) => format!("<non-json {} bytes>", r.body.len()),
        }
    };
    out.push_str(&format!("  body: {body}\n"));
    out
}

fn cookies_of(r: &TestResponse) -> String {
    [
        "nauth_access_token",
        "nauth_refresh_token",
        "nauth_csrf_token",
    ]
    .iter()
    .filter_map(|n| r.cookie(n).map(|v| format!("{n}={v}")))
    .collect::<Vec<_>>()
    .join("; ")
}

/// Runs the scripted session against a door (hybrid delivery, a fresh SQLite database) and
/// returns the normalised transcript.
pub async fn transcript(door: &dyn Door) -> Vec<Exchange> {
    let env = Env::start(door, &super::sqlite_url(), |c| {
        c.token_delivery.mode = DeliveryMode::Hybrid
    })
    .await;
    let mut t = Vec::new();
    // Each transcript has its own fresh database, so a fixed address is safe.
    let email = "wire@example.com".to_string();
    let pw = "Correct-Horse-42";
    let json_req =
        |m: &str, p: &str, b: Value| TestRequest::json(m, p, &b).header("x-token-delivery", "json");

    let r = env
        .send(json_req(
            "POST",
            "/auth/signup",
            json!({"email": email, "password": pw}),
        ))
        .await;
    t.push(record("signup", &r));
    let session = r.json()["session"].clone();
    let code = extract_code(&env.mail(&email, 1).await.text).unwrap_or_default();
    let r = env
        .send(json_req(
            "POST",
            "/auth/respond-challenge",
            json!({"session": session, "type": "VERIFY_EMAIL", "code": "000000x"}),
        ))
        .await;
    t.push(record("respond wrong code", &r));
    let r = env
        .send(json_req(
            "POST",
            "/auth/respond-challenge",
            json!({"session": session, "type": "VERIFY_EMAIL", "code": code}),
        ))
        .await;
    t.push(record("respond right code", &r));
    let r = env
        .send(json_req(
            "POST",
            "/auth/login",
            json!({"identifier": email, "password": pw}),
        ))
        .await;
    t.push(record("login json", &r));
    let tokens = r.json();
    let r = env
        .post(
            "/auth/refresh",
            json!({"refreshToken": tokens["refreshToken"]}),
        )
        .await;
    t.push(record("refresh", &r));
    let access = r.json()["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    t.push(record(
        "profile",
        &env.send(TestRequest::new("GET", "/auth/profile").bearer(&access))
            .await,
    ));
    t.push(record(
        "app route",
        &env.get("/api/data", Some(&access)).await,
    ));

    // Cookie delivery with CSRF.
    let r = env
        .post("/auth/login", json!({"identifier": email, "password": pw}))
        .await;
    t.push(record("login cookies", &r));
    let cookies = cookies_of(&r);
    let csrf = r.cookie("nauth_csrf_token").unwrap_or_default();
    let with = |req: TestRequest| req.header("cookie", &cookies);
    t.push(record(
        "cookie app route",
        &env.send(with(TestRequest::new("GET", "/api/data"))).await,
    ));
    let body = json!({"firstName": "Wire"});
    t.push(record(
        "csrf missing",
        &env.send(with(TestRequest::json("PUT", "/auth/profile", &body)))
            .await,
    ));
    t.push(record(
        "csrf wrong",
        &env.send(
            with(TestRequest::json("PUT", "/auth/profile", &body)).header("x-csrf-token", "a.b"),
        )
        .await,
    ));
    t.push(record(
        "csrf ok",
        &env.send(
            with(TestRequest::json("PUT", "/auth/profile", &body)).header("x-csrf-token", &csrf),
        )
        .await,
    ));
    let r = env
        .send(with(TestRequest::new("POST", "/auth/refresh")))
        .await;
    t.push(record("refresh by cookie", &r));
    let cookies2 = cookies_of(&r);
    t.push(record(
        "logout",
        &env.send(TestRequest::new("POST", "/auth/logout").header("cookie", &cookies2))
            .await,
    ));

    // Errors, including framework-level ones.
    let cases: Vec<(&str, TestRequest)> = vec![
        (
            "bad json",
            TestRequest::new("POST", "/auth/login").raw_body("application/json", b"{".to_vec()),
        ),
        (
            "non-utf8",
            TestRequest::new("POST", "/auth/login").raw_body("application/json", vec![0xff, 0xfe]),
        ),
        (
            "wrong type",
            TestRequest::json(
                "POST",
                "/auth/login",
                &json!({"identifier": 1, "password": []}),
            ),
        ),
        (
            "wrong content type",
            TestRequest::new("POST", "/auth/login").raw_body("text/plain", b"{}".to_vec()),
        ),
        (
            "too large",
            TestRequest::new("POST", "/auth/login")
                .raw_body("application/json", vec![b' '; 70_000]),
        ),
        (
            "bad credentials",
            TestRequest::json(
                "POST",
                "/auth/login",
                &json!({"identifier": email, "password": "Nope-Nope-1"}),
            ),
        ),
        ("unknown path", TestRequest::new("GET", "/auth/nope")),
        ("trailing slash", TestRequest::new("POST", "/auth/login/")),
        ("wrong method", TestRequest::new("GET", "/auth/login")),
        ("options", TestRequest::new("OPTIONS", "/auth/profile")),
        ("head", TestRequest::new("HEAD", "/auth/profile")),
        (
            "bad path param",
            TestRequest::new("DELETE", "/auth/sessions/not-a-uuid"),
        ),
        ("no token", TestRequest::new("GET", "/api/data")),
        (
            "garbage token",
            TestRequest::new("GET", "/api/data").bearer("garbage"),
        ),
        ("unknown app path", TestRequest::new("GET", "/nowhere")),
    ];
    for (label, req) in cases {
        t.push(record(label, &env.send(req).await));
    }
    t
}
