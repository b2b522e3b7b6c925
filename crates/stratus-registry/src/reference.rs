//! Image references: parsing and normalization.
//!
//! Parsing is `oci-spec`'s (a port of Docker's `distribution/reference`
//! grammar and normalization, re-exported by `oci-client`); this module adds
//! the checks this crate relies on: tags are ASCII (the grammar's `\w` is
//! Unicode in Rust's regex), repository names are lower case, and digests are `sha256:` with 64 lowercase hex
//! digits, the only algorithm the layout writer stores.

use std::fmt;
use std::str::FromStr;

use crate::error::RegistryError;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed, normalized image reference.
///
/// `busybox` is `docker.io/library/busybox:latest`; `ghcr.io/o/r@sha256:…`
/// keeps its digest and has no tag; `r:t@sha256:…` has both (the digest
/// decides what is pulled, the tag names it in the layout).
#[derive(Clone, Debug)]
pub struct ImageRef {
    inner: oci_client::Reference,
}

impl ImageRef {
    /// Parses and normalizes `reference`.
    ///
    /// # Errors
    /// [`RegistryError::InvalidReference`] when it does not follow the
    /// reference grammar, has a non-ASCII tag, or a digest other than
    /// `sha256:<64 lowercase hex>`.
    pub fn parse(reference: &str) -> Result<Self, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidReference {
            reference: reference.to_string(),
            reason,
        };
        let inner =
            oci_client::Reference::try_from(reference).map_err(|e| invalid(e.to_string()))?;
        // The grammar lets an upper-case first component through as a
        // "domain"; when it is not one (no '.', ':', not localhost) it ends up
        // in the repository, which must be lower case (as Docker's normalizer says).
        if inner.repository().bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid(format!(
                "repository name {:?} must be lowercase",
                inner.repository()
            )));
        }
        if let Some(tag) = inner.tag() {
            if !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
            {
                return Err(invalid(format!(
                    "tag {tag:?} has characters outside [A-Za-z0-9_.-]"
                )));
            }
        }
        if let Some(digest) = inner.digest() {
            if crate::layout::sha256_hex(digest).is_err() {
                return Err(invalid(format!(
                    "digest {digest:?} is not sha256 with 64 lowercase hex digits"
                )));
            }
        }
        Ok(ImageRef { inner })
    }

    /// The registry host (with port if any), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The repository path, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, if any (`latest` when the reference had neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The digest, if the reference pinned one.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The same repository pinned to `digest` (no tag).
    pub(crate) fn with_digest(&self, digest: &str) -> oci_client::Reference {
        oci_client::Reference::with_digest(
            self.registry().to_string(),
            self.repository().to_string(),
            digest.to_string(),
        )
    }

    /// The `oci-client` form, for requests.
    pub(crate) fn oci(&self) -> &oci_client::Reference {
        &self.inner
    }
}

impl fmt::Display for ImageRef {
    /// The normalized form, e.g. `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry(), self.repository())?;
        if let Some(tag) = self.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl PartialEq for ImageRef {
    fn eq(&self, other: &Self) -> bool {
        self.registry() == other.registry()
            && self.repository() == other.repository()
            && self.tag() == other.tag()
            && self.digest() == other.digest()
    }
}

impl Eq for ImageRef {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn norm(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_defaults() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("someone/app:v1"), "docker.io/someone/app:v1");
        assert_eq!(
            norm("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn other_registries_keep_their_path() {
        assert_eq!(norm("ghcr.io/o/r"), "ghcr.io/o/r:latest");
        assert_eq!(
            norm("127.0.0.1:5000/registry:t1"),
            "127.0.0.1:5000/registry:t1"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/a/b/c:x"), "localhost:5000/a/b/c:x");
        let r = ImageRef::parse("127.0.0.1:5000/registry:t1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "registry");
        assert_eq!(r.tag(), Some("t1"));
        assert_eq!(r.digest(), None);
    }

    #[test]
    fn digest_references() {
        let r = ImageRef::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag(), None, "a digest reference gets no default tag");
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r = ImageRef::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.digest(), Some(D));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER/case",
            "busybox:",
            "busybox@sha256:abc",
            "busybox:tag with space",
            "busybox:é",
            // sha512 parses in oci-spec, but we store sha256 only
            &format!("busybox@sha512:{}", "a".repeat(128)),
            // uppercase hex is not canonical
            &format!("busybox@sha256:{}", "A".repeat(64)),
            "a/../b",
            "/abs",
        ] {
            let err = ImageRef::parse(bad).unwrap_err();
            assert!(
                matches!(err, RegistryError::InvalidReference { .. }),
                "{bad:?} gave {err:?}"
            );
        }
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,5}([._-][a-z0-9]{1,4}){0,2}"
    }

    fn valid_ref() -> impl Strategy<Value = String> {
        let registry = prop_oneof![
            Just(None),
            Just(Some("docker.io".to_string())),
            Just(Some("localhost:5000".to_string())),
            "[a-z]{1,6}\\.[a-z]{2,3}(:[1-9][0-9]{0,3})?".prop_map(Some),
        ];
        let path = proptest::collection::vec(component(), 1..4).prop_map(|v| v.join("/"));
        let tag = proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}");
        let digest = proptest::option::of("[0-9a-f]{64}");
        (registry, path, tag, digest).prop_map(|(reg, path, tag, digest)| {
            let mut s = match reg {
                Some(r) => format!("{r}/{path}"),
                None => path,
            };
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(d) = digest {
                s.push_str("@sha256:");
                s.push_str(&d);
            }
            s
        })
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(s in valid_ref()) {
            let parsed = ImageRef::parse(&s).unwrap();
            let shown = parsed.to_string();
            let again = ImageRef::parse(&shown).unwrap();
            prop_assert_eq!(&again, &parsed);
            // normalization is idempotent
            prop_assert_eq!(again.to_string(), shown);
        }

        #[test]
        fn random_strings_never_panic(s in "\\PC{0,80}") {
            let _ = ImageRef::parse(&s);
        }

        #[test]
        fn reference_like_strings_never_panic(s in "[a-zA-Z0-9:/@._-]{0,100}") {
            if let Ok(r) = ImageRef::parse(&s) {
                // whatever parses has a registry and repository and displays re-parsably
                prop_assert!(!r.registry().is_empty());
                prop_assert!(!r.repository().is_empty());
                prop_assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r);
            }
        }
    }
}
