//! Every answer the suite sees is held to the OpenAPI document the engine serves: an error of a
//! documented operation must be one of the codes that operation lists for its status, and a
//! success one of its documented statuses. So the document stays true to what every door
//! answers in every case, not only to what its authors remembered.

use serde_json::Value;

use super::{TestRequest, TestResponse};

/// The operation of `doc` that `method` on `path` (under `prefix`, query stripped) runs, if any.
fn operation<'d>(doc: &'d Value, method: &str, path: &str) -> Option<&'d Value> {
    let path = path.split('?').next().unwrap_or(path);
    let method = match method {
        "HEAD" => "get".to_string(),
        m => m.to_ascii_lowercase(),
    };
    let paths = doc["paths"].as_object()?;
    let matches = |template: &str| {
        let t: Vec<&str> = template.split('/').collect();
        let p: Vec<&str> = path.split('/').collect();
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
    };
    // An exact path wins over a template (`/docs/{asset}` vs a literal of the same length).
    let item = paths
        .get(path)
        .or_else(|| paths.iter().find(|(t, _)| matches(t)).map(|(_, v)| v))?;
    item.get(&method)
}

/// Panics when `resp` to `req` breaks the document `doc`.
pub(crate) fn check(doc: &Value, req: &TestRequest, resp: &TestResponse) {
    let Some(op) = operation(doc, &req.method, &req.path) else {
        return; // not a documented operation: a 404 or 405 of the router, or an app route
    };
    let status = resp.status.to_string();
    let Some(documented) = op["responses"].get(&status) else {
        panic!(
            "openapi.json: {} {} answered {status}, which the operation does not document ({})",
            req.method,
            req.path,
            String::from_utf8_lossy(&resp.body)
        );
    };
    if resp.status < 400 || req.method == "HEAD" {
        return; // a HEAD answer has no body to read the code from
    }
    let code = resp.json()["code"].as_str().unwrap_or_default().to_string();
    // Malformed path parameters are the router's 404 (docs/api.md §1), not the operation's.
    if code == "RESOURCE_NOT_FOUND" && resp.status == 404 {
        return;
    }
    let codes = &documented["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]
        ["enum"];
    let listed = codes
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c == code.as_str()));
    assert!(
        listed,
        "openapi.json: {} {} answered {status} {code}, which the operation does not list ({codes})",
        req.method, req.path
    );
}
