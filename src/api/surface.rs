//! The rendering contract between the shared request machinery and each surface: a
//! surface names itself (the `origin` recorded in every event it causes), says how its
//! clients carry their token, and brings the error type that renders a [`Failure`] in
//! its own shape. Extractors and middleware are generic over it, so a dialect's clients
//! never see another surface's error body.

use actix_web::ResponseError;
use actix_web::http::header::HeaderMap;

use super::Failure;

pub trait Surface: 'static {
    /// The `origin` of the events this surface causes (`native`, or the dialect's name).
    const ORIGIN: &'static str;
    /// Whether request bodies must be JSON (a non-JSON body is refused with 415).
    const JSON_BODIES: bool = true;
    /// The surface's error: a failure rendered in its shape.
    type Error: ResponseError + From<Failure> + 'static;
    /// The token a request carries in its head, as this surface's clients send it.
    fn token(headers: &HeaderMap, query: &str) -> Option<String>;
}
