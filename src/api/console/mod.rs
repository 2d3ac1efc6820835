//! The web console: a single page served by the same binary at `/`, with its script and
//! style under `/console/`. The assets are embedded at compile time (no build step, no
//! network): the page is a client of the native API like any other, signing in with a
//! token it keeps in the tab's session storage. This surface serves files; it reads no
//! ledger data and decides nothing (the actions it offers come from the API).

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// The console's paths: the page, and its assets.
pub const PATHS: [&str; 3] = ["/", "/console/app.js", "/console/app.css"];

fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        // The assets change with the binary; a restart after an upgrade must not show the
        // old page.
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ))
        .body(body)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        PATHS[0],
        web::get().to(|| async { asset(INDEX, "text/html; charset=utf-8") }),
    )
    .route(
        PATHS[1],
        web::get().to(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
    )
    .route(
        PATHS[2],
        web::get().to(|| async { asset(STYLE, "text/css; charset=utf-8") }),
    );
}
