//! Every answer the suite sees is held to the OpenAPI document the engine serves: its status
//! must be one the operation documents, its JSON body must fit the schema documented for that
//! status (`$ref`, `allOf`, `oneOf`, `anyOf`, `type`, `enum`, `required`, `properties`,
//! `items`, `additionalProperties`; formats and lengths are left to schemathesis), and an
//! error's code must be one the operation lists for that status. So the document stays true to
//! what every door answers in every case, not only to what its authors remembered.

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
    if req.method == "HEAD" {
        return; // a HEAD answer has no body
    }
    if let Some(schema) = documented["content"]
        .get("application/json")
        .map(|c| &c["schema"])
    {
        let body = resp.json();
        if let Err(e) = fits(doc, schema, &body, "body") {
            panic!(
                "openapi.json: {} {} answered {status} with a body outside its schema: {e}\n{body}",
                req.method, req.path
            );
        }
    }
    if resp.status < 400 {
        return;
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

/// Whether `value` fits `schema` (the keywords the document uses); the error names where not.
fn fits(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: dangling {r}"));
        }
        fits(doc, target, value, at)?;
    }
    for s in schema["allOf"].as_array().into_iter().flatten() {
        fits(doc, s, value, at)?;
    }
    for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(options) = schema[keyword].as_array() {
            let n = options
                .iter()
                .filter(|s| fits(doc, s, value, at).is_ok())
                .count();
            if n == 0 || (exactly_one && n > 1) {
                return Err(format!("{at}: {n} of the {keyword} alternatives fit"));
            }
        }
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(k) => vec![k.as_str()],
            Value::Array(ks) => ks.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let is = |k: &str| match k {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        };
        if !kinds.iter().any(|k| is(k)) {
            return Err(format!("{at}: {value} is not {kinds:?}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(object) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{at}: {key} is required"));
            }
        }
        let properties = schema["properties"].as_object();
        for (key, v) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(s) => fits(doc, s, v, &format!("{at}.{key}"))?,
                None => {
                    if let Some(extra) =
                        schema.get("additionalProperties").filter(|e| e.is_object())
                    {
                        fits(doc, extra, v, &format!("{at}.{key}"))?;
                    }
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            fits(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fits;

    fn doc() -> serde_json::Value {
        let cfg = nauth_core::NAuthConfig {
            secret: "contract-test-secret-0123456789abcdef".into(),
            ..Default::default()
        };
        nauth_core::openapi_document(&cfg)
    }

    #[test]
    fn bodies_are_held_to_their_schemas() {
        let doc = doc();
        let r = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
        let user = json!({"sub": "u", "email": "a@b.co", "username": null, "firstName": null,
            "lastName": null, "phone": null, "isEmailVerified": true, "isPhoneVerified": false,
            "roles": ["user"]});
        let challenge = json!({"challengeName": "VERIFY_EMAIL", "session": "s",
            "challengeParameters": {"codeDeliveryDestination": "a***b@b.co"}, "userSub": "u"});
        let cookie_tokens = json!({"authMethod": "password", "trusted": false, "user": user});
        assert_eq!(fits(&doc, &r("AuthResponse"), &challenge, "b"), Ok(()));
        assert_eq!(fits(&doc, &r("AuthResponse"), &cookie_tokens, "b"), Ok(()));
        // A missing field, a wrong type, a value outside a map's type, nothing that fits.
        let mut no_sub = user.clone();
        no_sub.as_object_mut().map(|m| m.remove("sub"));
        assert!(fits(&doc, &r("User"), &no_sub, "b").is_err());
        let mut wrong = user.clone();
        wrong["roles"] = json!("user");
        assert!(fits(&doc, &r("User"), &wrong, "b").is_err());
        let mut bad_params = challenge.clone();
        bad_params["challengeParameters"]["requiresPhoneCollection"] = json!(true);
        assert!(fits(&doc, &r("Challenge"), &bad_params, "b").is_err());
        assert!(fits(&doc, &r("AuthResponse"), &json!({"success": true}), "b").is_err());
        assert!(
            fits(
                &doc,
                &r("Error"),
                &json!({"code": "X", "message": "m"}),
                "b"
            )
            .is_err()
        );
    }
}
