//! The CLI's one error type. Each variant owns its exit code, so the code a
//! script sees and the message a person reads are decided in one place
//! (documented in `docs/CLI.md`). Usage errors (2) are clap's own.

/// Local failure, e.g. the PNG cannot be written.
pub const EXIT_OTHER: u8 = 1;
/// The API refused the request (4xx).
pub const EXIT_REJECTED: u8 = 3;
/// The job ended as failed or canceled.
pub const EXIT_JOB_FAILED: u8 = 4;
/// The service could not be reached, timed out, or answered 5xx.
pub const EXIT_UNREACHABLE: u8 = 5;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// 4xx from the API.
    #[error("rejected ({status} {kind}): {message}{}", field_hint(.field))]
    Rejected {
        /// HTTP status.
        status: u16,
        /// `error.type`.
        kind: String,
        /// `error.message`.
        message: String,
        /// `error.field`, for validation errors.
        field: Option<String>,
        /// `Retry-After`, for 429.
        retry_after: Option<u64>,
    },
    /// The job finished without a couplet.
    #[error("job {id} {status}{}", job_reason(.kind, .message))]
    JobFailed {
        /// Job id.
        id: String,
        /// `failed` or `canceled`.
        status: &'static str,
        /// `error.type` of the job.
        kind: Option<String>,
        /// `error.message` of the job.
        message: Option<String>,
    },
    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was asked for.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// 5xx from the API, or an answer that is not the API's.
    #[error("service error ({status} {kind}): {message}{}", retry_hint(.retry_after))]
    Server {
        /// HTTP status.
        status: u16,
        /// `error.type`, or `bad_response`.
        kind: String,
        /// `error.message`.
        message: String,
        /// `Retry-After`.
        retry_after: Option<u64>,
    },
    /// The job was not final before `--timeout`.
    #[error("gave up waiting after {waited_s} s: job {id} is still {status}; check later with `couplet status {id} --wait`")]
    TimedOut {
        /// Job id.
        id: String,
        /// Seconds waited.
        waited_s: u64,
        /// Last status seen.
        status: &'static str,
    },
    /// A local problem (file system).
    #[error("{0}")]
    Local(String),
}

fn field_hint(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!(" [field: {f}]")).unwrap_or_default()
}

fn job_reason(kind: &Option<String>, message: &Option<String>) -> String {
    match (kind, message) {
        (Some(k), Some(m)) => format!(": {k}: {m}"),
        (Some(k), None) => format!(": {k}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

fn retry_hint(retry_after: &Option<u64>) -> String {
    retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default()
}

impl CliError {
    /// The process exit code for this outcome.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Rejected { .. } => EXIT_REJECTED,
            CliError::JobFailed { .. } => EXIT_JOB_FAILED,
            CliError::Unreachable { .. } | CliError::Server { .. } | CliError::TimedOut { .. } => EXIT_UNREACHABLE,
            CliError::Local(_) => EXIT_OTHER,
        }
    }

    /// Worth another poll: the service may answer next time.
    pub fn is_transient(&self) -> bool {
        match self {
            CliError::Unreachable { .. } | CliError::Server { .. } => true,
            CliError::Rejected { status, .. } => *status == 429,
            _ => false,
        }
    }

    /// Seconds the service asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            CliError::Rejected { retry_after, .. } | CliError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_type_and_the_field() {
        let e = CliError::Rejected {
            status: 422,
            kind: "non_cjk_input".into(),
            message: "theme may only contain Chinese characters".into(),
            field: Some("theme".into()),
            retry_after: None,
        };
        assert_eq!(e.to_string(), "rejected (422 non_cjk_input): theme may only contain Chinese characters [field: theme]");
        assert_eq!(e.exit_code(), 3);
        assert!(!e.is_transient());
    }

    #[test]
    fn exit_codes_follow_the_documented_table() {
        let failed = CliError::JobFailed { id: "x".into(), status: "failed", kind: None, message: None };
        assert_eq!(failed.exit_code(), 4);
        let down = CliError::Unreachable { url: "u".into(), reason: "refused".into() };
        assert_eq!(down.exit_code(), 5);
        let busy = CliError::Server { status: 503, kind: "overloaded".into(), message: "busy".into(), retry_after: Some(5) };
        assert_eq!(busy.exit_code(), 5);
        assert!(busy.to_string().ends_with("(retry after 5 s)"));
        assert_eq!(CliError::Local("disk".into()).exit_code(), 1);
    }
}
