//! Tests with real FUSE mounts.
