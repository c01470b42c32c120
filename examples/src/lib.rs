//! Shared helpers of flow's examples.
