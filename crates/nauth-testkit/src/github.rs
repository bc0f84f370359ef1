//! A local stand-in for GitHub's OAuth endpoints, for the `github` social login preset (GitHub
//! itself cannot be reached from the tests): `POST /login/oauth/access_token` (checks the client,
//! the code, the redirect URI and the PKCE verifier against the challenge of the authorization
//! URL), `GET /user` and `GET /user/emails` (by the access token it issued).
//!
//! [`GithubStandIn::authorize`] plays the user at GitHub's authorization page: it reads nauth's
//! authorization URL and answers the URL GitHub would send the browser back to (the redirect URI
//! with `code` and `state`), for an account `login`: `octo@example.com` (primary email verified),
//! `unverified:octo@example.com` (primary email not verified). The numeric id is derived from the
//! email, so the same email is the same GitHub account.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The client the stand-in accepts.
pub const CLIENT_ID: &str = "gh-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "gh-secret";

#[derive(Debug, Clone)]
struct Grant {
    challenge: String,
    redirect_uri: String,
    email: String,
    verified: bool,
}

#[derive(Debug, Default)]
struct State {
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Grant>,
}

/// The running stand-in; dropping it stops nothing (it lives for the test process).
#[derive(Debug, Clone)]
pub struct GithubStandIn {
    /// `http://127.0.0.1:PORT`: the `authorization_url` is `{base}/login/oauth/authorize`,
    /// the `token_url` `{base}/login/oauth/access_token`, the `api_url` `{base}`.
    pub base: String,
    state: Arc<Mutex<State>>,
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn id_of(email: &str) -> u64 {
    let h = sha2::Sha256::digest(email.as_bytes());
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], 0, 0]) >> 16
}

impl GithubStandIn {
    /// Starts the stand-in on `127.0.0.1:0`.
    pub async fn start() -> GithubStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let state: Arc<Mutex<State>> = Default::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read the head, then the body by Content-Length.
                    loop {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    let (status, body) = answer(&state, &buf);
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        GithubStandIn {
            base: format!("http://{addr}"),
            state,
        }
    }

    /// The user at GitHub's authorization page: the URL GitHub would send the browser back to
    /// (nauth's redirect URI with `code` and `state`), for the account `login` names.
    pub fn authorize(&self, authorize_url: &str, login: &str) -> String {
        assert!(
            authorize_url.starts_with(&format!("{}/login/oauth/authorize?", self.base)),
            "{authorize_url}"
        );
        assert_eq!(
            query_param(authorize_url, "client_id").as_deref(),
            Some(CLIENT_ID)
        );
        assert_eq!(
            query_param(authorize_url, "code_challenge_method").as_deref(),
            Some("S256")
        );
        let redirect_uri = query_param(authorize_url, "redirect_uri").expect("redirect_uri");
        let state = query_param(authorize_url, "state").expect("state");
        let (email, verified) = match login.strip_prefix("unverified:") {
            Some(e) => (e.to_string(), false),
            None => (login.to_string(), true),
        };
        let code = format!("code-{}", uuid::Uuid::new_v4().simple());
        let grant = Grant {
            challenge: query_param(authorize_url, "code_challenge").expect("code_challenge"),
            redirect_uri: redirect_uri.clone(),
            email,
            verified,
        };
        self.state
            .lock()
            .expect("state")
            .codes
            .insert(code.clone(), grant);
        format!("{redirect_uri}?code={code}&state={state}")
    }
}

fn answer(state: &Mutex<State>, raw: &[u8]) -> (&'static str, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let first = head.lines().next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    match (method, target) {
        ("POST", "/login/oauth/access_token") => {
            let form = format!("?{body}");
            let p = |n: &str| query_param(&form, n).unwrap_or_default();
            // GitHub answers its errors with 200 and an `error` field.
            let bad = |e: &str| ("200 OK", format!(r#"{{"error":"{e}"}}"#));
            if p("client_id") != CLIENT_ID || p("client_secret") != CLIENT_SECRET {
                return bad("incorrect_client_credentials");
            }
            let Some(grant) = st.codes.remove(&p("code")) else {
                return bad("bad_verification_code");
            };
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(p("code_verifier").as_bytes()));
            if challenge != grant.challenge || p("redirect_uri") != grant.redirect_uri {
                return bad("bad_verification_code");
            }
            let token = format!("gho_{}", uuid::Uuid::new_v4().simple());
            st.tokens.insert(token.clone(), grant);
            (
                "200 OK",
                format!(
                    r#"{{"access_token":"{token}","token_type":"bearer","scope":"read:user,user:email"}}"#
                ),
            )
        }
        ("GET", "/user" | "/user/emails") => {
            let grant = header("authorization")
                .and_then(|a| a.strip_prefix("Bearer ").map(str::to_string))
                .and_then(|t| st.tokens.get(&t).cloned());
            let Some(g) = grant else {
                return (
                    "401 Unauthorized",
                    r#"{"message":"Bad credentials"}"#.into(),
                );
            };
            if target == "/user" {
                let body = serde_json::json!({
                    "id": id_of(&g.email), "login": "octo", "name": "Mona Octocat",
                    "email": null,
                });
                ("200 OK", body.to_string())
            } else {
                let body = serde_json::json!([
                    {"email": "noreply@users.github.invalid", "primary": false, "verified": true},
                    {"email": g.email, "primary": true, "verified": g.verified},
                ]);
                ("200 OK", body.to_string())
            }
        }
        _ => ("404 Not Found", r#"{"message":"Not Found"}"#.into()),
    }
}
