//! GraphiQL, served entirely by the gateway: the page at `/` and everything
//! it loads under `/graphiql/`, compiled into the binary from
//! `assets/graphiql/`, so the IDE works on a machine with no internet access.
//! Vendored files carry their version in their name and may be cached for
//! good; the page, its stylesheet and its start-up script are revalidated on
//! every load. `assets/graphiql/README.md` says where each file comes from.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Scripts and stylesheets come from the gateway only. Inline styles are
/// allowed because GraphiQL's dialogs insert a `<style>` element; its fonts
/// are `data:` URLs inside its stylesheet; queries go to `/graphql` and
/// subscriptions to a WebSocket.
const CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; \
    connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

const PAGE: &str = include_str!("../assets/graphiql/index.html");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// `GET /` (the GraphiQL page) and `GET /graphiql/{file}` (its assets).
/// With `demo` (the demo tenants' users and tokens, as JSON; only with
/// `--demo`), `GET /graphiql/demo.json` hands them to the page, which
/// starts signed in as the first and offers the others in a picker;
/// without it that route is 404 and the page holds no token.
pub fn routes<S: Clone + Send + Sync + 'static>(demo: Option<Arc<str>>) -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route(
            "/graphiql/demo.json",
            get(move || {
                let demo = demo.clone();
                async move {
                    match demo {
                        Some(json) => (
                            [
                                (header::CONTENT_TYPE, "application/json"),
                                (header::CACHE_CONTROL, "no-store"),
                            ],
                            json.to_string(),
                        )
                            .into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            }),
        )
        .route("/graphiql/{file}", get(asset))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, REVALIDATE),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type, cache): (&'static [u8], &str, &str) = match file.as_str() {
        "react-18.3.1.production.min.js" => (
            include_bytes!("../assets/graphiql/react-18.3.1.production.min.js"),
            JS,
            IMMUTABLE,
        ),
        "react-dom-18.3.1.production.min.js" => (
            include_bytes!("../assets/graphiql/react-dom-18.3.1.production.min.js"),
            JS,
            IMMUTABLE,
        ),
        "graphiql-4.1.2.min.js" => (
            include_bytes!("../assets/graphiql/graphiql-4.1.2.min.js"),
            JS,
            IMMUTABLE,
        ),
        "graphiql-4.1.2.min.css" => (
            include_bytes!("../assets/graphiql/graphiql-4.1.2.min.css"),
            CSS,
            IMMUTABLE,
        ),
        "init.js" => (include_bytes!("../assets/graphiql/init.js"), JS, REVALIDATE),
        "page.css" => (
            include_bytes!("../assets/graphiql/page.css"),
            CSS,
            REVALIDATE,
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
