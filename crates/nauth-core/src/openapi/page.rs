//! The interactive API page at `<mount>/docs`: Swagger UI served from the binary (cargo
//! feature `api-docs`), pointed at `<mount>/openapi.json`. No CDN, no inline script: the
//! page's Content-Security-Policy allows only its own files.

/// The page's HTML.
pub(crate) const INDEX: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nauth API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"#;

/// The page's files: name under `<mount>/docs/`, content type, bytes.
#[cfg(feature = "api-docs")]
pub(crate) const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/swagger-ui.css"),
    ),
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/init.js"),
    ),
];

/// Without the `api-docs` feature the page has no files (and `openapi.page` is refused).
#[cfg(not(feature = "api-docs"))]
pub(crate) const ASSETS: &[(&str, &str, &[u8])] = &[];

/// The page's policy: its own scripts and styles (Swagger UI sets inline styles), data: images
/// (the logo), calls to this origin only, never framed.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
