//! Put/Get/DeleteBucketCors: the rules [`crate::cors`] applies.

use s3s::dto::{
    CORSRule, DeleteBucketCorsInput, DeleteBucketCorsOutput, GetBucketCorsInput,
    GetBucketCorsOutput, PutBucketCorsInput, PutBucketCorsOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, BucketConfigKind, KeyStore};
use crate::cors::{CorsConfig, CorsRule};

pub(super) async fn put_bucket_cors<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = req.input;
    let config = CorsConfig {
        rules: input
            .cors_configuration
            .cors_rules
            .into_iter()
            .map(|r| CorsRule {
                id: r.id,
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers: r.allowed_headers.unwrap_or_default(),
                expose_headers: r.expose_headers.unwrap_or_default(),
                max_age_seconds: r.max_age_seconds,
            })
            .collect(),
    };
    config
        .validate()
        .map_err(|e| s3_error!(InvalidRequest, "{}", e))?;
    let doc = serde_json::to_string(&config)
        .map_err(|e| s3_error!(InternalError, "CORS configuration: {}", e))?;
    gw.backend
        .put_bucket_config(&tenant, &input.bucket, BucketConfigKind::Cors, Some(doc))
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub(super) async fn get_bucket_cors<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let tenant = gw.tenant(&req)?;
    let doc = gw
        .backend
        .get_bucket_config(&tenant, &req.input.bucket, BucketConfigKind::Cors)
        .await
        .map_err(to_s3_error)?
        .ok_or_else(|| s3_error!(NoSuchCORSConfiguration))?;
    let config: CorsConfig = serde_json::from_str(&doc)
        .map_err(|e| s3_error!(InternalError, "stored CORS configuration: {}", e))?;
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let rules = config
        .rules
        .into_iter()
        .map(|r| CORSRule {
            allowed_headers: some(r.allowed_headers),
            allowed_methods: r.allowed_methods,
            allowed_origins: r.allowed_origins,
            expose_headers: some(r.expose_headers),
            id: r.id,
            max_age_seconds: r.max_age_seconds,
        })
        .collect();
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(rules),
    }))
}

pub(super) async fn delete_bucket_cors<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.backend
        .put_bucket_config(&tenant, &req.input.bucket, BucketConfigKind::Cors, None)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketCorsOutput {}))
}
