//! Bucket operations: create, delete, head, list, location, versioning.

use s3s::dto::{
    self, BucketVersioningStatus, CreateBucketInput, CreateBucketOutput, DeleteBucketInput,
    DeleteBucketOutput, GetBucketLocationInput, GetBucketLocationOutput, GetBucketVersioningInput,
    GetBucketVersioningOutput, HeadBucketInput, HeadBucketOutput, ListBucketsInput,
    ListBucketsOutput, PutBucketVersioningInput, PutBucketVersioningOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{owner, timestamp};
use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, BackendError, KeyStore, Versioning};

pub(super) async fn create_bucket<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    let bucket = &input.bucket;
    if let Err(why) = check_bucket_name(bucket) {
        return Err(s3_error!(InvalidBucketName, "{}", why));
    }
    let acl = super::acl_ops::create_bucket_acl(
        gw,
        &tenant,
        input.acl.as_ref().map(|a| a.as_str()),
        &crate::acl::grant_headers_of!(input, input.grant_write.as_deref()),
    )?;
    let constraint = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    let created = if input.object_lock_enabled_for_bucket == Some(true) {
        gw.backend.create_bucket_locked(&tenant, bucket).await
    } else {
        gw.backend.create_bucket(&tenant, bucket).await
    };
    match created {
        Ok(()) => {}
        // AWS's us-east-1 answers a CreateBucket of a bucket its caller
        // already owns with 200 (and changes nothing); other regions
        // answer BucketAlreadyOwnedByYou.
        Err(BackendError::BucketAlreadyOwnedByYou)
            if gw.region == "us-east-1" && matches!(constraint.as_str(), "" | "us-east-1") => {}
        Err(e) => return Err(to_s3_error(e)),
    }
    if let Some(doc) = acl {
        gw.backend
            .put_bucket_config(&tenant, bucket, crate::backend::BucketConfigKind::Acl, doc)
            .await
            .map_err(to_s3_error)?;
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{bucket}")),
    }))
}

/// Checks a new bucket's name against AWS's rules: 3–63 characters of
/// lower-case letters, digits, `.` and `-`; starting and ending with a letter
/// or digit; no `..`, `.-` or `-.`; not an IPv4 address; not starting with
/// `xn--`, `sthree-` or `amzn-s3-demo-`; not ending with `-s3alias`,
/// `--ol-s3` or `.mrap`. (Existing buckets are addressed by any name the
/// store accepted.)
pub(crate) fn check_bucket_name(name: &str) -> Result<(), String> {
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let why = if !(3..=63).contains(&name.len()) {
        "a bucket name is 3 to 63 characters long"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        "a bucket name holds only lower-case letters, digits, '.' and '-'"
    } else if !ends_ok(name.bytes().next()) || !ends_ok(name.bytes().last()) {
        "a bucket name starts and ends with a letter or digit"
    } else if name.contains("..") || name.contains(".-") || name.contains("-.") {
        "a bucket name has no '..', '.-' or '-.'"
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        "a bucket name is not an IP address"
    } else if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| name.starts_with(p))
        || ["-s3alias", "--ol-s3", ".mrap"]
            .iter()
            .any(|p| name.ends_with(p))
    {
        "a bucket name does not use a prefix or suffix AWS reserves (xn--, sthree-, -s3alias, --ol-s3, ...)"
    } else {
        return Ok(());
    };
    Err(format!("invalid bucket name {name:?}: {why}"))
}

pub(super) async fn delete_bucket<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.backend
        .delete_bucket(&tenant, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn head_bucket<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    // s3:ListBucket, as AWS: a bucket READ grant or policy opens it.
    let asked = crate::policy::Request {
        action: crate::policy::Action::ListBucket,
        key: None,
        prefix: None,
    };
    let tenant = super::readers::read_as(gw, &req, &req.input.bucket, asked).await?;
    gw.backend
        .head_bucket(&tenant, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(gw.region.clone()),
        ..Default::default()
    }))
}

pub(super) async fn list_buckets<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let tenant = gw.tenant(&req)?;
    let buckets = gw
        .backend
        .list_buckets(&tenant)
        .await
        .map_err(to_s3_error)?;
    let prefix = req.input.prefix.clone().unwrap_or_default();
    let buckets = buckets
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix))
        .map(|b| dto::Bucket {
            bucket_region: Some(gw.region.clone()),
            creation_date: Some(timestamp(b.created_ms)),
            name: Some(b.name),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner(&tenant)),
        prefix: req.input.prefix,
        ..Default::default()
    }))
}

pub(super) async fn get_bucket_location<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.backend
        .head_bucket(&tenant, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    // S3 reports us-east-1 as an empty constraint.
    let location_constraint =
        (gw.region != "us-east-1").then(|| dto::BucketLocationConstraint::from(gw.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}

pub(super) async fn get_bucket_versioning<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let tenant = gw.tenant(&req)?;
    let v = gw
        .backend
        .get_versioning(&tenant, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    let status = v.map(|v| {
        BucketVersioningStatus::from_static(match v {
            Versioning::Enabled => BucketVersioningStatus::ENABLED,
            Versioning::Suspended => BucketVersioningStatus::SUSPENDED,
        })
    });
    Ok(S3Response::new(GetBucketVersioningOutput {
        status,
        ..Default::default()
    }))
}

pub(super) async fn put_bucket_versioning<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let tenant = gw.tenant(&req)?;
    let v = match req
        .input
        .versioning_configuration
        .status
        .as_ref()
        .map(|s| s.as_str())
    {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "versioning status must be Enabled or Suspended"
            ))
        }
    };
    gw.backend
        .set_versioning(&tenant, &req.input.bucket, v)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}

#[cfg(test)]
mod tests {
    use super::check_bucket_name;

    #[test]
    fn bucket_names_follow_aws_rules() {
        for ok in [
            "abc",
            "my.bucket-1",
            "a1b",
            &"a".repeat(63),
            "xn-a",
            "a-s3alia",
        ] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Abc",
            "foo_bar",
            "-abc",
            "abc-",
            ".abc",
            "foo..bar",
            "foo.-bar",
            "foo-.bar",
            "192.168.5.4",
            "xn--abc",
            "sthree-abc",
            "abc-s3alias",
            "abc--ol-s3",
            "abc.mrap",
            "ab c",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
