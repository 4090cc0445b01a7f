//! A case's workflow and how concurrent moves settle.
//!
//! A case moves forward through reported → accepted → assigned → in progress →
//! resolved → verified → closed. Every move is an entry appended to the case's
//! status log, never an overwrite, so concurrent moves from two phones both
//! survive; the case's status is computed from the log and settles on the
//! furthest step. Going back is a *reopen* entry that starts a new epoch: moves
//! made in an older epoch no longer count. Each move is judged against the
//! standing its writer saw (`rules::check_push` judges a push at the changes'
//! own dependencies), never against a merge its writer had not seen; the
//! merged standing then follows from the log alone, the same on every replica.

use crate::ids::PersonId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// One step of the case workflow, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// 上报
    Reported,
    /// 受理
    Accepted,
    /// 交办
    Assigned,
    /// 办理中
    InProgress,
    /// 办结
    Resolved,
    /// 核查/回访
    Verified,
    /// 结案
    Closed,
}

impl CaseStatus {
    /// Every step, in workflow order.
    pub const ALL: [CaseStatus; 7] = [
        CaseStatus::Reported,
        CaseStatus::Accepted,
        CaseStatus::Assigned,
        CaseStatus::InProgress,
        CaseStatus::Resolved,
        CaseStatus::Verified,
        CaseStatus::Closed,
    ];

    /// Stable text form stored in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Reported => "reported",
            CaseStatus::Accepted => "accepted",
            CaseStatus::Assigned => "assigned",
            CaseStatus::InProgress => "in_progress",
            CaseStatus::Resolved => "resolved",
            CaseStatus::Verified => "verified",
            CaseStatus::Closed => "closed",
        }
    }

    /// The step's name as grid staff say it.
    pub fn name_zh(self) -> &'static str {
        match self {
            CaseStatus::Reported => "已上报",
            CaseStatus::Accepted => "已受理",
            CaseStatus::Assigned => "已交办",
            CaseStatus::InProgress => "办理中",
            CaseStatus::Resolved => "已办结",
            CaseStatus::Verified => "已核查",
            CaseStatus::Closed => "已结案",
        }
    }

    /// True once the matter itself is dealt with (resolved, verified or closed).
    pub fn is_resolved(self) -> bool {
        self >= CaseStatus::Resolved
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaseStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CaseStatus::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| format!("unknown case status {s:?}"))
    }
}

/// Whether a status log entry moves forward or reopens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusMove {
    /// Forward to a later step, within the current epoch.
    Advance,
    /// Back to an earlier step, starting a new epoch; carries a reason.
    Reopen,
}

/// One entry of a case's status log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    /// Unique per entry, so entries are compared by identity.
    pub id: Uuid,
    /// Forward or reopen.
    pub kind: StatusMove,
    /// The step moved to.
    pub to: CaseStatus,
    /// The epoch this entry belongs to (a reopen opens `previous + 1`).
    pub epoch: u32,
    /// Who moved it.
    pub by: PersonId,
    /// When, in Unix milliseconds by the mover's clock.
    pub at: i64,
    /// Why (required for a reopen).
    pub reason: Option<String>,
    /// Who the case is handed to (交办): required on an advance to
    /// [`CaseStatus::Assigned`], absent on every other move. Entries written
    /// before assignees existed have none.
    #[serde(default)]
    pub assignee: Option<PersonId>,
}

/// A case's current place in the workflow, computed from its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The current step.
    pub status: CaseStatus,
    /// The current epoch: 0 until the first reopen.
    pub epoch: u32,
}

/// Settles a status log: the newest epoch counts; within it the furthest step
/// wins, starting from the lowest step that epoch's reopens went back to.
/// Order-independent, so every replica computes the same answer.
pub fn standing(log: &[StatusEntry]) -> Standing {
    let epoch = log.iter().map(|e| e.epoch).max().unwrap_or(0);
    let base = log
        .iter()
        .filter(|e| e.epoch == epoch && e.kind == StatusMove::Reopen)
        .map(|e| e.to)
        .min()
        .unwrap_or(CaseStatus::Reported);
    let status =
        log.iter().filter(|e| e.epoch == epoch && e.kind == StatusMove::Advance).map(|e| e.to).fold(base, Ord::max);
    Standing { status, epoch }
}

/// Who a case is assigned to (交办): the assignee of its latest assignment
/// (by epoch, time, then id), while the case stands at assigned or later; none
/// before it was assigned, or after a reopen took it back before assigned.
pub fn assignee(log: &[StatusEntry]) -> Option<PersonId> {
    if standing(log).status < CaseStatus::Assigned {
        return None;
    }
    log.iter().filter(|e| e.assignee.is_some()).max_by_key(|e| (e.epoch, e.at, e.id)).and_then(|e| e.assignee)
}

/// The steps `role` may move a case to from where it stands: forward moves,
/// and (for reviewers) the earlier steps a reopen may go back to.
pub fn possible_moves(at: Standing, role: crate::roles::Role) -> Vec<(StatusMove, CaseStatus)> {
    let forward = CaseStatus::ALL.into_iter().filter(|s| *s > at.status && role.may_advance_to(*s));
    let back = CaseStatus::ALL.into_iter().filter(|s| *s < at.status && role.may_reopen());
    forward.map(|s| (StatusMove::Advance, s)).chain(back.map(|s| (StatusMove::Reopen, s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: StatusMove, to: CaseStatus, epoch: u32) -> StatusEntry {
        StatusEntry { id: Uuid::nil(), kind, to, epoch, by: PersonId(Uuid::nil()), at: 0, reason: None, assignee: None }
    }

    #[test]
    fn concurrent_moves_settle_on_the_furthest_step() {
        let log = [
            entry(StatusMove::Advance, CaseStatus::Assigned, 0),
            entry(StatusMove::Advance, CaseStatus::Resolved, 0),
            entry(StatusMove::Advance, CaseStatus::InProgress, 0),
        ];
        assert_eq!(standing(&log).status, CaseStatus::Resolved);
    }

    #[test]
    fn a_reopen_starts_a_new_epoch_that_older_moves_do_not_touch() {
        let log = [
            entry(StatusMove::Advance, CaseStatus::Closed, 0),
            entry(StatusMove::Reopen, CaseStatus::InProgress, 1),
            entry(StatusMove::Advance, CaseStatus::Verified, 0),
        ];
        assert_eq!(standing(&log), Standing { status: CaseStatus::InProgress, epoch: 1 });
    }

    #[test]
    fn an_empty_log_is_reported() {
        assert_eq!(standing(&[]).status, CaseStatus::Reported);
    }
}
