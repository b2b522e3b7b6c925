//! Server-side encryption headers: answered truthfully, never ignored.
//!
//! * **SSE-S3** (`x-amz-server-side-encryption: AES256`). Every object is
//!   encrypted at rest (its chunks are sealed with AES-256-GCM before they
//!   leave the gateway), so it is true whether or not a client asks for it,
//!   and the gateway says so on writes and reads.
//! * **SSE-C** (`x-amz-server-side-encryption-customer-*`: a key the
//!   client sends with every request). The object is sealed under a scope
//!   key derived from the client's key and a random salt
//!   (`stratus_chunk::CustomerKey`); only a salt and a keyed check are
//!   stored, so without the key nobody, the operator included, can read it.
//!   Every read (GET, HEAD, part and range reads, copy sources) needs the
//!   key: none is 400 `InvalidRequest`, another is 403 `AccessDenied`, and
//!   a key for an object stored without one is 400 `InvalidRequest`. The
//!   algorithm must be `AES256`, the key 32 bytes (base64) and its
//!   `-key-MD5` header present and right (400 `InvalidArgument`). AWS
//!   requires HTTPS for SSE-C; this gateway accepts it over plain HTTP too:
//!   put TLS in front of it, or the key crosses the network in clear.
//! * **SSE-KMS** is not implemented: a request asking for it is refused
//!   with `NotImplemented` before anything is stored or served.

use md5::{Digest, Md5};
use s3s::dto::ServerSideEncryption;
use s3s::{s3_error, S3Error, S3Result};

use crate::backend::{CustomerKey, CustomerSeal};
use crate::gateway::base64_decode;

/// The one SSE-C algorithm S3 has.
pub(crate) const AES256: &str = "AES256";

/// The SSE-C headers of a request (or of its copy source).
#[derive(Default, Clone, Copy)]
pub(crate) struct CustomerHeaders<'a> {
    /// `...-customer-algorithm`.
    pub(crate) algorithm: Option<&'a str>,
    /// `...-customer-key` (base64).
    pub(crate) key: Option<&'a str>,
    /// `...-customer-key-MD5` (base64).
    pub(crate) key_md5: Option<&'a str>,
}

impl CustomerHeaders<'_> {
    /// Whether any of them was sent.
    pub(crate) fn any(&self) -> bool {
        self.algorithm.is_some() || self.key.is_some() || self.key_md5.is_some()
    }
}

/// The [`CustomerHeaders`] of request input `$i` (its `sse_customer_*`).
macro_rules! customer_of {
    ($i:expr) => {
        $crate::sse::CustomerHeaders {
            algorithm: $i.sse_customer_algorithm.as_deref(),
            key: $i.sse_customer_key.as_deref(),
            key_md5: $i.sse_customer_key_md5.as_deref(),
        }
    };
}
pub(crate) use customer_of;

/// The [`CustomerHeaders`] of the copy source of input `$i`.
macro_rules! copy_source_customer_of {
    ($i:expr) => {
        $crate::sse::CustomerHeaders {
            algorithm: $i.copy_source_sse_customer_algorithm.as_deref(),
            key: $i.copy_source_sse_customer_key.as_deref(),
            key_md5: $i.copy_source_sse_customer_key_md5.as_deref(),
        }
    };
}
pub(crate) use copy_source_customer_of;

/// A customer key as a request sent it, checked.
pub(crate) struct SentKey {
    /// The key.
    pub(crate) key: CustomerKey,
    /// Its base64 MD5, echoed in responses.
    pub(crate) md5: String,
}

impl SentKey {
    /// Refuses a version that this key does not open (none given is
    /// checked by [`check_read`]).
    pub(crate) fn opens(&self, seal: &CustomerSeal) -> bool {
        seal.opens_with(&self.key)
    }
}

/// The customer key of `h`, checked as S3 does; `None` when no SSE-C header
/// was sent.
pub(crate) fn customer_key(h: CustomerHeaders<'_>) -> S3Result<Option<SentKey>> {
    if !h.any() {
        return Ok(None);
    }
    let Some(algorithm) = h.algorithm else {
        return Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."
        ));
    };
    if algorithm != AES256 {
        return Err(s3_error!(
            InvalidArgument,
            "The encryption algorithm {algorithm:?} is not supported; SSE-C takes AES256."
        ));
    }
    let Some(key) = h.key else {
        return Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key."
        ));
    };
    let bytes: [u8; 32] = base64_decode(key)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The secret key was invalid for the specified algorithm (it must be 32 bytes, base64)."
            )
        })?;
    let Some(sent_md5) = h.key_md5 else {
        return Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key."
        ));
    };
    let md5 = base64_encode(&Md5::digest(bytes));
    if sent_md5 != md5 {
        return Err(s3_error!(
            InvalidArgument,
            "The calculated MD5 hash of the key did not match the hash that was provided."
        ));
    }
    Ok(Some(SentKey {
        key: CustomerKey::new(bytes),
        md5,
    }))
}

/// Checks a read of a version with seal `seal` (none: not SSE-C) by a
/// request that sent `sent`, as S3 answers: no key for an SSE-C version,
/// another key, or a key for a version without one are refused.
pub(crate) fn check_read(seal: Option<&CustomerSeal>, sent: Option<&SentKey>) -> S3Result<()> {
    match (seal, sent) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(key_required()),
        (None, Some(_)) => Err(key_not_applicable()),
        (Some(seal), Some(k)) if k.opens(seal) => Ok(()),
        (Some(_), Some(_)) => Err(key_mismatch()),
    }
}

/// Checks a write into a multipart upload sealed with `seal` (none: not
/// SSE-C) by a request that sent `sent`: every refusal is 400 (it is not a
/// read: no `AccessDenied`).
pub(crate) fn check_part_key(seal: Option<&CustomerSeal>, sent: Option<&SentKey>) -> S3Result<()> {
    match (seal, sent) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(s3_error!(
            InvalidRequest,
            "The multipart upload was initiated with a customer-provided encryption key; the request must carry it."
        )),
        (None, Some(_)) => Err(key_not_applicable()),
        (Some(seal), Some(k)) if k.opens(seal) => Ok(()),
        (Some(_), Some(_)) => Err(part_key_mismatch()),
    }
}

/// An SSE-C version read without its key (S3's answer).
pub(crate) fn key_required() -> S3Error {
    s3_error!(
        InvalidRequest,
        "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
    )
}

/// An SSE-C version read with another key. AWS answers 403 `AccessDenied`
/// (ceph/s3-tests expects Ceph's 400 here; this follows AWS).
pub(crate) fn key_mismatch() -> S3Error {
    s3_error!(
        AccessDenied,
        "The customer-provided encryption key does not match the object's."
    )
}

/// A part sent with another key than its multipart upload's (S3's 400).
pub(crate) fn part_key_mismatch() -> S3Error {
    s3_error!(
        InvalidRequest,
        "The provided encryption parameters did not match the ones used originally."
    )
}

/// A customer key sent for a version stored without one (S3's answer).
pub(crate) fn key_not_applicable() -> S3Error {
    s3_error!(
        InvalidRequest,
        "The encryption parameters are not applicable to this object."
    )
}

/// Whether request input `$i` asks for SSE-KMS (a key id, a context or a
/// bucket key).
macro_rules! kms {
    ($i:expr) => {
        $i.ssekms_key_id.is_some()
            || $i.ssekms_encryption_context.is_some()
            || $i.bucket_key_enabled == Some(true)
    };
}
pub(crate) use kms;

/// The [`Asked`] of a write's input `$i` (put and multipart uploads share
/// these field names).
macro_rules! asked_of {
    ($i:expr) => {
        $crate::sse::Asked {
            sse: $i.server_side_encryption.as_ref(),
            customer: $crate::sse::customer_of!($i).any(),
            kms: $crate::sse::kms!($i),
        }
    };
}
pub(crate) use asked_of;

/// What a write asks of server-side encryption.
#[derive(Default)]
pub(crate) struct Asked<'a> {
    /// `x-amz-server-side-encryption`.
    pub(crate) sse: Option<&'a ServerSideEncryption>,
    /// Any `x-amz-server-side-encryption-customer-*` header.
    pub(crate) customer: bool,
    /// Any `x-amz-server-side-encryption-aws-kms-*` or bucket-key header.
    pub(crate) kms: bool,
}

/// Refuses what the gateway does not implement (SSE-KMS, anything but
/// `AES256`) and what S3 refuses (SSE-S3 and SSE-C together).
pub(crate) fn refuse_unsupported(asked: &Asked<'_>) -> S3Result<()> {
    if asked.kms {
        return Err(s3_error!(
            NotImplemented,
            "SSE-KMS is not supported; every object is encrypted at rest (AES256)"
        ));
    }
    match asked.sse.map(ServerSideEncryption::as_str) {
        None => Ok(()),
        Some(ServerSideEncryption::AES256) if asked.customer => Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        )),
        Some(ServerSideEncryption::AES256) => Ok(()),
        Some(other) => Err(s3_error!(
            NotImplemented,
            "x-amz-server-side-encryption: {} is not supported; every object is encrypted at rest (AES256)",
            other
        )),
    }
}

/// Refuses `x-amz-server-side-encryption` on a read (GET, HEAD), as S3
/// does: it is a write header.
pub(crate) fn refuse_on_read(headers: &http::HeaderMap) -> S3Result<()> {
    if headers.contains_key("x-amz-server-side-encryption") {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption is not applicable to a read"
        ));
    }
    if headers.contains_key("x-amz-server-side-encryption-aws-kms-key-id") {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption-aws-kms-key-id is not applicable to a read"
        ));
    }
    Ok(())
}

/// The `x-amz-server-side-encryption` of a response about a version sealed
/// with `seal`: AES256 (every object is encrypted at rest) unless it is
/// SSE-C, which S3 answers with the customer headers instead.
pub(crate) fn at_rest_of(seal: Option<&CustomerSeal>) -> Option<ServerSideEncryption> {
    match seal {
        Some(_) => None,
        None => at_rest(),
    }
}

/// The encryption every stored object has, for responses.
pub(crate) fn at_rest() -> Option<ServerSideEncryption> {
    Some(ServerSideEncryption::from_static(
        ServerSideEncryption::AES256,
    ))
}

/// The `(algorithm, key MD5)` headers of a response to a request that sent
/// `sent`.
pub(crate) fn echo(sent: Option<&SentKey>) -> (Option<String>, Option<String>) {
    match sent {
        Some(k) => (Some(AES256.to_owned()), Some(k.md5.clone())),
        None => (None, None),
    }
}

/// [`echo`] as response headers (for outputs without the fields).
pub(crate) fn echo_headers(headers: &mut http::HeaderMap, sent: Option<&SentKey>) {
    if let Some(k) = sent {
        headers.insert(
            "x-amz-server-side-encryption-customer-algorithm",
            http::HeaderValue::from_static(AES256),
        );
        if let Ok(v) = http::HeaderValue::from_str(&k.md5) {
            headers.insert("x-amz-server-side-encryption-customer-key-md5", v);
        }
    }
}

/// Standard base64 (with padding).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The key and MD5 AWS's documentation and S3 clients use in examples.
    const KEY: &str = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=";
    const MD5: &str = "DWygnHRtgiJ77HCm+1rvHw==";
    const OTHER: &str = "6b+WOZ1T3cqZMxgThRcXAQBrS5mXKdDUphvpxptl9/4=";
    const OTHER_MD5: &str = "arxBvwY2V4SiOne6yppVPQ==";

    fn h<'a>(a: Option<&'a str>, k: Option<&'a str>, m: Option<&'a str>) -> CustomerHeaders<'a> {
        CustomerHeaders {
            algorithm: a,
            key: k,
            key_md5: m,
        }
    }

    fn code(r: S3Result<Option<SentKey>>) -> String {
        r.err()
            .map(|e| e.code().as_str().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn a_good_key_passes_and_its_md5_is_echoed() {
        assert!(customer_key(CustomerHeaders::default())
            .expect("none")
            .is_none());
        let k = customer_key(h(Some(AES256), Some(KEY), Some(MD5)))
            .expect("ok")
            .expect("some");
        assert_eq!(k.md5, MD5);
        assert_eq!(echo(Some(&k)), (Some(AES256.into()), Some(MD5.into())));
    }

    #[test]
    fn bad_sse_c_headers_are_refused() {
        for bad in [
            h(None, Some(KEY), Some(MD5)),
            h(Some("AES192"), Some(KEY), Some(MD5)),
            h(Some(AES256), None, None),
            h(Some(AES256), Some(KEY), None),
            h(Some(AES256), Some(KEY), Some("AAAAAAAAAAAAAAAAAAAAAA==")),
            h(Some(AES256), Some(KEY), Some(OTHER_MD5)),
            h(Some(AES256), Some("c2hvcnQ="), Some(MD5)),
            h(Some(AES256), Some("!!!"), Some(MD5)),
        ] {
            assert_eq!(code(customer_key(bad)), "InvalidArgument");
        }
    }

    #[test]
    fn reads_need_exactly_the_objects_key() {
        let a = customer_key(h(Some(AES256), Some(KEY), Some(MD5)))
            .expect("ok")
            .expect("some");
        let b = customer_key(h(Some(AES256), Some(OTHER), Some(OTHER_MD5)))
            .expect("ok")
            .expect("some");
        let seal = a.key.seal([4; 32]);
        assert!(check_read(Some(&seal), Some(&a)).is_ok());
        assert!(check_read(None, None).is_ok());
        let code = |r: S3Result<()>| r.expect_err("refused").code().as_str().to_owned();
        assert_eq!(code(check_read(Some(&seal), None)), "InvalidRequest");
        assert_eq!(code(check_read(Some(&seal), Some(&b))), "AccessDenied");
        assert_eq!(code(check_read(None, Some(&a))), "InvalidRequest");
    }

    #[test]
    fn parts_and_completions_need_the_uploads_key_and_say_400() {
        let a = customer_key(h(Some(AES256), Some(KEY), Some(MD5)))
            .expect("ok")
            .expect("some");
        let b = customer_key(h(Some(AES256), Some(OTHER), Some(OTHER_MD5)))
            .expect("ok")
            .expect("some");
        let seal = a.key.seal([4; 32]);
        assert!(check_part_key(Some(&seal), Some(&a)).is_ok());
        assert!(check_part_key(None, None).is_ok());
        for r in [
            check_part_key(Some(&seal), None),
            check_part_key(Some(&seal), Some(&b)),
            check_part_key(None, Some(&a)),
        ] {
            let e = r.expect_err("refused");
            assert_eq!(e.code().as_str(), "InvalidRequest");
        }
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn kms_and_unknown_algorithms_are_not_implemented() {
        let aes = ServerSideEncryption::from_static(ServerSideEncryption::AES256);
        let kms = ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS);
        assert!(refuse_unsupported(&Asked::default()).is_ok());
        assert!(refuse_unsupported(&Asked {
            sse: Some(&aes),
            ..Asked::default()
        })
        .is_ok());
        assert!(refuse_unsupported(&Asked {
            customer: true,
            ..Asked::default()
        })
        .is_ok());
        for refused in [
            Asked {
                sse: Some(&kms),
                ..Asked::default()
            },
            Asked {
                sse: Some(&aes),
                kms: true,
                ..Asked::default()
            },
        ] {
            let e = refuse_unsupported(&refused).expect_err("refused");
            assert_eq!(e.code(), &s3s::S3ErrorCode::NotImplemented);
        }
        let both = refuse_unsupported(&Asked {
            sse: Some(&aes),
            customer: true,
            ..Asked::default()
        })
        .expect_err("refused");
        assert_eq!(both.code(), &s3s::S3ErrorCode::InvalidArgument);
    }
}
