//! Status updates without raw enum integers: constructors for the states an executor
//! reports, and conversions into [`TaskId`]. The driver fills in the rest (uuid,
//! timestamp, source, executor and agent ids) when the update is sent.
//!
//! ```
//! use mesos_executor::proto::v1::{TaskId, TaskState, TaskStatus, task_status::Reason};
//!
//! let id = TaskId::from("task-1");
//! let running = TaskStatus::running(&id);
//! assert_eq!(running.state(), TaskState::TaskRunning);
//! let failed = TaskStatus::failed("task-1", "exited with 3").with_reason(Reason::CommandExecutorFailed);
//! assert_eq!((failed.state(), failed.message()), (TaskState::TaskFailed, "exited with 3"));
//! ```

use bytes::Bytes;

use crate::proto::v1::{TaskId, TaskState, TaskStatus, task_status::Reason};

impl From<&str> for TaskId {
    fn from(value: &str) -> Self {
        TaskId { value: value.to_owned() }
    }
}

impl From<String> for TaskId {
    fn from(value: String) -> Self {
        TaskId { value }
    }
}

impl From<&TaskId> for TaskId {
    fn from(id: &TaskId) -> Self {
        id.clone()
    }
}

impl TaskStatus {
    /// An update of `task_id` to `state`, nothing else set.
    pub fn new(task_id: impl Into<TaskId>, state: TaskState) -> Self {
        TaskStatus { task_id: task_id.into(), state: state as i32, ..Default::default() }
    }

    /// TASK_STARTING: the executor is preparing the task.
    pub fn starting(task_id: impl Into<TaskId>) -> Self {
        Self::new(task_id, TaskState::TaskStarting)
    }

    /// TASK_RUNNING.
    pub fn running(task_id: impl Into<TaskId>) -> Self {
        Self::new(task_id, TaskState::TaskRunning)
    }

    /// TASK_KILLING: a kill is under way (send it only when the framework has the
    /// `TASK_KILLING_STATE` capability).
    pub fn killing(task_id: impl Into<TaskId>) -> Self {
        Self::new(task_id, TaskState::TaskKilling)
    }

    /// TASK_FINISHED: the task ended successfully (terminal).
    pub fn finished(task_id: impl Into<TaskId>) -> Self {
        Self::new(task_id, TaskState::TaskFinished)
    }

    /// TASK_FAILED with a message saying why (terminal).
    pub fn failed(task_id: impl Into<TaskId>, message: impl Into<String>) -> Self {
        Self::new(task_id, TaskState::TaskFailed).with_message(message)
    }

    /// TASK_KILLED (terminal).
    pub fn killed(task_id: impl Into<TaskId>) -> Self {
        Self::new(task_id, TaskState::TaskKilled)
    }

    /// TASK_ERROR: the task could never have run, with a message saying why (terminal).
    pub fn error(task_id: impl Into<TaskId>, message: impl Into<String>) -> Self {
        Self::new(task_id, TaskState::TaskError).with_message(message)
    }

    /// With a human-readable message.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// With a reason code.
    #[must_use]
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason as i32);
        self
    }

    /// With the result of a health check.
    #[must_use]
    pub fn with_healthy(mut self, healthy: bool) -> Self {
        self.healthy = Some(healthy);
        self
    }

    /// With data for the framework's scheduler.
    #[must_use]
    pub fn with_data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = Some(data.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_the_state_and_nothing_the_driver_fills_in() {
        for (status, state) in [
            (TaskStatus::starting("t"), TaskState::TaskStarting),
            (TaskStatus::running("t"), TaskState::TaskRunning),
            (TaskStatus::killing("t"), TaskState::TaskKilling),
            (TaskStatus::finished("t"), TaskState::TaskFinished),
            (TaskStatus::failed("t", "m"), TaskState::TaskFailed),
            (TaskStatus::killed("t"), TaskState::TaskKilled),
            (TaskStatus::error("t", "m"), TaskState::TaskError),
        ] {
            assert_eq!(status.state(), state);
            assert_eq!(status.task_id.value, "t");
            assert!(status.uuid.is_none() && status.timestamp.is_none() && status.source.is_none());
        }
        let status = TaskStatus::finished(String::from("t")).with_healthy(true).with_data(&b"x"[..]);
        assert_eq!((status.healthy, status.data.as_deref()), (Some(true), Some(&b"x"[..])));
    }
}
