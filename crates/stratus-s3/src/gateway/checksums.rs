//! The S3 additional checksums (`x-amz-checksum-{crc32,crc32c,crc64nvme,
//! sha1,sha256}`), verified while a written body streams.
//!
//! A client announces one checksum of a PutObject, POST Object or UploadPart
//! body, either as a header (or form field) or as an `aws-chunked` trailer
//! named by `x-amz-trailer` (what the AWS SDKs send by default over HTTPS).
//! [`check`] wraps the body so the announced algorithm (s3s's
//! [`ChecksumHasher`]) runs over every byte the backend reads; at the end of
//! the body (where a trailer's value has just been decoded and signature
//! checked by s3s) the value is compared, and a mismatch ends the stream with
//! an error, so the backend commits nothing (exactly like the `Content-MD5`
//! check of [`super::body`]). The gateway then answers `BadDigest` naming the
//! algorithm, or `InvalidRequest` for a malformed, missing or ambiguous value,
//! and on success echoes the verified checksum in its response, as AWS does.
//!
//! A verified checksum is also put in the write's [`ChecksumSlot`], which
//! the backend reads before committing: the version (or part) stores it.
//! A part of an upload created with `x-amz-checksum-algorithm` that comes
//! without a checksum has one computed ([`check_part`]), so completing the
//! upload can always combine them (`stored` module: the answers on reads,
//! ListParts, CompleteMultipartUpload and GetObjectAttributes).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::Checksum;
use s3s::{s3_error, S3Error, S3Result, TrailingHeaders};

use super::body::base64_decode;
use crate::backend::{ByteStream, ChecksumSlot, ObjectChecksum};

/// One of S3's additional checksum algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    const ALL: [Self; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The name AWS uses (`x-amz-sdk-checksum-algorithm`, error messages).
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The header (and trailer) carrying its value.
    pub(super) fn header(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The length of its digest in bytes.
    fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    fn hasher(self) -> ChecksumHasher {
        let mut h = ChecksumHasher::default();
        match self {
            Self::Crc32 => h.crc32 = Some(Crc32::new()),
            Self::Crc32c => h.crc32c = Some(Crc32c::new()),
            Self::Crc64Nvme => h.crc64nvme = Some(Crc64Nvme::new()),
            Self::Sha1 => h.sha1 = Some(Sha1::new()),
            Self::Sha256 => h.sha256 = Some(Sha256::new()),
        }
        h
    }

    pub(super) fn field(self, c: &mut Checksum) -> &mut Option<String> {
        match self {
            Self::Crc32 => &mut c.checksum_crc32,
            Self::Crc32c => &mut c.checksum_crc32c,
            Self::Crc64Nvme => &mut c.checksum_crc64nvme,
            Self::Sha1 => &mut c.checksum_sha1,
            Self::Sha256 => &mut c.checksum_sha256,
        }
    }

    fn from_header(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The decoded digest of a base64 `value`, if it is one of this
    /// algorithm.
    fn decode(self, value: &str) -> Option<Vec<u8>> {
        base64_decode(value).filter(|d| d.len() == self.digest_len())
    }
}

/// The checksum fields of a write's input (header values, or POST Object
/// form fields) and the algorithm s3s read (from `x-amz-checksum-algorithm`
/// or the trailer's name; `x-amz-sdk-checksum-algorithm` is read from the
/// headers).
#[derive(Default)]
pub(super) struct Sent<'a> {
    pub(super) values: [Option<&'a str>; 5],
    pub(super) sdk_algorithm: Option<&'a str>,
}

/// The [`Sent`] of a write input `$i` (PutObject and UploadPart share these
/// field names).
macro_rules! sent_of {
    ($i:expr) => {
        $crate::gateway::checksums::Sent {
            values: [
                $i.checksum_crc32.as_deref(),
                $i.checksum_crc32c.as_deref(),
                $i.checksum_crc64nvme.as_deref(),
                $i.checksum_sha1.as_deref(),
                $i.checksum_sha256.as_deref(),
            ],
            sdk_algorithm: $i.checksum_algorithm.as_ref().map(|a| a.as_str()),
        }
    };
}
pub(super) use sent_of;

/// Where the expected value comes from.
enum Expected {
    /// Sent before the body (header or form field), already decoded.
    Value(Vec<u8>),
    /// Nothing sent: the checksum is computed (a part of an upload that
    /// asked for one).
    Computed,
    /// An `aws-chunked` trailer, read once the body has ended.
    Trailer(TrailingHeaders),
}

/// How the check of a body ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Not finished (or nothing to check).
    Pending,
    /// The body matched; the base64 value to echo.
    Verified(String),
    /// The body did not match the value sent.
    Mismatch,
    /// The trailer's value is not a checksum of this algorithm.
    Invalid,
    /// `x-amz-trailer` announced a trailer the body did not carry.
    MissingTrailer,
}

/// The result of a body's checksum check, read once the backend is done
/// with the body.
pub(super) struct Check {
    algorithm: Option<Algorithm>,
    outcome: Arc<Mutex<Outcome>>,
    slot: ChecksumSlot,
}

impl Check {
    fn outcome(&self) -> Outcome {
        self.outcome.lock().map_or(Outcome::Pending, |o| o.clone())
    }

    /// The refusal if the body failed its checksum.
    fn refusal(&self) -> Option<S3Error> {
        let a = self.algorithm?;
        match self.outcome() {
            Outcome::Pending | Outcome::Verified(_) => None,
            Outcome::Mismatch => Some(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                a.name()
            )),
            Outcome::Invalid => Some(s3_error!(
                InvalidRequest,
                "Value for {} trailing header is invalid.",
                a.header()
            )),
            Outcome::MissingTrailer => Some(s3_error!(
                InvalidRequest,
                "The {} trailer announced by x-amz-trailer was not sent.",
                a.header()
            )),
        }
    }

    /// The error of a failed write: a checksum failure wins over the
    /// `otherwise` error (a `Content-MD5` mismatch or the backend's).
    pub(super) fn error_or(&self, otherwise: S3Error) -> S3Error {
        self.refusal().unwrap_or(otherwise)
    }

    /// The verified checksum, to echo in the response (empty if none was
    /// sent).
    pub(super) fn verified(&self) -> Checksum {
        let mut c = Checksum::default();
        if let (Some(a), Outcome::Verified(v)) = (self.algorithm, self.outcome()) {
            *a.field(&mut c) = Some(v);
        }
        c
    }

    /// The slot the verified checksum is put in when the body ends (for
    /// the backend to store).
    pub(super) fn slot(&self) -> ChecksumSlot {
        self.slot.clone()
    }
}

/// Which checksum, if any, a write announces, from its input `sent`, its
/// headers (`x-amz-trailer`) and s3s's trailer handle. Refuses (before
/// anything is read) a malformed or ambiguous announcement.
fn announced(
    sent: &Sent<'_>,
    headers: &http::HeaderMap,
    trailers: Option<&TrailingHeaders>,
) -> S3Result<Option<(Algorithm, Expected)>> {
    let mut found: Option<(Algorithm, Expected)> = None;
    let mut many = false;
    for (a, v) in Algorithm::ALL.into_iter().zip(sent.values) {
        let Some(v) = v else { continue };
        let digest = a.decode(v).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Value for {} header is invalid.",
                a.header()
            )
        })?;
        many |= found.is_some();
        found = Some((a, Expected::Value(digest)));
    }
    if let Some(t) = headers.get("x-amz-trailer") {
        let name = t.to_str().unwrap_or_default();
        let a = Algorithm::from_header(name).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "x-amz-trailer: {:?} is not a checksum trailer (x-amz-checksum-*)",
                name
            )
        })?;
        let handle = trailers.cloned().ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "x-amz-trailer needs an aws-chunked body with trailers (x-amz-content-sha256: STREAMING-*-TRAILER)"
            )
        })?;
        many |= found.is_some();
        found = Some((a, Expected::Trailer(handle)));
    }
    if many {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    let sdk_header = headers
        .get("x-amz-sdk-checksum-algorithm")
        .map(|v| v.to_str().unwrap_or_default());
    for name in [sent.sdk_algorithm, sdk_header].into_iter().flatten() {
        let asked = Algorithm::from_name(name).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Value for x-amz-sdk-checksum-algorithm header is invalid."
            )
        })?;
        // An algorithm named without a value asks for nothing to check.
        if found.as_ref().is_some_and(|(a, _)| *a != asked) {
            return Err(s3_error!(
                InvalidRequest,
                "x-amz-sdk-checksum-algorithm: {} does not match the checksum sent",
                asked.name()
            ));
        }
    }
    Ok(found)
}

/// Wraps `body` in the check of the checksum the write announces (if any).
/// The backend must read the returned stream to its end before committing
/// (every backend does: a stream ending in an error stores nothing).
pub(super) fn check(
    body: ByteStream,
    sent: &Sent<'_>,
    headers: &http::HeaderMap,
    trailers: Option<&TrailingHeaders>,
) -> S3Result<(ByteStream, Check)> {
    check_part(body, sent, headers, trailers, None)
}

/// [`check`] for a part of an upload created with the algorithm `asked`:
/// a checksum of another algorithm is refused (`InvalidRequest`, as S3
/// answers), and without one sent the part's is computed.
pub(super) fn check_part(
    body: ByteStream,
    sent: &Sent<'_>,
    headers: &http::HeaderMap,
    trailers: Option<&TrailingHeaders>,
    asked: Option<&str>,
) -> S3Result<(ByteStream, Check)> {
    let outcome = Arc::new(Mutex::new(Outcome::Pending));
    let slot = ChecksumSlot::default();
    let asked = asked.and_then(Algorithm::from_name);
    let found = match (announced(sent, headers, trailers)?, asked) {
        (Some((a, _)), Some(want)) if a != want => {
            return Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            want.name().to_ascii_lowercase(),
            a.name().to_ascii_lowercase()
        ))
        }
        (Some(f), _) => Some(f),
        (None, Some(want)) => Some((want, Expected::Computed)),
        (None, None) => None,
    };
    let Some((algorithm, expected)) = found else {
        let check = Check {
            algorithm: None,
            outcome,
            slot,
        };
        return Ok((body, check));
    };
    let stream = Checked {
        inner: body,
        algorithm,
        hasher: Some(algorithm.hasher()),
        expected,
        outcome: Arc::clone(&outcome),
        slot: slot.clone(),
    };
    let check = Check {
        algorithm: Some(algorithm),
        outcome,
        slot,
    };
    Ok((Box::pin(stream), check))
}

/// A body hashed as it streams, checked when it ends.
struct Checked {
    inner: ByteStream,
    algorithm: Algorithm,
    /// `None` once the body has ended.
    hasher: Option<ChecksumHasher>,
    expected: Expected,
    outcome: Arc<Mutex<Outcome>>,
    slot: ChecksumSlot,
}

impl Checked {
    /// The outcome of the finished body, hashed to `got` (base64).
    fn judge(&self, got: String) -> Outcome {
        let value = match &self.expected {
            Expected::Value(v) => v.clone(),
            Expected::Computed => return Outcome::Verified(got),
            Expected::Trailer(t) => {
                let header = self.algorithm.header();
                let sent = t.read(|h| h.get(header).map(|v| v.to_str().map(str::to_owned)));
                match sent.flatten() {
                    None => return Outcome::MissingTrailer,
                    Some(Err(_)) => return Outcome::Invalid,
                    Some(Ok(v)) => match self.algorithm.decode(&v) {
                        Some(d) => d,
                        None => return Outcome::Invalid,
                    },
                }
            }
        };
        if base64_decode(&got).is_some_and(|g| g == value) {
            Outcome::Verified(got)
        } else {
            Outcome::Mismatch
        }
    }
}

impl Stream for Checked {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(hasher) = this.hasher.as_mut() else {
            return Poll::Ready(None);
        };
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                let mut sum = this.hasher.take().map(ChecksumHasher::finalize);
                let got = sum
                    .as_mut()
                    .and_then(|s| this.algorithm.field(s).take())
                    .unwrap_or_default();
                let outcome = this.judge(got);
                let ok = matches!(outcome, Outcome::Verified(_));
                if let Outcome::Verified(v) = &outcome {
                    this.slot.set(ObjectChecksum {
                        algorithm: this.algorithm.name().to_owned(),
                        value: v.clone(),
                        composite: false,
                    });
                }
                if let Ok(mut o) = this.outcome.lock() {
                    *o = outcome;
                }
                if ok {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} checksum check failed", this.algorithm.name()),
                    ))))
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, std::io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures::stream::iter(items))
    }

    async fn drain(mut s: ByteStream) -> Result<Vec<u8>, std::io::Error> {
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    /// The value of `data` under `a`, base64, computed by s3s's hashers.
    fn value(a: Algorithm, data: &[u8]) -> String {
        let mut h = a.hasher();
        h.update(data);
        let mut c = h.finalize();
        a.field(&mut c).take().unwrap_or_default()
    }

    fn sent(a: Algorithm, v: &str) -> Sent<'_> {
        let mut s = Sent::default();
        if let Some(i) = Algorithm::ALL.iter().position(|x| *x == a) {
            s.values[i] = Some(v);
        }
        s
    }

    /// Every algorithm: the right value passes and is echoed; a body
    /// altered in flight (same length) fails the stream and is `BadDigest`
    /// naming the algorithm.
    #[tokio::test]
    async fn each_algorithm_verifies_and_catches_a_tampered_body() {
        let headers = http::HeaderMap::new();
        for a in Algorithm::ALL {
            let v = value(a, b"hello world");
            let (s, verdict) = check(body(&[b"hello ", b"world"]), &sent(a, &v), &headers, None)
                .expect("announced");
            assert_eq!(drain(s).await.expect("verified"), b"hello world");
            assert_eq!(a.field(&mut verdict.verified()).clone(), Some(v.clone()));

            let (s, verdict) =
                check(body(&[b"hello ", b"w0rld"]), &sent(a, &v), &headers, None).expect("ok");
            assert!(drain(s).await.is_err(), "{a:?}: a tampered body must fail");
            let e = verdict.error_or(s3_error!(InternalError, "aborted"));
            assert_eq!(e.code().as_str(), "BadDigest");
            assert!(e.message().unwrap_or_default().contains(a.name()));
            assert_eq!(a.field(&mut verdict.verified()).clone(), None);
        }
    }

    #[test]
    fn malformed_or_ambiguous_announcements_are_refused() {
        let headers = http::HeaderMap::new();
        let crc = value(Algorithm::Crc32, b"x");
        let sha = value(Algorithm::Sha256, b"x");
        for bad in [
            sent(Algorithm::Crc32, "not base64!"),
            // A SHA-256 value where a CRC32 is announced (wrong length).
            sent(Algorithm::Crc32, &sha),
            Sent {
                values: [Some(&crc), None, None, None, Some(&sha)],
                sdk_algorithm: None,
            },
            Sent {
                sdk_algorithm: Some("SHA256"),
                ..sent(Algorithm::Crc32, &crc)
            },
            Sent {
                sdk_algorithm: Some("MD4"),
                ..Sent::default()
            },
        ] {
            let e = announced(&bad, &headers, None).err().expect("refused");
            assert_eq!(e.code().as_str(), "InvalidRequest");
        }
        // A trailer named without an aws-chunked body to carry it.
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-amz-trailer",
            http::HeaderValue::from_static("x-amz-checksum-crc32"),
        );
        assert!(announced(&Sent::default(), &h, None).is_err());
        h.insert(
            "x-amz-trailer",
            http::HeaderValue::from_static("x-amz-meta-x"),
        );
        assert!(announced(&Sent::default(), &h, None).is_err());
    }

    /// `x-amz-sdk-checksum-algorithm` alone (no value sent) checks nothing
    /// and passes the body unchanged.
    #[tokio::test]
    async fn an_algorithm_without_a_value_checks_nothing() {
        let s = Sent {
            sdk_algorithm: Some("CRC32"),
            ..Sent::default()
        };
        let (b, verdict) = check(body(&[b"abc"]), &s, &http::HeaderMap::new(), None).expect("ok");
        assert_eq!(drain(b).await.expect("passes"), b"abc");
        assert_eq!(verdict.verified(), Checksum::default());
    }
}
