//! The filters of a lifecycle rule beyond its prefix: object tags (every
//! tag of the rule must be on the version, with the same value) and object
//! sizes (`ObjectSizeGreaterThan` / `ObjectSizeLessThan`, strict, as S3),
//! and their checks when a configuration is stored.
//!
//! Pure: the lifecycle pass reads each version's tags (from its
//! [`crate::objects::VersionAttrs`]) and hands them to
//! [`crate::lifecycle::evaluate_key_tagged`]. A delete marker has no tags
//! and no size: a rule filtering on tags or a minimum size never matches
//! one.

use std::collections::BTreeMap;

use crate::lifecycle::{LifecycleError, LifecycleRule};
use crate::objects::{check_tag_rules, ObjectVersion, MAX_TAGS};

impl LifecycleRule {
    /// Whether `v` (with its `tags`) passes the rule's tag and size
    /// filters (the prefix is checked apart).
    pub fn matches(&self, v: &ObjectVersion, tags: &BTreeMap<String, String>) -> bool {
        let marker = v.is_delete_marker();
        let tags_ok = self.tags.iter().all(|(k, want)| tags.get(k) == Some(want));
        let size = if marker { 0 } else { v.size };
        let gt_ok = self.size_greater_than.is_none_or(|n| !marker && size > n);
        let lt_ok = self.size_less_than.is_none_or(|n| size < n);
        tags_ok && gt_ok && lt_ok
    }

    /// Whether any rule needs versions' tags to be evaluated.
    pub fn filters_on_tags(&self) -> bool {
        self.enabled && !self.tags.is_empty()
    }

    /// S3's rules for filters: at most [`MAX_TAGS`] tags with S3's key and
    /// value lengths; `ObjectSizeLessThan` above `ObjectSizeGreaterThan`
    /// and above 0; no tag or size filter on a rule that aborts uploads or
    /// removes expired delete markers (S3 refuses both).
    pub(crate) fn validate_filter(&self) -> Result<(), LifecycleError> {
        let bad = |why: String| Err(LifecycleError::BadFilter(self.id.clone(), why));
        if self.tags.len() > MAX_TAGS {
            return bad(format!("a filter holds at most {MAX_TAGS} tags"));
        }
        if let Err(why) = check_tag_rules(&self.tags) {
            return bad(why);
        }
        if self.size_less_than == Some(0) {
            return bad("ObjectSizeLessThan must be above 0".into());
        }
        if let (Some(gt), Some(lt)) = (self.size_greater_than, self.size_less_than) {
            if lt <= gt {
                return bad("ObjectSizeLessThan must be greater than ObjectSizeGreaterThan".into());
            }
        }
        let filtered = !self.tags.is_empty()
            || self.size_greater_than.is_some()
            || self.size_less_than.is_some();
        if filtered && self.abort_upload_days.is_some() {
            return bad(
                "AbortIncompleteMultipartUpload cannot be used with a tag or size filter".into(),
            );
        }
        if !self.tags.is_empty() && self.expired_object_delete_marker {
            return bad("ExpiredObjectDeleteMarker cannot be used with a tag filter".into());
        }
        Ok(())
    }
}
