//! Shared helpers of flow's benchmarks.
