//! Server-side encryption headers: answered truthfully, never ignored.
//!
//! Every object is encrypted at rest (its chunks are sealed with AES-256-GCM
//! before they leave the replica), so SSE-S3 (`x-amz-server-side-encryption:
//! AES256`) is true whether or not a client asks for it, and the gateway says
//! so on writes and reads. SSE-C (a key the client sends with every request)
//! and SSE-KMS are not implemented; a request asking for either is refused
//! with `NotImplemented` before anything is stored or served. Accepting and
//! dropping them would store an object "under a customer key" that anyone
//! with read access could then read without it.

use s3s::dto::ServerSideEncryption;
use s3s::{s3_error, S3Result};

/// Whether request input `$i` carries an SSE-C header (its three
/// `sse_customer_*` fields).
macro_rules! customer_key {
    ($i:expr) => {
        $i.sse_customer_algorithm.is_some()
            || $i.sse_customer_key.is_some()
            || $i.sse_customer_key_md5.is_some()
    };
}
pub(crate) use customer_key;

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
            customer_key: $crate::sse::customer_key!($i),
            kms: $crate::sse::kms!($i),
        }
    };
}
pub(crate) use asked_of;

/// What a request asks of server-side encryption.
#[derive(Default)]
pub(crate) struct Asked<'a> {
    /// `x-amz-server-side-encryption`.
    pub(crate) sse: Option<&'a ServerSideEncryption>,
    /// Any `x-amz-server-side-encryption-customer-*` header (or the copy
    /// source's).
    pub(crate) customer_key: bool,
    /// Any `x-amz-server-side-encryption-aws-kms-*` or bucket-key header.
    pub(crate) kms: bool,
}

/// Refuses what the gateway does not implement (SSE-C, SSE-KMS, anything
/// but `AES256`).
pub(crate) fn refuse_unsupported(asked: &Asked<'_>) -> S3Result<()> {
    if asked.customer_key {
        return Err(s3_error!(
            NotImplemented,
            "SSE-C (customer-provided encryption keys) is not supported; every object is encrypted at rest (AES256) without it"
        ));
    }
    if asked.kms {
        return Err(s3_error!(
            NotImplemented,
            "SSE-KMS is not supported; every object is encrypted at rest (AES256)"
        ));
    }
    match asked.sse.map(ServerSideEncryption::as_str) {
        None | Some(ServerSideEncryption::AES256) => Ok(()),
        Some(other) => Err(s3_error!(
            NotImplemented,
            "x-amz-server-side-encryption: {} is not supported; every object is encrypted at rest (AES256)",
            other
        )),
    }
}

/// The encryption every stored object has, for responses.
pub(crate) fn at_rest() -> Option<ServerSideEncryption> {
    Some(ServerSideEncryption::from_static(
        ServerSideEncryption::AES256,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sse_s3_or_nothing_passes() {
        let aes = ServerSideEncryption::from_static(ServerSideEncryption::AES256);
        let kms = ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS);
        assert!(refuse_unsupported(&Asked::default()).is_ok());
        assert!(refuse_unsupported(&Asked {
            sse: Some(&aes),
            ..Asked::default()
        })
        .is_ok());
        for refused in [
            Asked {
                sse: Some(&kms),
                ..Asked::default()
            },
            Asked {
                customer_key: true,
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
    }
}
