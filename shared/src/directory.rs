//! The directory: the names of the people and territories a person works with,
//! so that phones and exports show who and where in words, never ids or codes.
//!
//! The server answers `GET /v1/directory` with a [`Directory`] of the caller's
//! scope ([`in_scope`]); the phone keeps it offline and checks it with
//! [`Directory::check`] before keeping it. Nothing secret crosses: no username,
//! password or phone number.

use crate::{PersonId, Role, TerritoryPath};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Most people one directory may list (a whole city's staff, 1,000 or so, fits many times over).
pub const MAX_PEOPLE: usize = 20_000;
/// Most territories one directory may list.
pub const MAX_TERRITORIES: usize = 20_000;
/// Longest name, in characters, of a person or territory.
pub const MAX_NAME_CHARS: usize = 100;

/// One person as others see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryPerson {
    /// Their id, as records name them (creator, follow-up author, assignee).
    pub id: PersonId,
    /// Their display name, e.g. 张伟.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// The territory they are responsible for.
    pub territory: TerritoryPath,
    /// False once an administrator disabled them (they no longer sign in, and
    /// should not be picked as an assignee); their name still shows on old work.
    pub enabled: bool,
}

/// One territory node with its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryTerritory {
    /// Its path, e.g. `xg/xn/cz/dh/g03`.
    pub path: TerritoryPath,
    /// Its name, e.g. 第三网格.
    pub name: String,
}

/// The people and territories in one person's scope, as `GET /v1/directory`
/// sends them: people by id, territories by path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// People whose territory lies in the scope.
    pub people: Vec<DirectoryPerson>,
    /// Territory nodes in the scope.
    pub territories: Vec<DirectoryTerritory>,
}

/// Why a directory was not accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DirectoryError {
    /// More entries than a directory may hold.
    #[error("the directory lists {count} {what}; at most {max}")]
    TooMany {
        /// `people` or `territories`.
        what: &'static str,
        /// How many it lists.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A name that is empty or too long.
    #[error("{what} {key} has an empty name or one longer than {MAX_NAME_CHARS} characters")]
    BadName {
        /// `person` or `territory`.
        what: &'static str,
        /// The id or path.
        key: String,
    },
    /// The same id or path twice.
    #[error("{what} {key} is listed twice")]
    Duplicate {
        /// `person` or `territory`.
        what: &'static str,
        /// The id or path.
        key: String,
    },
}

/// Whether a person responsible for `viewer` sees `other` in their directory:
/// their own territory, everything beneath it and everything above it. So a
/// grid manager sees their grid's people, their community's and sub-district's
/// supervisors and the names up to the city, but no other grid; a supervisor
/// sees everyone in their community.
pub fn in_scope(viewer: &TerritoryPath, other: &TerritoryPath) -> bool {
    viewer.contains(other) || other.contains(viewer)
}

/// A key that two entries share, if any. Pairwise, within the limits above:
/// a sort or a hash set would cost the phone's WebAssembly more code than
/// this costs it time (a few milliseconds for a thousand people).
fn first_repeat<'a, E, K: PartialEq + ?Sized>(entries: &'a [E], key: impl Fn(&'a E) -> &'a K) -> Option<&'a K> {
    entries.iter().enumerate().find_map(|(i, a)| entries[i + 1..].iter().any(|b| key(a) == key(b)).then(|| key(a)))
}

fn name_ok(name: &str) -> bool {
    !name.trim().is_empty() && name.chars().count() <= MAX_NAME_CHARS
}

impl Directory {
    /// Checks limits, names and that no id or path appears twice.
    pub fn check(&self) -> Result<(), DirectoryError> {
        if self.people.len() > MAX_PEOPLE {
            return Err(DirectoryError::TooMany { what: "people", count: self.people.len(), max: MAX_PEOPLE });
        }
        if self.territories.len() > MAX_TERRITORIES {
            let count = self.territories.len();
            return Err(DirectoryError::TooMany { what: "territories", count, max: MAX_TERRITORIES });
        }
        if let Some(p) = self.people.iter().find(|p| !name_ok(&p.name)) {
            return Err(DirectoryError::BadName { what: "person", key: p.id.to_string() });
        }
        if let Some(t) = self.territories.iter().find(|t| !name_ok(&t.name)) {
            return Err(DirectoryError::BadName { what: "territory", key: t.path.to_string() });
        }
        if let Some(twice) = first_repeat(&self.people, |p| &p.id) {
            return Err(DirectoryError::Duplicate { what: "person", key: twice.to_string() });
        }
        if let Some(twice) = first_repeat(&self.territories, |t| &t.path) {
            return Err(DirectoryError::Duplicate { what: "territory", key: twice.to_string() });
        }
        Ok(())
    }

    /// A person's entry, if listed.
    pub fn person(&self, id: PersonId) -> Option<&DirectoryPerson> {
        self.people.iter().find(|p| p.id == id)
    }

    /// A territory's name, if listed.
    pub fn territory_name(&self, path: &TerritoryPath) -> Option<&str> {
        self.territories.iter().find(|t| &t.path == path).map(|t| t.name.as_str())
    }
}

/// How a person is shown when the directory does not know them (someone
/// outside the scope, or before the first directory arrived): the first eight
/// characters of their id, e.g. `0192f3a1`.
pub fn short_id(id: &str) -> &str {
    id.char_indices().nth(8).map_or(id, |(i, _)| &id[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> TerritoryPath {
        s.parse().expect("path")
    }

    #[test]
    fn scope_is_the_subtree_and_the_line_above_but_never_a_sibling() {
        let grid = path("xg/xn/cz/dh/g01");
        assert!(in_scope(&grid, &grid));
        assert!(in_scope(&grid, &path("xg/xn/cz/dh")), "the community's supervisors");
        assert!(in_scope(&grid, &path("xg")), "the city's administrators");
        assert!(!in_scope(&grid, &path("xg/xn/cz/dh/g02")), "another grid");
        assert!(!in_scope(&grid, &path("xg/xn/cz/hh")), "another community");
        let community = path("xg/xn/cz/dh");
        assert!(in_scope(&community, &path("xg/xn/cz/dh/g02")));
        assert!(!in_scope(&community, &path("xg/xn/cz/dh2/g01")), "a prefix that is not a parent");
    }

    #[test]
    fn a_directory_with_a_duplicate_or_an_empty_name_is_refused() {
        let person = DirectoryPerson {
            id: PersonId(uuid::Uuid::from_u128(1)),
            name: "张伟".into(),
            role: Role::FieldStaff,
            territory: path("xg/xn/cz/dh/g01"),
            enabled: true,
        };
        let mut d = Directory {
            people: vec![person.clone()],
            territories: vec![DirectoryTerritory { path: path("xg"), name: "孝感市".into() }],
        };
        assert_eq!(d.check(), Ok(()));
        assert_eq!(d.person(person.id).map(|p| p.name.as_str()), Some("张伟"));
        assert_eq!(d.territory_name(&path("xg")), Some("孝感市"));
        d.people.push(person.clone());
        assert!(matches!(d.check(), Err(DirectoryError::Duplicate { what: "person", .. })));
        d.people.pop();
        d.territories[0].name = "  ".into();
        assert!(matches!(d.check(), Err(DirectoryError::BadName { what: "territory", .. })));
    }

    #[test]
    fn an_unknown_person_shows_as_the_start_of_their_id() {
        assert_eq!(short_id("0192f3a1-7c1e-7d2b-9a3f-000000000001"), "0192f3a1");
        assert_eq!(short_id("abc"), "abc");
    }
}
