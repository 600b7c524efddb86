//! Errors of loading and running the model. Each says what to fix, naming
//! the setting involved, because these are the errors operators see first.

use std::path::PathBuf;

/// Loading or running the model failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The ONNX Runtime shared library is missing or unusable.
    #[error("ONNX Runtime library not usable at {path}: {reason}. Set ORT_DYLIB_PATH (or --ort-dylib-path) to libonnxruntime.so from the onnxruntime==1.31.1 wheel, or run scripts/setup.sh which fetches it into .ort/lib/")]
    Runtime {
        /// Path tried.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Model files missing or malformed.
    #[error("model files not usable in {dir}: {reason}. Set MODEL_DIR (or --model-dir) to a folder with model.onnx, vocab.txt and config.json (the repository ships models/default)")]
    Files {
        /// Directory tried.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// ONNX Runtime failed while running the model (transient: the job is retried).
    #[error("inference failed: {0}")]
    Inference(String),
}

impl ModelError {
    /// Stable type string for logs, metrics and job errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelError::Runtime { .. } => "runtime_unavailable",
            ModelError::Files { .. } => "model_files",
            ModelError::Inference(_) => "inference_error",
        }
    }
}

impl From<ort::Error> for ModelError {
    fn from(e: ort::Error) -> Self {
        ModelError::Inference(e.to_string())
    }
}
