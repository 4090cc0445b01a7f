//! Roles and the person behind a change.
//!
//! Field staff write in their grid; supervisors also move cases through review
//! steps in their community or sub-district; administrators manage people and
//! export, and may act as supervisors throughout their territory.

use crate::ids::PersonId;
use crate::territory::TerritoryPath;
use crate::workflow::CaseStatus;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a person is responsible for doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 网格员: visits households, writes visit logs, reports cases.
    FieldStaff,
    /// 社区/街道负责人: reviews, assigns and verifies cases.
    Supervisor,
    /// 管理员: manages people and devices, exports.
    Administrator,
}

impl Role {
    /// The role's name in Chinese.
    pub fn name_zh(self) -> &'static str {
        match self {
            Role::FieldStaff => "网格员",
            Role::Supervisor => "负责人",
            Role::Administrator => "管理员",
        }
    }

    /// Stable text form, as used in the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::FieldStaff => "field_staff",
            Role::Supervisor => "supervisor",
            Role::Administrator => "administrator",
        }
    }

    /// Whether this role may move a case forward to `step`.
    pub fn may_advance_to(self, step: CaseStatus) -> bool {
        match self {
            Role::FieldStaff => matches!(step, CaseStatus::InProgress | CaseStatus::Resolved),
            Role::Supervisor | Role::Administrator => step != CaseStatus::Reported,
        }
    }

    /// Whether this role may reopen a case (move it back, with a reason).
    pub fn may_reopen(self) -> bool {
        !matches!(self, Role::FieldStaff)
    }

    /// Whether this role reviews others' records (edits cases and promises it did not create).
    pub fn reviews(self) -> bool {
        !matches!(self, Role::FieldStaff)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "field_staff" | "field-staff" | "staff" => Ok(Role::FieldStaff),
            "supervisor" => Ok(Role::Supervisor),
            "administrator" | "admin" => Ok(Role::Administrator),
            other => Err(format!("unknown role {other:?}: expected field_staff, supervisor or administrator")),
        }
    }
}

/// Whether a person's devices keep an offline replica of their territory's
/// records. Grid managers and supervisors work in the field, offline; an
/// administrator over a sub-district or more (a city holds hundreds of
/// thousands of households, more than a phone or a browser tab can hold)
/// works online — the console, reports and snapshots — and their devices are
/// sent no records, though what they write still goes up. An administrator
/// of a community or a grid keeps one, like its supervisor.
pub fn keeps_replica(role: Role, territory: &TerritoryPath) -> bool {
    role != Role::Administrator || territory.level() >= crate::territory::Level::Community
}

/// The person a change is made by, as the server knows them from the device's token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// Who.
    pub person: PersonId,
    /// In what role.
    pub role: Role,
    /// Over which subtree.
    pub territory: TerritoryPath,
}

impl Author {
    /// Whether this person may read and write records of `grid`.
    pub fn covers(&self, grid: &TerritoryPath) -> bool {
        self.territory.contains(grid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> TerritoryPath {
        s.parse().expect("path")
    }

    #[test]
    fn only_administrators_above_a_community_work_without_a_replica() {
        for t in ["xg", "xg/xn", "xg/xn/sh"] {
            assert!(!keeps_replica(Role::Administrator, &path(t)), "{t}");
            assert!(keeps_replica(Role::Supervisor, &path(t)), "{t}");
        }
        for t in ["xg/xn/sh/dh", "xg/xn/sh/dh/g1"] {
            assert!(keeps_replica(Role::Administrator, &path(t)), "{t}");
        }
        assert!(keeps_replica(Role::FieldStaff, &path("xg/xn/sh/dh/g1")));
    }
}
