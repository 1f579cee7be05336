//! The updates and tasks the agent has not acknowledged yet (reference §7.4): every
//! update is kept, in the order it was produced, until an ACKNOWLEDGED with its uuid
//! arrives; every launched task is kept until any update of it is acknowledged. Both
//! go into SUBSCRIBE when the executor resubscribes.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use bytes::Bytes;

use super::outbox::PendingSet;
use crate::proto::v1::{TaskInfo, TaskState, TaskStatus, executor::call};

/// One update awaiting its acknowledgement.
#[derive(Debug, Clone)]
pub(crate) struct PendingUpdate {
    pub status: TaskStatus,
    /// When the executor produced it (for ack latency).
    pub created: Instant,
    /// When it was last POSTed or carried in a SUBSCRIBE; `None` if never.
    pub last_sent: Option<Instant>,
    /// How many times it was sent.
    pub sends: u32,
}

/// What an ACKNOWLEDGED matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Acked {
    /// A pending update: its age and whether it was terminal.
    Update { latency: Duration, terminal: bool },
    /// No pending update has that uuid (a duplicate ACK, or one for an update we
    /// already dropped); upstream logs and ignores it.
    Unknown,
}

/// Unacknowledged updates and tasks.
#[derive(Debug, Default)]
pub(crate) struct Unacked {
    next_seq: u64,
    updates: BTreeMap<u64, PendingUpdate>,
    by_uuid: HashMap<Bytes, u64>,
    tasks: Vec<TaskInfo>,
    /// The keys of `by_uuid`, shared with the outbox so it skips an update
    /// acknowledged while it waited in the queue; kept here so it cannot drift.
    shared: PendingSet,
}

impl Unacked {
    /// Keeps `status` (which has a uuid) until it is acknowledged.
    pub fn add_update(&mut self, status: TaskStatus, now: Instant) {
        let uuid = status.uuid.clone().unwrap_or_default();
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Ok(mut shared) = self.shared.lock() {
            shared.insert(uuid.clone());
        }
        self.by_uuid.insert(uuid, seq);
        self.updates.insert(seq, PendingUpdate { status, created: now, last_sent: None, sends: 0 });
    }

    /// Keeps a launched task until one of its updates is acknowledged.
    pub fn add_task(&mut self, task: TaskInfo) {
        self.tasks.push(task);
    }

    /// Applies an ACKNOWLEDGED.
    pub fn acknowledge(&mut self, task_id: &str, uuid: &[u8], now: Instant) -> Acked {
        let Some(seq) = self.remove_uuid(uuid) else { return Acked::Unknown };
        let Some(update) = self.updates.remove(&seq) else { return Acked::Unknown };
        self.tasks.retain(|t| t.task_id.value != task_id);
        let terminal = TaskState::try_from(update.status.state).is_ok_and(TaskState::is_terminal);
        Acked::Update { latency: now.saturating_duration_since(update.created), terminal }
    }

    /// Drops an update the agent refused for good (a 400): it would poison every
    /// later SUBSCRIBE. The caller reports it.
    pub fn discard(&mut self, uuid: &[u8]) -> Option<TaskStatus> {
        let seq = self.remove_uuid(uuid)?;
        self.updates.remove(&seq).map(|u| u.status)
    }

    fn remove_uuid(&mut self, uuid: &[u8]) -> Option<u64> {
        if let Ok(mut shared) = self.shared.lock() {
            shared.remove(uuid);
        }
        self.by_uuid.remove(uuid)
    }

    /// The uuids of pending updates, as a set the outbox task can read.
    pub fn shared(&self) -> PendingSet {
        self.shared.clone()
    }

    /// The update with this uuid, if pending.
    pub fn get(&self, uuid: &[u8]) -> Option<&PendingUpdate> {
        self.by_uuid.get(uuid).and_then(|seq| self.updates.get(seq))
    }

    /// Records that the update was sent at `now`.
    pub fn mark_sent(&mut self, uuid: &[u8], now: Instant) {
        if let Some(update) = self.by_uuid.get(uuid).and_then(|seq| self.updates.get_mut(seq)) {
            update.last_sent = Some(now);
            update.sends += 1;
        }
    }

    /// Records that every pending update went out in a SUBSCRIBE at `now`.
    #[cfg(test)]
    pub fn mark_all_sent(&mut self, now: Instant) {
        for update in self.updates.values_mut() {
            update.last_sent = Some(now);
            update.sends += 1;
        }
    }

    /// Uuids of every pending update, oldest first.
    pub fn uuids(&self) -> Vec<Bytes> {
        self.updates.values().filter_map(|u| u.status.uuid.clone()).collect()
    }

    /// Uuids of pending updates never sent, oldest first.
    pub fn never_sent(&self) -> Vec<Bytes> {
        self.updates.values().filter(|u| u.last_sent.is_none()).filter_map(|u| u.status.uuid.clone()).collect()
    }

    /// Uuids of updates sent at least once but not acknowledged within `after`, oldest first.
    pub fn due_for_resend(&self, now: Instant, after: Duration) -> Vec<Bytes> {
        self.updates
            .values()
            .filter(|u| u.last_sent.is_some_and(|t| now.saturating_duration_since(t) >= after))
            .filter_map(|u| u.status.uuid.clone())
            .collect()
    }

    /// The `subscribe` message of a (re)SUBSCRIBE: unacknowledged tasks and updates in order.
    pub fn subscribe_message(&self) -> call::Subscribe {
        call::Subscribe {
            unacknowledged_tasks: self.tasks.clone(),
            unacknowledged_updates: self.updates.values().map(|u| call::Update { status: u.status.clone() }).collect(),
        }
    }

    /// Number of pending updates.
    pub fn len(&self) -> usize {
        self.updates.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    /// Number of tasks with no acknowledged update yet.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::TaskId;

    fn status(task: &str, state: TaskState, n: u8) -> TaskStatus {
        let mut uuid = [n; 16];
        uuid[6] = 0x40;
        TaskStatus {
            task_id: TaskId { value: task.into() },
            state: state as i32,
            uuid: Some(Bytes::copy_from_slice(&uuid)),
            ..Default::default()
        }
    }

    fn task(id: &str) -> TaskInfo {
        TaskInfo { name: id.into(), task_id: TaskId { value: id.into() }, ..Default::default() }
    }

    #[test]
    fn updates_stay_in_order_until_acknowledged() {
        let now = Instant::now();
        let mut u = Unacked::default();
        u.add_task(task("a"));
        u.add_task(task("b"));
        u.add_update(status("a", TaskState::TaskRunning, 1), now);
        u.add_update(status("b", TaskState::TaskRunning, 2), now);
        u.add_update(status("a", TaskState::TaskFinished, 3), now);
        let sub = u.subscribe_message();
        let order: Vec<u8> = sub.unacknowledged_updates.iter().map(|x| x.status.uuid.as_ref().unwrap()[0]).collect();
        assert_eq!(order, [1, 2, 3]);
        assert_eq!(sub.unacknowledged_tasks.len(), 2);

        let uuid3 = status("a", TaskState::TaskFinished, 3).uuid.unwrap();
        let later = now + Duration::from_millis(5);
        assert_eq!(
            u.acknowledge("a", &uuid3, later),
            Acked::Update { latency: Duration::from_millis(5), terminal: true }
        );
        assert_eq!(u.acknowledge("a", &uuid3, later), Acked::Unknown, "a second ACK is unknown");
        assert_eq!(u.task_count(), 1, "task a is acknowledged once any update of it is");
        let order: Vec<u8> =
            u.subscribe_message().unacknowledged_updates.iter().map(|x| x.status.uuid.as_ref().unwrap()[0]).collect();
        assert_eq!(order, [1, 2]);
        assert_eq!(u.len(), 2);
    }

    #[test]
    fn resend_is_due_only_for_sent_updates_past_the_delay() {
        let now = Instant::now();
        let mut u = Unacked::default();
        u.add_update(status("a", TaskState::TaskRunning, 1), now);
        u.add_update(status("a", TaskState::TaskFinished, 2), now);
        assert!(u.due_for_resend(now + Duration::from_secs(60), Duration::from_secs(1)).is_empty(), "never sent");
        let uuid1 = status("a", TaskState::TaskRunning, 1).uuid.unwrap();
        u.mark_sent(&uuid1, now);
        assert!(u.due_for_resend(now + Duration::from_millis(500), Duration::from_secs(1)).is_empty());
        assert_eq!(u.due_for_resend(now + Duration::from_secs(1), Duration::from_secs(1)), vec![uuid1.clone()]);
        u.mark_all_sent(now + Duration::from_secs(2));
        assert_eq!(u.get(&uuid1).unwrap().sends, 2);
        assert_eq!(u.due_for_resend(now + Duration::from_secs(3), Duration::from_secs(1)).len(), 2);
        assert!(u.discard(&uuid1).is_some());
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn the_shared_set_follows_every_update_in_and_out() {
        let now = Instant::now();
        let mut u = Unacked::default();
        let shared = u.shared();
        let (one, two) = (status("a", TaskState::TaskRunning, 1), status("a", TaskState::TaskFinished, 2));
        let (uuid1, uuid2) = (one.uuid.clone().unwrap(), two.uuid.clone().unwrap());
        u.add_update(one, now);
        u.add_update(two, now);
        assert_eq!(shared.lock().unwrap().len(), 2);
        u.acknowledge("a", &uuid1, now);
        assert!(!shared.lock().unwrap().contains(&uuid1), "acknowledged");
        u.discard(&uuid2);
        assert!(shared.lock().unwrap().is_empty(), "discarded");
    }
}
