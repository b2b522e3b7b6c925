//! One request id per request, on every answer.
//!
//! AWS S3 sends `x-amz-request-id` and `x-amz-id-2` with every response and
//! repeats the id, with the `Resource` the request named, in the body of
//! every error (`<Error><Code/><Message/><Resource/><RequestId/></Error>`;
//! an error s3s built without a message gets AWS's words for its code);
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

/// AWS's message for an error code (s3s sends none for most errors it
/// raises without one).
pub fn default_message(code: &str) -> String {
    match code {
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchBucket" => "The specified bucket does not exist.",
        "NoSuchUpload" => {
            "The specified multipart upload does not exist. The upload ID might be invalid, \
             or the multipart upload might have been aborted or completed."
        }
        "NoSuchVersion" => "The specified version does not exist.",
        "BucketNotEmpty" => "The bucket you tried to delete is not empty.",
        "BucketAlreadyExists" => {
            "The requested bucket name is not available. The bucket namespace is shared by \
             all users of the system. Please select a different name and try again."
        }
        "BucketAlreadyOwnedByYou" => {
            "Your previous request to create the named bucket succeeded and you already own it."
        }
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidPart" => {
            "One or more of the specified parts could not be found. The part might not have \
             been uploaded, or the specified entity tag might not have matched the part's \
             entity tag."
        }
        "InvalidPartOrder" => {
            "The list of parts was not in ascending order. The parts list must be specified \
             in order by part number."
        }
        "EntityTooSmall" => "Your proposed upload is smaller than the minimum allowed object size.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "InvalidRange" => "The requested range is not satisfiable",
        "AccessDenied" => "Access Denied",
        "InvalidAccessKeyId" => "The AWS access key ID you provided does not exist in our records.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method."
        }
        "PreconditionFailed" => "At least one of the preconditions you specified did not hold.",
        "BadDigest" => "The Content-MD5 you specified did not match what we received.",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our \
             published schema."
        }
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        "InternalError" => "We encountered an internal error. Please try again.",
        other => return format!("The request failed with {other}."),
    }
    .to_owned()
}

/// Inserts a `<Message>` when there is none (AWS's words for the code),
/// `<Resource>` and `<RequestId>` into an S3 error document, unless it
/// already has them. `None` if `body` is not one.
pub fn complete_error_body(body: &[u8], resource: &str, request_id: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let end = text.rfind("</Error>")?;
    let code_end = text.find("</Code>")? + "</Code>".len();
    let mut message = String::new();
    if !text.contains("<Message>") {
        let code = text[..code_end]
            .rsplit_once("<Code>")
            .map(|(_, c)| c.trim_end_matches("</Code>"))
            .unwrap_or_default();
        message = format!("<Message>{}</Message>", xml_escape(&default_message(code)));
    }
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
    let mut out = String::with_capacity(text.len() + message.len() + extra.len());
    out.push_str(&text[..code_end]);
    out.push_str(&message);
    out.push_str(&text[code_end..end]);
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

/// GetObjectAttributes answers the ETag without quotes (unlike every other
/// S3 answer, and unlike s3s's serializer): the body's `<ETag>"x"</ETag>`
/// becomes `<ETag>x</ETag>`. `None` when there is nothing to change.
pub fn unquote_etag(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<ETag>\"")? + "<ETag>".len();
    let end = start + 1 + text[start + 1..].find("\"</ETag>")?;
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    out.push_str(&text[start + 1..end]);
    out.push_str(&text[end + 1..]);
    Some(out.into_bytes())
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
        let is_attributes = req.method() == http::Method::GET
            && req.uri().query().is_some_and(|q| {
                q.split('&')
                    .any(|p| p == "attributes" || p == "attributes=")
            });
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
            if is_attributes && response.status().is_success() {
                if let Some(body) = response.body().bytes().and_then(|b| unquote_etag(&b)) {
                    let len = body.len();
                    *response.body_mut() = s3s::Body::from(Bytes::from(body));
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
                }
            }
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
    fn attributes_etag_loses_its_quotes() {
        let b = br#"<GetObjectAttributesResponse><ETag>"abc-2"</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>"#;
        let out = unquote_etag(b).expect("changed");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            "<GetObjectAttributesResponse><ETag>abc-2</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>"
        );
        assert_eq!(unquote_etag(b"<X/>"), None);
    }

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
        // A code without a message gets AWS's words.
        let bare = br#"<Error><Code>NoSuchBucket</Code></Error>"#;
        let out =
            String::from_utf8(complete_error_body(bare, "/b", "ID").expect("doc")).expect("utf-8");
        assert_eq!(
            out,
            "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist.</Message>\
             <Resource>/b</Resource><RequestId>ID</RequestId></Error>"
        );
        // Not an error document: left alone.
        assert_eq!(complete_error_body(b"<ListBucketResult/>", "/", "A"), None);
        // Already complete: unchanged.
        let full = b"<Error><Code>X</Code><Message>m</Message><Resource>/r</Resource><RequestId>Q</RequestId></Error>";
        assert_eq!(
            complete_error_body(full, "/b", "A").as_deref(),
            Some(&full[..])
        );
    }
}
