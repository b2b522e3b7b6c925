//! Fuzzing entry points for the request router and the SigV4 parser, plus a
//! small SigV4 signer so fuzzed requests also get past authentication.
//! Its keys are fixed test secrets: compiled only for this crate's tests and
//! with the `testing` feature (the fuzz crate's), never in the product.
//!
//! [`fuzz_request`] builds an HTTP request from arbitrary bytes and runs it
//! through the full service ([`crate::service`]) over a
//! [`crate::testing::MemBackend`], reading the whole response. It must never
//! panic. A `cargo fuzz` target is one line:
//! `fuzz_target!(|data: &[u8]| stratus_s3::fuzzing::fuzz_request(data));`

use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use crate::backend::{Backend, PutMeta};
use crate::testing::{MemBackend, MemKeys};
use crate::Gateway;

/// Access key of the fuzzing tenant `fuzz-a`.
pub const FUZZ_ACCESS_KEY: &str = "FUZZACCESSKEYA";
/// Its secret.
pub const FUZZ_SECRET: &str = "fuzz-secret-a";
/// Access key of a second tenant, `fuzz-b`.
pub const FUZZ_ACCESS_KEY_B: &str = "FUZZACCESSKEYB";
/// Its secret.
pub const FUZZ_SECRET_B: &str = "fuzz-secret-b";

thread_local! {
    static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok();
}

/// Builds a request from `data` and runs it through the service.
///
/// Layout: byte 0 holds flags (bit 0: sign the request with SigV4 as tenant
/// A's key, bit 1: use tenant B's key instead, bit 2: sign with a wrong
/// secret); the rest is read as text, `METHOD URI` on the first line, then
/// `Name: value` header lines, an empty line and the body.
pub fn fuzz_request(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some(req) = parse_request(flags, rest) else {
        return;
    };
    RUNTIME.with(|rt| {
        if let Some(rt) = rt {
            rt.block_on(run(req));
        }
    });
}

async fn run(req: http::Request<Bytes>) {
    let backend = Arc::new(MemBackend::new());
    // A bucket with an object so reads and lists have something to find.
    if backend.create_bucket("fuzz-a", "bucket").await.is_ok() {
        let body: crate::ByteStream = Box::pin(futures::stream::iter([Ok(Bytes::from_static(
            b"hello fuzz",
        ))]));
        let _ = backend
            .put_object("fuzz-a", "bucket", "key", PutMeta::default(), body, None)
            .await;
    }
    let keys = Arc::new(
        MemKeys::new()
            .with(FUZZ_ACCESS_KEY, FUZZ_SECRET, "fuzz-a")
            .with(FUZZ_ACCESS_KEY_B, FUZZ_SECRET_B, "fuzz-b"),
    );
    let service = crate::service(Gateway::new(backend, keys));
    let req = req.map(s3s::Body::from);
    if let Ok(resp) = service.call(req).await {
        let _ = resp.into_body().collect().await;
    }
}

fn parse_request(flags: u8, text: &[u8]) -> Option<http::Request<Bytes>> {
    let split = find(text, b"\n\n");
    let (head, body) = match split {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let first = lines.next()?;
    let (method, uri) = first.split_once(' ')?;
    let mut b = http::Request::builder().method(method).uri(uri);
    let mut has_host = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        has_host |= name.eq_ignore_ascii_case("host");
        b = b.header(name.trim(), value.trim());
    }
    if !has_host {
        b = b.header("host", "localhost:9000");
    }
    let mut req = b.body(Bytes::copy_from_slice(body)).ok()?;
    if flags & 1 == 1 {
        let (ak, sk) = if flags & 2 == 2 {
            (FUZZ_ACCESS_KEY_B, FUZZ_SECRET_B)
        } else {
            (FUZZ_ACCESS_KEY, FUZZ_SECRET)
        };
        let sk = if flags & 4 == 4 { "wrong" } else { sk };
        sign_v4(&mut req, ak, sk, "us-east-1");
    }
    Some(req)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of any length; this arm is unreachable.
        Err(_) => Vec::new(),
    }
}

/// AWS URI encoding: everything but unreserved characters (and `/` when
/// `keep_slash`).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    fn hex_val(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Signs `req` with AWS SigV4 (header form, `UNSIGNED-PAYLOAD`) for service
/// `s3` in `region`, as of now. Sets `x-amz-date`, `x-amz-content-sha256`
/// and `authorization`. Used by the fuzzer and by tests.
pub fn sign_v4<T>(req: &mut http::Request<T>, access_key: &str, secret: &str, region: &str) {
    sign_v4_with(req, access_key, secret, region, "UNSIGNED-PAYLOAD", false);
}

/// [`sign_v4`] with another `x-amz-content-sha256` (e.g.
/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` for an `aws-chunked` body).
pub fn sign_v4_payload<T>(
    req: &mut http::Request<T>,
    access_key: &str,
    secret: &str,
    region: &str,
    payload: &str,
) {
    sign_v4_with(req, access_key, secret, region, payload, false);
}

/// What signing a request produced: enough to sign the chunks of a
/// streaming (`aws-chunked`) body after it.
struct Signed {
    signature: String,
    key: Vec<u8>,
    amz_date: String,
    scope: String,
}

/// Signs `req` with `payload` as its `x-amz-content-sha256`; with
/// `amz_headers`, every `x-amz-*` header already on `req` is signed too.
fn sign_v4_with<T>(
    req: &mut http::Request<T>,
    access_key: &str,
    secret: &str,
    region: &str,
    payload: &str,
    amz_headers: bool,
) -> Signed {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let headers = req.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(payload) {
        headers.insert("x-amz-content-sha256", v);
    }
    let mut signed: Vec<(String, String)> = vec![("host".to_owned(), host)];
    for (name, value) in headers.iter() {
        let name = name.as_str();
        let always = name == "x-amz-content-sha256" || name == "x-amz-date";
        if always || (amz_headers && name.starts_with("x-amz-")) {
            let value = value.to_str().unwrap_or("").trim().to_owned();
            signed.push((name.to_owned(), value));
        }
    }
    signed.sort();

    let mut query: Vec<(String, String)> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    query.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let path = req.uri().path();
    let canonical_uri = uri_encode(&percent_decode(path), true);
    let signed_headers = signed
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload}",
        req.method().as_str()
    );
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    );
    if let Ok(v) = http::HeaderValue::from_str(&auth) {
        req.headers_mut().insert(http::header::AUTHORIZATION, v);
    }
    Signed {
        signature,
        key,
        amz_date,
        scope,
    }
}

/// Signs `req` for a streaming upload with trailers, signing its `x-amz-*`
/// headers, and returns the encoder of its `aws-chunked` body. With
/// `signed_chunks`, `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` (every
/// chunk and the trailers signed, chained to the request's signature);
/// without, `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (what AWS SDKs send by
/// default over HTTPS: nothing after the headers is signed).
pub fn sign_v4_streaming<T>(
    req: &mut http::Request<T>,
    access_key: &str,
    secret: &str,
    region: &str,
    signed_chunks: bool,
) -> ChunkSigner {
    let payload = if signed_chunks {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    } else {
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    };
    let s = sign_v4_with(req, access_key, secret, region, payload, true);
    ChunkSigner {
        signed: signed_chunks,
        key: s.key,
        amz_date: s.amz_date,
        scope: s.scope,
        prev: s.signature,
    }
}

/// Encodes (and, if signed, signs) the chunks and trailers of an
/// `aws-chunked` body, each signature chained to the previous one.
pub struct ChunkSigner {
    signed: bool,
    key: Vec<u8>,
    amz_date: String,
    scope: String,
    prev: String,
}

impl ChunkSigner {
    fn sign(&mut self, kind: &str, hash_of: &[u8], empty_hash: bool) -> String {
        let empty = if empty_hash {
            format!("{}\n", hex::encode(Sha256::digest(b"")))
        } else {
            String::new()
        };
        let to_sign = format!(
            "AWS4-HMAC-SHA256-{kind}\n{}\n{}\n{}\n{empty}{}",
            self.amz_date,
            self.scope,
            self.prev,
            hex::encode(Sha256::digest(hash_of))
        );
        self.prev = hex::encode(hmac(&self.key, to_sign.as_bytes()));
        self.prev.clone()
    }

    /// One chunk of `data` (empty: the final chunk), encoded.
    pub fn chunk(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = if self.signed {
            let sig = self.sign("PAYLOAD", data, true);
            format!("{:x};chunk-signature={sig}\r\n", data.len()).into_bytes()
        } else {
            format!("{:x}\r\n", data.len()).into_bytes()
        };
        out.extend_from_slice(data);
        if !data.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// The trailers (after the final chunk) with their signature.
    pub fn trailers(&mut self, trailers: &[(&str, &str)]) -> Vec<u8> {
        let mut out: String = trailers
            .iter()
            .map(|(n, v)| format!("{n}:{v}\r\n"))
            .collect();
        if self.signed {
            let canonical: String = trailers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
            let sig = self.sign("TRAILER", canonical.as_bytes(), false);
            out.push_str(&format!("x-amz-trailer-signature:{sig}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// The SigV4 signature of a browser form upload (POST Object): the hex
/// HMAC of the base64 `policy` field under the signing key of `secret` for
/// `date` (`YYYYMMDD`) and `region`.
pub fn sign_post_policy(policy_b64: &str, secret: &str, date: &str, region: &str) -> String {
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex::encode(hmac(&key, policy_b64.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode() {
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
