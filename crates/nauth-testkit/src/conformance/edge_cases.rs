//! Cases for the edges of the contract a new user or an attacker finds first: forwarded client
//! addresses, prefixed and tossed cookies, delivery of a cookie refresh, `nbf`, logout in json
//! delivery, paths as sent and the app routes' 405/OPTIONS answers.

use std::time::Duration;

use serde_json::{Value, json};

use super::cases::{PW, assert_error, email, login, signup_verified, token};
use super::{Backend, CaseFn, Door, Env, TestRequest, TestResponse, random_client_ip};
use nauth_core::config::DeliveryMode;

macro_rules! edge_cases {
    ($($name:ident),* $(,)?) => {
        pub(super) const EDGE_CASES: &[(&str, CaseFn)] =
            &[$((stringify!($name), |d, b| Box::pin($name(d, b)))),*];
    };
}

edge_cases!(
    forwarded_hops_name_the_client,
    ip_budget_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4,
    host_prefixed_cookies_and_tossed_duplicates,
    hybrid_refresh_from_the_cookie_answers_with_cookies,
    future_nbf_is_refused,
    logout_in_json_delivery_sets_no_cookie,
    percent_encoded_paths_are_404,
    app_routes_answer_405_and_options,
);

const WRONG: &str = "Wrong-Password-1";

/// A request whose `X-Forwarded-For` is exactly `lines` (one header line each), sent through
/// the trusted proxy (the loopback peer).
fn from(mut req: TestRequest, lines: &[&str]) -> TestRequest {
    for l in lines {
        req = req.header("x-forwarded-for", l);
    }
    req
}

async fn login_from(env: &Env, lines: &[&str], identifier: &str, password: &str) -> TestResponse {
    let body = json!({"identifier": identifier, "password": password});
    env.send(from(TestRequest::json("POST", "/auth/login", &body), lines))
        .await
}

/// A random /64 in the documentation range: `2001:db8:x:y`.
fn random_v6_net() -> String {
    let b = crate::secrets::random_bytes::<4>();
    format!(
        "2001:db8:{:x}:{:x}",
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]).max(1)
    )
}

/// The `ipAddress` the session of `access` was opened from.
async fn session_ip(env: &Env, access: &str) -> Value {
    let r = env.get("/auth/sessions", Some(access)).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let sessions = r.json()["sessions"].as_array().cloned().unwrap_or_default();
    sessions
        .into_iter()
        .find(|s| s["isCurrent"] == json!(true))
        .map(|s| s["ipAddress"].clone())
        .expect("the current session is listed")
}

async fn forwarded_hops_name_the_client(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let e = email();
    signup_verified(&env, &e).await;
    let (x, z) = (random_client_ip(), random_client_ip());
    let v6 = format!("{}::5", random_v6_net());
    let tables: Vec<(Vec<String>, String)> = vec![
        (vec![x.clone()], x.clone()),
        (vec![format!("{x}:4711")], x.clone()),
        // Every line, joined in order: the right-most untrusted hop of the last line.
        (vec![z.clone(), format!("{x}:4711")], x.clone()),
        (vec![format!("{z}, {x}, 127.0.0.1")], x.clone()),
        (vec![x.clone(), "::1".into()], x.clone()),
        (
            vec![format!("{x}, 127.0.0.1"), "::1, 127.0.0.1".into()],
            x.clone(),
        ),
        // IPv6 with and without brackets and ports; IPv4-mapped IPv6 is IPv4.
        (vec![format!("[{v6}]:443")], v6.clone()),
        (vec![format!("[{v6}]")], v6.clone()),
        (vec![v6.clone()], v6.clone()),
        (vec![format!("::ffff:{x}")], x.clone()),
        (vec![format!("[::ffff:{x}]:80")], x.clone()),
        // An unparsable hop ends the walk at the nearest address seen (here the proxy).
        (vec![format!("{x}, not-an-ip")], "127.0.0.1".into()),
        (vec![x.clone(), "unknown".into()], "127.0.0.1".into()),
        (vec![format!("not-an-ip, {x}")], x.clone()),
        // Every hop trusted: the left-most.
        (vec!["::1, 127.0.0.1".into()], "::1".into()),
    ];
    for (lines, want) in tables {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let r = login_from(&env, &lines, &e, PW).await;
        assert_eq!(r.status, 200, "{lines:?}: {}", r.json());
        let access = token(&r.json(), "accessToken");
        assert_eq!(session_ip(&env, &access).await, json!(want), "{lines:?}");
    }
}

async fn ip_budget_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4(door: &dyn Door, b: &Backend) {
    // A second trusted proxy of this case's own, so the budget it is charged is never shared.
    let proxy = random_client_ip();
    let env = Env::start(door, &b.url(), |c| {
        c.lockout.ip_max_attempts = 2;
        c.trusted_proxies
            .push(format!("{proxy}/32").parse().expect("cidr"));
    })
    .await;
    let e = email();
    signup_verified(&env, &e).await;
    // Two addresses of one /64 share a budget; another /64 has its own.
    let (net, other) = (random_v6_net(), random_v6_net());
    for hop in [format!("[{net}::1]:443"), format!("{net}:0:ffff:0:2")] {
        let r = login_from(&env, &[&hop], &email(), WRONG).await;
        assert_error(&r, 401, "AUTH_INVALID_CREDENTIALS");
    }
    let r = login_from(&env, &[&format!("{net}::3")], &e, PW).await;
    assert_error(&r, 429, "RATE_LIMIT_LOGIN");
    let r = login_from(&env, &[&format!("{other}::1")], &e, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    // `::ffff:a.b.c.d` is `a.b.c.d`, in any spelling.
    let w = random_client_ip();
    for hop in [format!("::ffff:{w}"), format!("[::ffff:{w}]:8080")] {
        let r = login_from(&env, &[&hop], &email(), WRONG).await;
        assert_error(&r, 401, "AUTH_INVALID_CREDENTIALS");
    }
    assert_error(
        &login_from(&env, &[&w], &e, PW).await,
        429,
        "RATE_LIMIT_LOGIN",
    );
    // Garbage right of an address: the walk stops at the nearest proxy, which is charged;
    // the address left of the garbage (anyone could have written it) is not.
    let v = random_client_ip();
    for _ in 0..2 {
        let lines = [format!("{v}, garbage, {proxy}")];
        let r = login_from(&env, &[&lines[0]], &email(), WRONG).await;
        assert_error(&r, 401, "AUTH_INVALID_CREDENTIALS");
    }
    let r = login_from(&env, &[&v], &e, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_error(
        &login_from(&env, &[&proxy], &e, PW).await,
        429,
        "RATE_LIMIT_LOGIN",
    );
}

/// `name=value` pairs of the given cookies of a response, for a `Cookie` header.
fn cookie_pairs(r: &TestResponse, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n}={}", r.cookie(n).unwrap_or_else(|| panic!("{n} set"))))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn host_prefixed_cookies_and_tossed_duplicates(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.token_delivery.mode = DeliveryMode::Cookies;
        c.token_delivery.cookie_prefix = "__Host-".into();
    })
    .await;
    let e = email();
    signup_verified(&env, &e).await;
    let r = login(&env, &e, PW).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let set = r.set_cookies();
    assert_eq!(set.len(), 3, "{set:?}");
    let attrs = |name: &str| {
        let c = set
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {set:?}"));
        c.split_once(';')
            .map(|(_, a)| a.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        attrs("__Host-access_token"),
        " Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Strict"
    );
    // The refresh cookie's Path is the mount prefix, which `__Host-` forbids.
    assert_eq!(
        attrs("__Secure-refresh_token"),
        " Path=/auth; Max-Age=604800; HttpOnly; Secure; SameSite=Strict"
    );
    assert_eq!(
        attrs("__Host-csrf_token"),
        " Path=/; Max-Age=604800; Secure; SameSite=Strict"
    );
    assert!(set.iter().all(|c| !c.contains("Domain")), "{set:?}");
    let names = [
        "__Host-access_token",
        "__Secure-refresh_token",
        "__Host-csrf_token",
    ];
    let cookies = cookie_pairs(&r, &names);
    let access = r.cookie("__Host-access_token").expect("access");
    let csrf = r.cookie("__Host-csrf_token").expect("csrf");
    let get = |cookie_lines: Vec<String>| {
        let mut req = TestRequest::new("GET", "/api/data");
        for l in &cookie_lines {
            req = req.header("cookie", l);
        }
        env.send(req)
    };
    assert_eq!(get(vec![cookies.clone()]).await.status, 200);
    // The same auth cookie twice (tossed from a sibling subdomain or a narrower path) is
    // refused, in one header line or across two, and whether or not the values agree.
    for lines in [
        vec![format!("{cookies}; __Host-access_token=planted")],
        vec![format!("__Host-access_token={access}; {cookies}")],
        vec![cookies.clone(), format!("__Host-access_token={access}")],
    ] {
        assert_error(&get(lines).await, 401, "AUTH_TOKEN_INVALID");
    }
    let r = env
        .send(
            TestRequest::new("GET", "/auth/profile")
                .header("cookie", &format!("{cookies}; __Host-access_token=x")),
        )
        .await;
    assert_error(&r, 401, "AUTH_TOKEN_INVALID");
    // A tossed CSRF cookie is never compared, even when the header matches one of them.
    let r = env
        .send(
            TestRequest::json("POST", "/api/data", &json!({}))
                .header("cookie", &format!("{cookies}; __Host-csrf_token={csrf}"))
                .header("x-csrf-token", &csrf),
        )
        .await;
    assert_error(&r, 403, "AUTH_CSRF_TOKEN_INVALID");
    let r = env
        .send(
            TestRequest::json("POST", "/api/data", &json!({}))
                .header("cookie", &cookies)
                .header("x-csrf-token", &csrf),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    // Refresh by the `__Secure-` cookie; the new pair keeps the names.
    let r = env
        .send(TestRequest::new("POST", "/auth/refresh").header("cookie", &cookies))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let cookies = cookie_pairs(&r, &names);
    // A tossed refresh cookie is refused too.
    let r = env
        .send(
            TestRequest::new("POST", "/auth/refresh")
                .header("cookie", &format!("{cookies}; __Secure-refresh_token=x")),
        )
        .await;
    assert_error(&r, 401, "AUTH_TOKEN_INVALID");
    // Logout clears under the same names and paths.
    let r = env
        .send(TestRequest::new("POST", "/auth/logout").header("cookie", &cookies))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let cleared = r.set_cookies();
    for (name, path) in [
        ("__Host-access_token", "/"),
        ("__Secure-refresh_token", "/auth"),
        ("__Host-csrf_token", "/"),
    ] {
        let prefix = format!("{name}=; Path={path}; Max-Age=0");
        assert!(
            cleared.iter().any(|c| c.starts_with(&prefix)),
            "{prefix} in {cleared:?}"
        );
    }
}

async fn hybrid_refresh_from_the_cookie_answers_with_cookies(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |c| {
        c.token_delivery.mode = DeliveryMode::Hybrid
    })
    .await;
    let e = email();
    signup_verified(&env, &e).await;
    let names = [
        "nauth_access_token",
        "nauth_refresh_token",
        "nauth_csrf_token",
    ];
    let r = login(&env, &e, PW).await;
    assert_eq!(r.set_cookies().len(), 3, "{:?}", r.set_cookies());
    let mut cookies = cookie_pairs(&r, &names);
    let bearer = r.cookie("nauth_access_token").expect("access");
    // Whatever the request says about json, a refresh token from the cookie is answered with
    // cookies: the browser holds the rotated-out one otherwise.
    for extra in [
        ("x-token-delivery", "json".to_string()),
        ("authorization", format!("Bearer {bearer}")),
    ] {
        let r = env
            .send(
                TestRequest::new("POST", "/auth/refresh")
                    .header("cookie", &cookies)
                    .header(extra.0, &extra.1),
            )
            .await;
        assert_eq!(r.status, 200, "{}: {}", extra.0, r.json());
        for k in ["accessToken", "refreshToken"] {
            assert!(r.json().get(k).is_none(), "{}: {k} in the body", extra.0);
        }
        assert_eq!(
            r.set_cookies().len(),
            3,
            "{}: {:?}",
            extra.0,
            r.set_cookies()
        );
        cookies = cookie_pairs(&r, &names);
    }
    let r = env
        .send(TestRequest::new("POST", "/auth/refresh?mode=token").header("cookie", &cookies))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json().get("accessToken").is_none());
    assert_eq!(r.set_cookies().len(), 3);
    // A refresh token in the body is still answered in json.
    let json_login = env
        .post(
            "/auth/login?mode=token",
            json!({"identifier": e, "password": PW}),
        )
        .await;
    let r = env
        .post(
            "/auth/refresh",
            json!({"refreshToken": token(&json_login.json(), "refreshToken")}),
        )
        .await;
    assert!(r.json()["accessToken"].is_string(), "{}", r.json());
    assert!(r.set_cookies().is_empty());
}

/// Signs `claims` like the engine does (the test secret's derived key, the engine's `kid`).
fn sign_like(env: &Env, issued: &str, claims: &Value) -> String {
    let header = jsonwebtoken::decode_header(issued).expect("header");
    let key = crate::secrets::jwt_key(&env.nauth.config().secret);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(&key),
    )
    .expect("sign")
}

async fn future_nbf_is_refused(door: &dyn Door, b: &Backend) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let env = Env::start(door, &b.url(), |_| {}).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    let payload = access.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(&b64.decode(payload).expect("b64")).expect("json");
    let iat = claims["iat"].as_i64().expect("iat");
    let with_nbf = |nbf: Value| {
        let mut c = claims.clone();
        c["nbf"] = nbf;
        sign_like(&env, &access, &c)
    };
    // The signature is good: the same claims without `nbf` pass.
    let plain = sign_like(&env, &access, &claims);
    assert_eq!(env.get("/api/data", Some(&plain)).await.status, 200);
    let within = with_nbf(json!(iat + 30));
    assert_eq!(env.get("/api/data", Some(&within)).await.status, 200);
    let later = with_nbf(json!(iat + 120));
    for path in ["/api/data", "/auth/profile"] {
        assert_error(
            &env.get(path, Some(&later)).await,
            401,
            "AUTH_TOKEN_INVALID",
        );
    }
    assert_error(
        &env.get("/api/data", Some(&with_nbf(json!("tomorrow"))))
            .await,
        401,
        "AUTH_TOKEN_INVALID",
    );
    // Once the time comes (within the leeway), the token is good.
    env.clock.advance(Duration::from_secs(100));
    assert_eq!(env.get("/api/data", Some(&later)).await.status, 200);
}

/// A json-delivered token pair of a fresh login.
async fn json_tokens(env: &Env, e: &str) -> Value {
    env.post(
        "/auth/login?mode=token",
        json!({"identifier": e, "password": PW}),
    )
    .await
    .json()
}

async fn logout_in_json_delivery_sets_no_cookie(door: &dyn Door, b: &Backend) {
    for mode in [DeliveryMode::Json, DeliveryMode::Hybrid] {
        let env = Env::start(door, &b.url(), |c| c.token_delivery.mode = mode).await;
        let e = email();
        signup_verified(&env, &e).await;
        let logout = |req: TestRequest| env.send(req);
        let tokens = || json_tokens(&env, &e);
        // Bearer; refresh token in the body; `X-Token-Delivery: json` with the body token.
        let t = tokens().await;
        let r = logout(
            TestRequest::json("POST", "/auth/logout", &json!({})).bearer(&token(&t, "accessToken")),
        )
        .await;
        assert_eq!(r.status, 200, "{mode:?} bearer: {}", r.json());
        assert!(
            r.set_cookies().is_empty(),
            "{mode:?} bearer: {:?}",
            r.set_cookies()
        );
        let t = tokens().await;
        let body = json!({"refreshToken": token(&t, "refreshToken")});
        let r = logout(TestRequest::json("POST", "/auth/logout", &body)).await;
        assert_eq!(r.status, 200, "{mode:?} body: {}", r.json());
        assert!(
            r.set_cookies().is_empty(),
            "{mode:?} body: {:?}",
            r.set_cookies()
        );
        let t = tokens().await;
        let body = json!({"refreshToken": token(&t, "refreshToken")});
        let r = logout(
            TestRequest::json("POST", "/auth/logout", &body).header("x-token-delivery", "json"),
        )
        .await;
        assert_eq!(r.status, 200, "{mode:?} header: {}", r.json());
        assert!(
            r.set_cookies().is_empty(),
            "{mode:?} header: {:?}",
            r.set_cookies()
        );
        // The session did end.
        let r = env
            .post(
                "/auth/refresh",
                json!({"refreshToken": token(&t, "refreshToken")}),
            )
            .await;
        assert_eq!(r.status, 401, "{}", r.json());
        if mode == DeliveryMode::Hybrid {
            // Cookie delivery still clears the cookies it set.
            let r = login(&env, &e, PW).await;
            let cookies = cookie_pairs(
                &r,
                &[
                    "nauth_access_token",
                    "nauth_refresh_token",
                    "nauth_csrf_token",
                ],
            );
            let r =
                logout(TestRequest::new("POST", "/auth/logout").header("cookie", &cookies)).await;
            assert_eq!(r.status, 200, "{}", r.json());
            assert_eq!(r.set_cookies().len(), 3, "{:?}", r.set_cookies());
        }
    }
}

async fn percent_encoded_paths_are_404(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let e = email();
    signup_verified(&env, &e).await;
    let body = json!({"identifier": e, "password": PW});
    for p in [
        "/auth/log%69n",
        "/auth/%6Cogin",
        "/%61uth/login",
        "/auth%2Flogin",
        "/auth/login%2F",
    ] {
        let r = env.send(TestRequest::json("POST", p, &body)).await;
        assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    }
    let t = login(&env, &e, PW).await.json();
    let access = token(&t, "accessToken");
    for p in [
        "/api/d%61ta",
        "/%61pi/data",
        "/api/dat%61",
        "/auth/pro%66ile",
        "/auth/sessions/%30",
    ] {
        let r = env.get(p, Some(&access)).await;
        assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    }
    assert_eq!(env.get("/api/data", Some(&access)).await.status, 200);
}

async fn app_routes_answer_405_and_options(door: &dyn Door, b: &Backend) {
    let env = Env::start(door, &b.url(), |_| {}).await;
    let t = signup_verified(&env, &email()).await;
    let access = token(&t, "accessToken");
    // (path, methods it lacks, its Allow)
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "/api/data",
            &["DELETE", "PUT", "PATCH"],
            "GET, HEAD, POST, OPTIONS",
        ),
        ("/api/admin", &["POST", "DELETE"], "GET, HEAD, OPTIONS"),
        ("/api/optional", &["PUT"], "GET, HEAD, OPTIONS"),
    ];
    for (path, lacking, allow) in cases {
        for m in *lacking {
            // With or without credentials: the method is checked first.
            for bearer in [None, Some(access.as_str())] {
                let mut req = TestRequest::new(m, path);
                if let Some(t) = bearer {
                    req = req.bearer(t);
                }
                let r = env.send(req).await;
                assert_error(&r, 405, "METHOD_NOT_ALLOWED");
                assert_eq!(r.header("allow"), Some(*allow), "{m} {path}");
            }
        }
        let r = env.send(TestRequest::new("OPTIONS", path)).await;
        assert_eq!(
            r.status,
            204,
            "OPTIONS {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("allow"), Some(*allow), "OPTIONS {path}");
        assert!(r.body.is_empty());
    }
    // The served methods are untouched, HEAD included; unknown paths stay 404.
    assert_eq!(env.get("/api/data", Some(&access)).await.status, 200);
    let r = env
        .send(TestRequest::new("HEAD", "/api/data").bearer(&access))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = env
        .send(TestRequest::json("POST", "/api/data", &json!({})).bearer(&access))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_error(
        &env.send(TestRequest::new("DELETE", "/api/nothing")).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    // The routes under the mount prefix keep their own answers.
    let r = env.send(TestRequest::new("DELETE", "/auth/login")).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
}
