//! Field names and stored values of every Redis record the service writes:
//! the job hash, the job-stream entry, the dead-letter entry and the API key
//! record. The Lua scripts spell the same names (they cannot import these);
//! each script's header says which fields it reads and writes, and the
//! store's tests run the scripts against these names, so a rename here that
//! misses a script fails a test.

/// Fields of the job hash (`{prefix}job:{id}`).
pub mod job {
    /// Job id.
    pub const ID: &str = "id";
    /// Tenant id of the submitter (`key_…`, or `anon` in `AUTH_MODE=off`): who may see the job.
    pub const OWNER: &str = "owner";
    /// Subject of the owner's backlog key (`Keys::backlog`): the API key's hash, or `anon`.
    /// Absent on jobs written before it existed, whose backlog is named by [`OWNER`].
    pub const BACKLOG: &str = "backlog";
    /// Lifecycle state, one of [`super::status`].
    pub const STATUS: &str = "status";
    /// The request echo (JSON, `RequestEcho`).
    pub const REQUEST: &str = "request";
    /// Processing attempts started.
    pub const ATTEMPTS: &str = "attempts";
    /// Creation time, ms since the epoch.
    pub const CREATED_AT: &str = "created_at";
    /// Time the last attempt started, ms.
    pub const STARTED_AT: &str = "started_at";
    /// Time the job became final, ms.
    pub const FINISHED_AT: &str = "finished_at";
    /// `1` when the request has a callback URL, else `0`.
    pub const CALLBACK: &str = "callback";
    /// Webhook signing secret of the tenant (absent: the dispatcher's own).
    pub const WH_SECRET: &str = "wh_secret";
    /// The couplet (JSON, `CoupletResult`), once succeeded.
    pub const RESULT: &str = "result";
    /// The error (JSON, `JobError`), once failed.
    pub const ERROR: &str = "error";
    /// Times a result was stored (1 in a healthy run; the chaos tests check it).
    pub const RESULT_WRITES: &str = "result_writes";
    /// Last transient error (retried), shown in the attempts-exhausted error.
    pub const LAST_ERROR: &str = "last_error";
    /// Webhook delivery state, one of [`super::webhook`].
    pub const WH_STATUS: &str = "wh_status";
    /// Webhook HTTP attempts made.
    pub const WH_ATTEMPTS: &str = "wh_attempts";
    /// Last webhook failure.
    pub const WH_LAST_ERROR: &str = "wh_last_error";
    /// Time the webhook was delivered, ms.
    pub const WH_DELIVERED_AT: &str = "wh_delivered_at";
    /// Times the job was replayed from the dead-letter stream.
    pub const REPLAYS: &str = "replays";
    /// Time of the last dead-letter replay, ms.
    pub const REPLAYED_AT: &str = "replayed_at";
    /// SHA-256 of the canonical request of an idempotent submission (the job
    /// hash is its own idempotency record; see `store::submit`).
    pub const IDEM_BODY: &str = "idem_body";
}

/// Values of [`job::STATUS`] (the serde form of `job::JobStatus`).
pub mod status {
    /// In the stream, not started.
    pub const QUEUED: &str = "queued";
    /// Taken by a worker.
    pub const RUNNING: &str = "running";
    /// Result stored.
    pub const SUCCEEDED: &str = "succeeded";
    /// Failed for good.
    pub const FAILED: &str = "failed";
    /// Canceled before it started.
    pub const CANCELED: &str = "canceled";
}

/// Values of [`job::WH_STATUS`].
pub mod webhook {
    /// Queued in the outbox, not tried yet.
    pub const PENDING: &str = "pending";
    /// Failed at least once; another attempt is scheduled.
    pub const RETRYING: &str = "retrying";
    /// Delivered.
    pub const DELIVERED: &str = "delivered";
    /// Gave up after the last attempt.
    pub const DEAD_LETTERED: &str = "dead_lettered";
}

/// Fields of a job-stream entry (`{prefix}jobs`).
pub mod entry {
    /// Job id.
    pub const JOB: &str = "job";
    /// The validated request for the worker (JSON, `ValidRequest`).
    pub const REQ: &str = "req";
    /// Enqueue time, ms since the epoch.
    pub const T: &str = "t";
    /// Tenant id of the submitter.
    pub const OWNER: &str = "o";
    /// Subject of the owner's backlog key (see [`super::job::BACKLOG`]); absent on
    /// entries written before it existed, whose backlog is named by [`OWNER`].
    pub const BACKLOG: &str = "b";
}

/// Fields of a dead-letter entry (`{prefix}dead`).
pub mod dead {
    /// Job id.
    pub const JOB: &str = "job";
    /// The error (JSON `{"type","message"}`).
    pub const ERROR: &str = "error";
    /// Attempts made.
    pub const ATTEMPTS: &str = "attempts";
    /// The request echo with its callback URL blanked.
    pub const REQUEST: &str = "request";
}

/// Fields of an API key record (`{prefix}apikey:{sha256}`).
pub mod apikey {
    /// Tenant id (`key_` + 16 hex).
    pub const ID: &str = "id";
    /// Operator's name for the key.
    pub const NAME: &str = "name";
    /// Requests per second.
    pub const RATE: &str = "rate";
    /// Burst.
    pub const BURST: &str = "burst";
    /// Webhook signing secret.
    pub const SECRET: &str = "secret";
    /// Creation time, ms.
    pub const CREATED_AT: &str = "created_at";
}

/// `type` values of the errors (JSON `JobError`, job field [`job::ERROR`]) the
/// worker's scripts write themselves.
pub mod error_type {
    /// Attempts exhausted (`start.lua`); the job is dead-lettered.
    pub const ATTEMPTS_EXHAUSTED: &str = "attempts_exhausted";
    /// The job's stream entry disappeared before a result was stored (`lost.lua`).
    pub const LOST_FROM_QUEUE: &str = "lost_from_queue";
}
