//! ONNX Runtime: finding the shared library and the model, loading one
//! session per process, and choosing the execution provider.
//!
//! `ort` is built with `load-dynamic`, so the library is found at run time:
//! `ORT_DYLIB_PATH` if set, else `.ort/lib/libonnxruntime.so*` next to the
//! repository the binary was built in (where `scripts/setup.sh` puts it) or
//! the working directory. The model likewise: `MODEL_DIR`, else
//! `models/default` found the same way. So `target/release/couplet-worker`
//! runs with no variable set after the setup step.

use super::ModelError;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Requested execution device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// CPU execution provider.
    Cpu,
    /// CUDA execution provider, falling back to CPU with a warning.
    Cuda,
}

/// How to load the runtime and the model.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Model folder.
    pub model_dir: PathBuf,
    /// ONNX Runtime library file.
    pub ort_dylib: PathBuf,
    /// Device.
    pub device: Device,
    /// Intra-op threads (0 = ONNX Runtime's default: one per core).
    pub intra_threads: usize,
    /// Samples decoded and ranked per request at least (1 = no ranking).
    pub pool: usize,
    /// Samples decoded per request at most, when the batch is small (see `Generator::pool_for`).
    pub pool_idle: usize,
}

fn anchors() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/<bin> and target/<profile>/deps/<test>: walk up to the repo.
        for anc in exe.ancestors().skip(1).take(4) {
            v.push(anc.to_path_buf());
        }
    }
    v.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    if let Ok(cwd) = std::env::current_dir() {
        v.push(cwd);
    }
    v
}

/// The model folder: the explicit setting, else the first `models/default` found.
pub fn resolve_model_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    anchors()
        .into_iter()
        .map(|a| a.join("models/default"))
        .find(|p| p.join("model.onnx").is_file())
        .unwrap_or_else(|| PathBuf::from("models/default"))
}

/// The ONNX Runtime library: the explicit setting, else `.ort/lib/libonnxruntime.so*`.
pub fn resolve_ort_dylib(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    for a in anchors() {
        let dir = a.join(".ort/lib");
        for name in ["libonnxruntime.so", "libonnxruntime.so.1.31.1", "libonnxruntime.dylib"] {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from(".ort/lib/libonnxruntime.so")
}

static ENV: OnceLock<Result<(ort::environment::Environment, PathBuf), String>> = OnceLock::new();

fn environment(dylib: &Path) -> Result<&'static ort::environment::Environment, ModelError> {
    let res = ENV.get_or_init(|| {
        if !dylib.is_file() {
            return Err(format!("file not found: {}", dylib.display()));
        }
        let builder = ort::init_from(dylib).map_err(|e| e.to_string())?;
        let env = builder.with_name("couplet").build().map_err(|e| e.to_string())?;
        Ok((env, dylib.to_path_buf()))
    });
    match res {
        Ok((env, _)) => Ok(env),
        Err(reason) => Err(ModelError::Runtime { path: dylib.to_path_buf(), reason: reason.clone() }),
    }
}

/// A loaded session and which provider it runs on.
pub struct Loaded {
    /// The session.
    pub session: Session,
    /// `cpu` or `cuda`.
    pub provider: &'static str,
}

/// Loads the model's graph with the requested device: `config.json`'s `onnx_file` on CPU
/// (the int8 graph where one is installed), its `float_onnx_file` on CUDA (dynamic int8
/// quantisation is a CPU optimisation).
pub fn load_session(opts: &RuntimeOptions, cfg: &super::ModelConfig) -> Result<Loaded, ModelError> {
    let env = environment(&opts.ort_dylib)?;
    let file = match opts.device {
        Device::Cpu => &cfg.onnx_file,
        Device::Cuda => &cfg.float_onnx_file,
    };
    let model = opts.model_dir.join(file);
    if !model.is_file() {
        return Err(ModelError::Files { dir: opts.model_dir.clone(), reason: format!("{file} not found") });
    }
    let build = |cuda: bool| -> Result<Session, ort::Error> {
        let mut b = Session::builder(env)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(ort::Error::<()>::from)?;
        if opts.intra_threads > 0 {
            b = b.with_intra_threads(opts.intra_threads).map_err(ort::Error::<()>::from)?;
        }
        if cuda {
            b = b
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(ort::Error::<()>::from)?;
        }
        b.commit_from_file(&model)
    };
    let files_err = |e: ort::Error| ModelError::Files { dir: opts.model_dir.clone(), reason: e.to_string() };
    match opts.device {
        Device::Cpu => Ok(Loaded { session: build(false).map_err(files_err)?, provider: "cpu" }),
        Device::Cuda => match build(true) {
            Ok(session) => Ok(Loaded { session, provider: "cuda" }),
            Err(e) => {
                tracing::warn!(error = %e, "CUDA execution provider unavailable; falling back to CPU");
                Ok(Loaded { session: build(false).map_err(files_err)?, provider: "cpu" })
            }
        },
    }
}
