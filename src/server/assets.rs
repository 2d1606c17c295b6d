//! The session page and the token manager module, compiled into the binary. Only
//! these responses get the page's content policy; everything else keeps the API's.

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::http::{Body, full};

/// Scripts and styles from this origin only, no inline script, fetches to this origin.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

const FILES: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("../../assets/index.html")),
    ("/assets/app.css", "text/css; charset=utf-8", include_str!("../../assets/app.css")),
    ("/assets/app.js", "text/javascript; charset=utf-8", include_str!("../../assets/app.js")),
    ("/assets/token-manager.js", "text/javascript; charset=utf-8", include_str!("../../assets/token-manager.js")),
];

/// The asset at `path`, if there is one.
pub fn get(path: &str) -> Option<Response<Body>> {
    let path = if path == "/index.html" { "/" } else { path };
    let (_, ctype, body) = FILES.iter().find(|(p, ..)| *p == path)?;
    let mut resp = Response::new(full(*body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_no_inline_script_and_loads_only_own_assets() {
        let html = FILES[0].2;
        assert!(!html.contains("<script>"), "no inline script");
        for src in html.split("src=\"").skip(1).chain(html.split("href=\"").skip(1)) {
            let url = src.split('"').next().unwrap();
            assert!(url.starts_with("/assets/"), "{url}");
            assert!(get(url).is_some(), "{url} is served");
        }
        assert!(get("/assets/nope.js").is_none());
    }
}
