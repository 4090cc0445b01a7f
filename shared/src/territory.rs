//! The territory tree: city 市 > district 区/县 > sub-district 街道/乡镇 >
//! community 社区/村 > grid 网格.
//!
//! A territory is named by its path from the city, e.g. `xg/xn/cz/dh/g03`; a
//! person responsible for a path sees and acts on exactly its subtree.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// The five levels of the territory tree, from the top.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 市
    City,
    /// 区/县
    District,
    /// 街道/乡镇
    SubDistrict,
    /// 社区/村
    Community,
    /// 网格
    Grid,
}

impl Level {
    /// The level's name in Chinese, as staff say it.
    pub fn name_zh(self) -> &'static str {
        match self {
            Level::City => "市",
            Level::District => "区/县",
            Level::SubDistrict => "街道/乡镇",
            Level::Community => "社区/村",
            Level::Grid => "网格",
        }
    }
}

/// Why a territory path is not valid.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TerritoryError {
    /// Empty, or more than five levels deep.
    #[error("a territory path has one to five segments, found {0}")]
    Depth(usize),
    /// A segment with characters other than a-z, 0-9 and '-', or too long.
    #[error("territory segment {0:?} must be 1-32 characters of a-z, 0-9 or '-'")]
    Segment(String),
}

/// A node of the territory tree, named by its path from the city.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TerritoryPath(String);

impl TerritoryPath {
    /// Parses and checks a path such as `xg/xn/cz/dh/g03`.
    pub fn parse(s: &str) -> Result<Self, TerritoryError> {
        let segments: Vec<&str> = s.split('/').collect();
        if s.is_empty() || segments.len() > 5 {
            return Err(TerritoryError::Depth(if s.is_empty() { 0 } else { segments.len() }));
        }
        for seg in &segments {
            let ok = !seg.is_empty()
                && seg.len() <= 32
                && seg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(TerritoryError::Segment((*seg).to_string()));
            }
        }
        Ok(Self(s.to_string()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How deep this node is.
    pub fn level(&self) -> Level {
        match self.0.split('/').count() {
            1 => Level::City,
            2 => Level::District,
            3 => Level::SubDistrict,
            4 => Level::Community,
            _ => Level::Grid,
        }
    }

    /// True for a grid, the level records belong to.
    pub fn is_grid(&self) -> bool {
        self.level() == Level::Grid
    }

    /// True if `other` is this node or lies beneath it.
    pub fn contains(&self, other: &TerritoryPath) -> bool {
        other.0 == self.0
            || (other.0.len() > self.0.len()
                && other.0.starts_with(&self.0)
                && other.0.as_bytes()[self.0.len()] == b'/')
    }

    /// This node and every node above it, from the city down.
    pub fn ancestors_and_self(&self) -> Vec<TerritoryPath> {
        let mut out = Vec::with_capacity(5);
        for (i, b) in self.0.bytes().enumerate() {
            if b == b'/' {
                out.push(TerritoryPath(self.0[..i].to_string()));
            }
        }
        out.push(self.clone());
        out
    }

    /// The node directly above, if any.
    pub fn parent(&self) -> Option<TerritoryPath> {
        self.0.rfind('/').map(|i| TerritoryPath(self.0[..i].to_string()))
    }

    /// A child of this node with the given segment.
    pub fn child(&self, segment: &str) -> Result<TerritoryPath, TerritoryError> {
        TerritoryPath::parse(&format!("{}/{}", self.0, segment))
    }
}

impl fmt::Display for TerritoryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TerritoryPath {
    type Err = TerritoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TerritoryPath {
    type Error = TerritoryError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TerritoryPath> for String {
    fn from(p: TerritoryPath) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> TerritoryPath {
        TerritoryPath::parse(s).unwrap()
    }

    #[test]
    fn a_community_contains_its_grids_but_not_a_neighbours() {
        assert!(p("xg/a/b/c").contains(&p("xg/a/b/c/g1")));
        assert!(p("xg/a/b/c").contains(&p("xg/a/b/c")));
        assert!(!p("xg/a/b/c").contains(&p("xg/a/b/cc/g1")));
        assert!(!p("xg/a/b/c/g1").contains(&p("xg/a/b/c")));
    }

    #[test]
    fn paths_reject_bad_segments_and_depth() {
        assert!(TerritoryPath::parse("").is_err());
        assert!(TerritoryPath::parse("a/b/c/d/e/f").is_err());
        assert!(TerritoryPath::parse("a//b").is_err());
        assert!(TerritoryPath::parse("A/b").is_err());
        assert_eq!(p("a/b/c/d/e").level(), Level::Grid);
        assert_eq!(p("a/b/c/d/e").ancestors_and_self().len(), 5);
    }
}
