//! Put/Get/DeleteBucketEncryption: a bucket's default server-side
//! encryption, stored as a [`BucketConfigKind::Encryption`] document.
//!
//! Every object is encrypted at rest whatever the bucket says, so an
//! `AES256` (SSE-S3) default is true as stated: it is stored and answered
//! back. `aws:kms` (and `aws:kms:dsse`) defaults are refused with
//! `NotImplemented` (there is no KMS). A bucket without a document answers
//! `ServerSideEncryptionConfigurationNotFoundError`, as ceph/s3-tests
//! expects (AWS now reports an implicit AES256 default instead).

use s3s::dto::{
    DeleteBucketEncryptionInput, DeleteBucketEncryptionOutput, GetBucketEncryptionInput,
    GetBucketEncryptionOutput, PutBucketEncryptionInput, PutBucketEncryptionOutput,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, BucketConfigKind, KeyStore};

/// The stored document: the one default rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EncryptionDoc {
    /// `SSEAlgorithm` (only `AES256` is stored).
    algorithm: String,
    /// `BucketKeyEnabled`, as given (it changes nothing for SSE-S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bucket_key_enabled: Option<bool>,
}

/// The document of a configuration, or why it is refused.
fn doc_of(config: ServerSideEncryptionConfiguration) -> S3Result<EncryptionDoc> {
    let mut rules = config.rules.into_iter();
    let (Some(rule), None) = (rules.next(), rules.next()) else {
        return Err(s3_error!(
            MalformedXML,
            "a server-side encryption configuration has exactly one rule"
        ));
    };
    let Some(default) = rule.apply_server_side_encryption_by_default else {
        return Err(s3_error!(
            MalformedXML,
            "the rule has no ApplyServerSideEncryptionByDefault"
        ));
    };
    match default.sse_algorithm.as_str() {
        ServerSideEncryption::AES256 => {}
        ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE => {
            return Err(s3_error!(
                NotImplemented,
                "SSE-KMS is not supported; every object is encrypted at rest (AES256)"
            ))
        }
        other => {
            return Err(s3_error!(
                InvalidArgument,
                "SSEAlgorithm {other:?} is not one of AES256, aws:kms, aws:kms:dsse"
            ))
        }
    }
    if default.kms_master_key_id.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "KMSMasterKeyID is only allowed with SSEAlgorithm aws:kms"
        ));
    }
    Ok(EncryptionDoc {
        algorithm: ServerSideEncryption::AES256.to_owned(),
        bucket_key_enabled: rule.bucket_key_enabled,
    })
}

pub(super) async fn put_bucket_encryption<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = req.input;
    let doc = doc_of(input.server_side_encryption_configuration)?;
    let doc = serde_json::to_string(&doc)
        .map_err(|e| s3_error!(InternalError, "encryption configuration: {}", e))?;
    gw.backend
        .put_bucket_config(
            &tenant,
            &input.bucket,
            BucketConfigKind::Encryption,
            Some(doc),
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketEncryptionOutput {}))
}

pub(super) async fn get_bucket_encryption<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let tenant = gw.tenant(&req)?;
    let doc = gw
        .backend
        .get_bucket_config(&tenant, &req.input.bucket, BucketConfigKind::Encryption)
        .await
        .map_err(to_s3_error)?
        .ok_or_else(|| {
            s3_error!(
                ServerSideEncryptionConfigurationNotFoundError,
                "The server side encryption configuration was not found"
            )
        })?;
    let doc: EncryptionDoc = serde_json::from_str(&doc)
        .map_err(|e| s3_error!(InternalError, "stored encryption configuration: {}", e))?;
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
            rules: vec![ServerSideEncryptionRule {
                apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                    kms_master_key_id: None,
                    sse_algorithm: ServerSideEncryption::from(doc.algorithm),
                }),
                bucket_key_enabled: doc.bucket_key_enabled,
            }],
        }),
    }))
}

pub(super) async fn delete_bucket_encryption<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.backend
        .put_bucket_config(
            &tenant,
            &req.input.bucket,
            BucketConfigKind::Encryption,
            None,
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(alg: &'static str, kms: Option<&str>, n: usize) -> ServerSideEncryptionConfiguration {
        let rule = ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: kms.map(str::to_owned),
                sse_algorithm: ServerSideEncryption::from_static(alg),
            }),
            bucket_key_enabled: None,
        };
        ServerSideEncryptionConfiguration {
            rules: vec![rule; n],
        }
    }

    fn code(c: ServerSideEncryptionConfiguration) -> String {
        doc_of(c)
            .err()
            .map(|e| e.code().as_str().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn aes256_is_stored_and_kms_is_not_implemented() {
        let doc = doc_of(config("AES256", None, 1)).expect("AES256");
        assert_eq!(doc.algorithm, "AES256");
        assert_eq!(code(config("aws:kms", Some("k"), 1)), "NotImplemented");
        assert_eq!(code(config("aws:kms:dsse", None, 1)), "NotImplemented");
        assert_eq!(code(config("AES256", Some("k"), 1)), "InvalidArgument");
        assert_eq!(code(config("rot13", None, 1)), "InvalidArgument");
        assert_eq!(code(config("AES256", None, 0)), "MalformedXML");
        assert_eq!(code(config("AES256", None, 2)), "MalformedXML");
    }
}
