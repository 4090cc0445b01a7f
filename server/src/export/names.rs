//! The names a snapshot writes beside ids, so a spreadsheet reads in words:
//! people (创建人姓名, follow-up and status authors, 作废人) and territories
//! (网格名称) as they are when the snapshot is made, and each household's head
//! (住户户主) as of the snapshot's moment.
//!
//! Heads are noted while the households are written, which come first, so
//! memory grows with the territory's households (tens of bytes each), never
//! with its visit logs, cases or promises.

use gridsync_shared::{DocId, PersonId, TerritoryPath};
use std::cell::RefCell;
use std::collections::HashMap;

/// People's and territories' names, and the household heads seen so far.
#[derive(Debug, Default)]
pub struct Names {
    people: HashMap<PersonId, String>,
    territories: HashMap<TerritoryPath, String>,
    heads: RefCell<HashMap<DocId, Box<str>>>,
}

impl Names {
    /// Names of `people` and `territories`; no household heads yet.
    pub fn new(
        people: impl IntoIterator<Item = (PersonId, String)>,
        territories: impl IntoIterator<Item = (TerritoryPath, String)>,
    ) -> Self {
        Self {
            people: people.into_iter().collect(),
            territories: territories.into_iter().collect(),
            heads: RefCell::default(),
        }
    }

    /// A person's name, if known.
    pub fn person(&self, id: PersonId) -> Option<&str> {
        self.people.get(&id).map(String::as_str)
    }

    /// A person's name, or their id where no name is known (for columns that
    /// stand alone, with no id column beside them).
    pub fn person_or_id(&self, id: PersonId) -> String {
        self.person(id).map_or_else(|| id.to_string(), str::to_string)
    }

    /// A territory's name, if known.
    pub fn territory(&self, path: &TerritoryPath) -> Option<&str> {
        self.territories.get(path).map(String::as_str)
    }

    /// Notes a household's head as the snapshot shows it.
    pub fn note_household(&self, id: DocId, head: &str) {
        self.heads.borrow_mut().insert(id, head.into());
    }

    /// The head of a household noted so far (None for one outside the
    /// snapshot, or created after its moment).
    pub fn head(&self, household: DocId) -> Option<String> {
        self.heads.borrow().get(&household).map(|h| h.to_string())
    }
}
