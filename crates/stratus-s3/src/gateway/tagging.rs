//! Bucket tags: Put/Get/DeleteBucketTagging, stored as the bucket's
//! tagging document ([`BucketTags`], JSON). S3's limits: at most
//! [`MAX_TAGS`] tags, keys of 1 to [`MAX_TAG_KEY`] characters not starting
//! with `aws:`, values of at most [`MAX_TAG_VALUE`] characters, each key
//! once; anything else is `InvalidTag`.

use std::collections::BTreeSet;

use s3s::dto::{
    DeleteBucketTaggingInput, DeleteBucketTaggingOutput, GetBucketTaggingInput,
    GetBucketTaggingOutput, PutBucketTaggingInput, PutBucketTaggingOutput, Tag,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, BucketConfigKind, KeyStore};

/// Most tags on a bucket.
pub const MAX_TAGS: usize = 50;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY: usize = 128;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE: usize = 256;

/// A bucket's tags, in the order they were given; stored as
/// `{"tags": [[key, value], ...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketTags {
    /// `(key, value)` pairs, keys unique.
    pub tags: Vec<(String, String)>,
}

impl BucketTags {
    /// The stored document.
    pub fn to_doc(&self) -> String {
        serde_json::json!({ "tags": self.tags }).to_string()
    }

    /// Reads a stored document.
    pub fn from_doc(doc: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(doc).map_err(|e| e.to_string())?;
        let tags = v
            .get("tags")
            .cloned()
            .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
        let tags = serde_json::from_value(tags).map_err(|e| e.to_string())?;
        Ok(BucketTags { tags })
    }

    /// Checks S3's limits; the message says which one failed.
    pub fn validate(&self) -> Result<(), String> {
        if self.tags.len() > MAX_TAGS {
            return Err(format!(
                "a bucket has at most {MAX_TAGS} tags; {} were given",
                self.tags.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for (k, v) in &self.tags {
            let n = k.chars().count();
            if n == 0 || n > MAX_TAG_KEY {
                return Err(format!(
                    "a tag key has 1 to {MAX_TAG_KEY} characters; {k:?} has {n}"
                ));
            }
            if k.starts_with("aws:") {
                return Err(format!(
                    "tag keys starting with \"aws:\" are reserved: {k:?}"
                ));
            }
            if v.chars().count() > MAX_TAG_VALUE {
                return Err(format!(
                    "the value of tag {k:?} is longer than {MAX_TAG_VALUE} characters"
                ));
            }
            if !seen.insert(k.as_str()) {
                return Err(format!("tag key {k:?} is given more than once"));
            }
        }
        Ok(())
    }
}

/// The S3 tag set as checked [`BucketTags`].
pub(crate) fn tags_from(set: &[Tag]) -> S3Result<BucketTags> {
    let mut tags = Vec::with_capacity(set.len().min(MAX_TAGS + 1));
    for t in set {
        let (Some(k), Some(v)) = (&t.key, &t.value) else {
            return Err(s3_error!(MalformedXML, "a Tag needs a Key and a Value"));
        };
        tags.push((k.clone(), v.clone()));
        if tags.len() > MAX_TAGS {
            break;
        }
    }
    let tags = BucketTags { tags };
    tags.validate().map_err(|m| s3_error!(InvalidTag, "{m}"))?;
    Ok(tags)
}

pub(super) async fn put_bucket_tagging<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = req.input;
    let tags = tags_from(&input.tagging.tag_set)?;
    let doc = tags.to_doc();
    gw.backend
        .put_bucket_config(&tenant, &input.bucket, BucketConfigKind::Tagging, Some(doc))
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub(super) async fn get_bucket_tagging<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let tenant = gw.tenant(&req)?;
    let doc = gw
        .backend
        .get_bucket_config(&tenant, &req.input.bucket, BucketConfigKind::Tagging)
        .await
        .map_err(to_s3_error)?
        .ok_or_else(|| s3_error!(NoSuchTagSet))?;
    let tags = BucketTags::from_doc(&doc)
        .map_err(|e| s3_error!(InternalError, "the stored bucket tags are unreadable: {e}"))?;
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: tags
            .tags
            .into_iter()
            .map(|(k, v)| Tag {
                key: Some(k),
                value: Some(v),
            })
            .collect(),
    }))
}

pub(super) async fn delete_bucket_tagging<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.backend
        .put_bucket_config(&tenant, &req.input.bucket, BucketConfigKind::Tagging, None)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use s3s::S3ErrorCode;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        }
    }

    fn code(set: &[Tag]) -> S3ErrorCode {
        tags_from(set).unwrap_err().code().clone()
    }

    #[test]
    fn s3_tag_limits_are_enforced() {
        let ok: Vec<Tag> = (0..MAX_TAGS).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(tags_from(&ok).unwrap().tags.len(), MAX_TAGS);
        let many: Vec<Tag> = (0..=MAX_TAGS).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(code(&many), S3ErrorCode::InvalidTag);
        assert_eq!(code(&[tag(&"k".repeat(129), "v")]), S3ErrorCode::InvalidTag);
        assert!(tags_from(&[tag(&"é".repeat(128), &"é".repeat(256))]).is_ok());
        assert_eq!(code(&[tag("k", &"v".repeat(257))]), S3ErrorCode::InvalidTag);
        assert_eq!(
            code(&[tag("k", "1"), tag("k", "2")]),
            S3ErrorCode::InvalidTag
        );
        assert_eq!(code(&[tag("", "v")]), S3ErrorCode::InvalidTag);
        assert_eq!(code(&[tag("aws:x", "v")]), S3ErrorCode::InvalidTag);
        let no_value = Tag {
            key: Some("k".into()),
            value: None,
        };
        assert_eq!(code(&[no_value]), S3ErrorCode::MalformedXML);
        let t = tags_from(&[tag("a", "1"), tag("b", "")]).unwrap();
        assert_eq!(BucketTags::from_doc(&t.to_doc()), Ok(t));
    }
}
