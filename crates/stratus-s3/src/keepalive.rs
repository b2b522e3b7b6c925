//! Keep-alive safety for `Expect: 100-continue` requests without a body.
//!
//! botocore (boto3, the aws cli) sends `Expect: 100-continue` with every
//! file-like upload body, including empty ones (`aws s3 cp` of an empty
//! `__init__.py`). hyper, as RFC 9110 §10.1.1 allows, sends no
//! `100 Continue` when the framing says there is no body and answers with the
//! final response at once. botocore then remembers that early status line on
//! the connection and, when the *next* request on the same keep-alive
//! connection also expects `100-continue`, parses that request's response
//! without its status line: the headers are misread, `Content-Length` is lost,
//! and the client waits for the end of the body until its read timeout (60 s
//! in the aws cli), then retries on a new connection. Uploading a source tree
//! crawled at a few objects per second with the CPU idle.
//!
//! hyper offers no way to send a `100 Continue` for an empty body, so the
//! gateway answers such requests with `Connection: close`: the client closes
//! the connection after reading the response, which resets its state, and
//! the next request starts on a fresh connection. Only requests that are
//! HTTP/1.1, expect `100-continue` and carry no body are affected (AWS S3
//! answers them with a `100 Continue`, which botocore handles).
//!
//! An error answered to a request that carries a body is also sent with
//! `Connection: close`: the gateway may answer before reading the body (a
//! refused header, a missing bucket), and unread body bytes left on a
//! kept-alive connection would be parsed as the next request.

use futures::future::BoxFuture;
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{HeaderValue, Request, Version};
use s3s::service::S3Service;
use stratus_http::TimedBody;

/// The S3 service, with `Connection: close` on responses to HTTP/1.1
/// requests that expect `100-continue` but have no body.
#[derive(Clone)]
pub(crate) struct CloseAfterEmptyExpect(pub(crate) S3Service);

impl hyper::service::Service<Request<TimedBody>> for CloseAfterEmptyExpect {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<TimedBody>) -> Self::Future {
        let close = expects_continue_without_body(&req);
        let close_on_error = sends_a_body(&req);
        // The body keeps its stall bound (`stratus_http::TimedBody`).
        let req = req.map(s3s::Body::http_body);
        let service = self.0.clone();
        Box::pin(async move {
            let mut response = service.call(req).await?;
            // An error answered before the request's body was read (a
            // refused header, a missing bucket) can leave that body on the
            // connection, where it is read as the start of the next request
            // (seen: the next PUT answered a bare `501` by hyper's parser):
            // such a connection is closed after the answer.
            let refused_early = close_on_error && response.status().as_u16() >= 400;
            if close || refused_early {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}

/// Whether `req` is an HTTP/1.1 request with `Expect: 100-continue` whose
/// framing says it has no body (`Content-Length: 0`, or neither a length nor
/// a transfer coding): the requests hyper answers without `100 Continue`.
/// Whether an HTTP/1 request carries a body (a non-zero `Content-Length`, or
/// any `Transfer-Encoding`).
pub(crate) fn sends_a_body<B>(req: &Request<B>) -> bool {
    if req.version() == Version::HTTP_2 || req.version() == Version::HTTP_3 {
        return false;
    }
    let h = req.headers();
    h.contains_key(TRANSFER_ENCODING)
        || h.get(CONTENT_LENGTH).is_some_and(|len| {
            std::str::from_utf8(len.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_none_or(|n| n > 0)
        })
}

pub(crate) fn expects_continue_without_body<B>(req: &Request<B>) -> bool {
    if req.version() != Version::HTTP_11 {
        return false;
    }
    let h = req.headers();
    let expects = h
        .get_all(EXPECT)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !expects {
        return false;
    }
    match h.get(CONTENT_LENGTH) {
        Some(len) => len.as_bytes().trim_ascii() == b"0",
        None => !h.contains_key(TRANSFER_ENCODING),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder()
            .method("PUT")
            .uri("/b/k")
            .version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("valid request")
    }

    /// A request's version, its headers, and whether it must close.
    type Case<'a> = (Version, &'a [(&'a str, &'a str)], bool);

    #[test]
    fn requests_with_bodies_are_told_apart() {
        let cases: &[Case<'_>] = &[
            (Version::HTTP_11, &[("content-length", "1")], true),
            (Version::HTTP_11, &[("transfer-encoding", "chunked")], true),
            (Version::HTTP_10, &[("content-length", "12")], true),
            (Version::HTTP_11, &[("content-length", "0")], false),
            (Version::HTTP_11, &[], false),
            (Version::HTTP_2, &[("content-length", "5")], false),
        ];
        for (version, headers, want) in cases {
            assert_eq!(
                sends_a_body(&req(*version, headers)),
                *want,
                "{version:?} {headers:?}"
            );
        }
    }

    #[test]
    fn only_empty_bodies_that_expect_continue_close() {
        let cases: &[Case<'_>] = &[
            (
                Version::HTTP_11,
                &[("expect", "100-continue"), ("content-length", "0")],
                true,
            ),
            (
                Version::HTTP_11,
                &[("Expect", "100-Continue"), ("Content-Length", " 0 ")],
                true,
            ),
            (Version::HTTP_11, &[("expect", "100-continue")], true),
            (
                Version::HTTP_11,
                &[("expect", "100-continue"), ("content-length", "3")],
                false,
            ),
            (
                Version::HTTP_11,
                &[("expect", "100-continue"), ("transfer-encoding", "chunked")],
                false,
            ),
            (Version::HTTP_11, &[("content-length", "0")], false),
            (
                Version::HTTP_10,
                &[("expect", "100-continue"), ("content-length", "0")],
                false,
            ),
            (
                Version::HTTP_2,
                &[("expect", "100-continue"), ("content-length", "0")],
                false,
            ),
        ];
        for (version, headers, want) in cases {
            assert_eq!(
                expects_continue_without_body(&req(*version, headers)),
                *want,
                "{version:?} {headers:?}"
            );
        }
    }
}
