//! Helpers shared by flow-core's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use flow_core::prelude::*;
use std::path::Path;

pub fn env(p: usize) -> Env {
    Env::new(Config::default().parallelism(p))
}

/// The seed's tokenisation, written plainly as the reference.
pub fn words_of(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

/// Reads every part file of `dir` as the conventions say (sorted rows).
pub fn read_parts(dir: &Path) -> Vec<String> {
    flow_core::io::sink::read_part_files(dir).unwrap()
}
