//! One request id per request, on every answer.
//!
//! AWS S3 sends `x-amz-request-id` and `x-amz-id-2` with every response and
//! repeats the id, with the `Resource` the request named, in the body of
//! every error (`<Error><Code/><Message/><Resource/><RequestId/></Error>`);
//! clients log it and support tools ask for it. s3s 0.14 sends neither
//! header and never writes `Resource`, so this layer, wrapped around the
//! whole service (errors s3s raises itself — a bad signature, an unknown
//! operation — included), gives each request a fresh id, sets both headers
//! and completes error bodies. Error bodies are small documents s3s built in
//! memory; a body that is not (a stream), or larger than
//! [`MAX_ERROR_BODY`], is left as it is. The same layer refuses presigned
//! URLs whose expiry AWS refuses (`access::presigned_expiry_error`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request};
use stratus_http::TimedBody;

/// The largest error body completed with `Resource` and `RequestId`.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-amz-request-id";
/// The response header carrying the extended request id.
pub const ID_2_HEADER: &str = "x-amz-id-2";

/// A fresh request id: 16 upper-case hex digits, unique in the process
/// (a counter mixed with a random per-process key, so ids do not reveal
/// how many requests were served).
pub fn new_request_id() -> (String, String) {
    static KEY: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let key = *KEY.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5354_5241_5455_5321);
        h.finish()
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = mix(n ^ key);
    let id2 = mix(id ^ key.rotate_left(17));
    (format!("{id:016X}"), format!("{id2:016x}{:016x}", mix(id2)))
}

/// A bijective 64-bit mixer (splitmix64's finaliser).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Inserts `<Resource>` and `<RequestId>` into an S3 error document (before
/// `</Error>`), unless it already has them. `None` if `body` is not one.
pub fn complete_error_body(body: &[u8], resource: &str, request_id: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let end = text.rfind("</Error>")?;
    let mut extra = String::new();
    if !text.contains("<Resource>") {
        extra.push_str("<Resource>");
        extra.push_str(&xml_escape(resource));
        extra.push_str("</Resource>");
    }
    if !text.contains("<RequestId>") {
        extra.push_str("<RequestId>");
        extra.push_str(&xml_escape(request_id));
        extra.push_str("</RequestId>");
    }
    let mut out = String::with_capacity(text.len() + extra.len());
    out.push_str(&text[..end]);
    out.push_str(&extra);
    out.push_str(&text[end..]);
    Some(out.into_bytes())
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The service `S`, with a request id on every response.
#[derive(Clone)]
pub(crate) struct RequestIds<S>(pub(crate) S);

impl<S> hyper::service::Service<Request<TimedBody>> for RequestIds<S>
where
    S: hyper::service::Service<
            Request<TimedBody>,
            Response = s3s::HttpResponse,
            Error = s3s::HttpError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<TimedBody>) -> Self::Future {
        let (id, id2) = new_request_id();
        let resource = req.uri().path().to_owned();
        // A presigned URL with an expiry AWS refuses is refused as AWS
        // does, before s3s's parser gives it another code.
        let fut: BoxFuture<'static, Result<s3s::HttpResponse, s3s::HttpError>> =
            match crate::access::presigned_expiry_error(req.uri().query()) {
                Some(e) => Box::pin(async move {
                    e.to_http_response()
                        .map_err(|e| s3s::HttpError::new(Box::new(e)))
                }),
                None => Box::pin(self.0.call(req)),
            };
        Box::pin(async move {
            let mut response = fut.await?;
            if response.status().as_u16() >= 300 {
                let done = response
                    .body()
                    .bytes()
                    .filter(|b| !b.is_empty() && b.len() <= MAX_ERROR_BODY)
                    .and_then(|b| complete_error_body(&b, &resource, &id));
                if let Some(body) = done {
                    let len = body.len();
                    *response.body_mut() = s3s::Body::from(Bytes::from(body));
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
                }
            }
            let h = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&id) {
                h.insert(REQUEST_ID_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&id2) {
                h.insert(ID_2_HEADER, v);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_and_shaped_like_aws_ones() {
        let (a, a2) = new_request_id();
        let (b, _) = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
        assert_eq!(a2.len(), 32);
    }

    #[test]
    fn error_bodies_gain_resource_and_request_id() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>"#;
        let out = complete_error_body(body, "/b/a&b", "ABC").expect("an error document");
        let out = String::from_utf8(out).expect("utf-8");
        assert!(
            out.ends_with("<Message>m</Message><Resource>/b/a&amp;b</Resource><RequestId>ABC</RequestId></Error>"),
            "{out}"
        );
        // Not an error document: left alone.
        assert_eq!(complete_error_body(b"<ListBucketResult/>", "/", "A"), None);
        // Already complete: unchanged.
        let full = b"<Error><Code>X</Code><Resource>/r</Resource><RequestId>Q</RequestId></Error>";
        assert_eq!(
            complete_error_body(full, "/b", "A").as_deref(),
            Some(&full[..])
        );
    }
}
