//! The model library against the real ONNX model and ONNX Runtime: styles
//! change the text measurably, seeds reproduce, unseeded calls vary, and a
//! missing runtime is one clear error naming the setting to fix.
#![allow(clippy::unwrap_used, missing_docs)]

use common::request::CoupletRequest;
use common::Style;
use worker::model::{resolve_model_dir, resolve_ort_dylib, Device, Generator, RuntimeOptions};

fn generator() -> Generator {
    Generator::load(&RuntimeOptions {
        model_dir: resolve_model_dir(None),
        ort_dylib: resolve_ort_dylib(None),
        device: Device::Cpu,
        intra_threads: 0,
        pool: worker::model::DEFAULT_POOL,
        pool_idle: worker::model::DEFAULT_POOL_IDLE,
    })
    .expect("model loads (run scripts/setup.sh for ONNX Runtime)")
}

fn theme_reqs(style: Style, n: u64) -> Vec<common::request::ValidRequest> {
    let themes = ["春", "福", "家和", "龙年", "吉祥", "平安"];
    (0..n)
        .map(|i| {
            CoupletRequest { theme: Some(themes[i as usize % themes.len()].into()), style: Some(style.as_str().into()), seed: Some(i), ..Default::default() }
                .validate()
                .unwrap()
        })
        .collect()
}

#[test]
fn each_style_leans_towards_its_own_vocabulary() {
    let g = generator();
    let n = 64;
    let mut share = std::collections::HashMap::new();
    for style in Style::ALL {
        let out = g.generate_batch(&theme_reqs(style, n)).unwrap();
        let text: String = out.iter().map(|r| { let c = r.as_ref().unwrap(); format!("{}{}", c.upper, c.lower) }).collect();
        share.insert(style, text);
    }
    let hit = |text: &str, lex: &str| text.chars().filter(|c| lex.contains(*c)).count() as f64 / text.chars().count() as f64;
    for style in [Style::Festive, Style::Literary, Style::Business, Style::Family] {
        let own = hit(&share[&style], style.lexicon());
        let base = hit(&share[&Style::Classic], style.lexicon());
        assert!(own > base * 1.3 + 0.02, "{style}: own-lexicon share {own:.3} vs classic {base:.3}");
        assert_ne!(share[&style], share[&Style::Classic]);
    }
}

#[test]
fn seeds_reproduce_and_unseeded_calls_vary() {
    let g = generator();
    let reqs = theme_reqs(Style::Festive, 8);
    let a = g.generate_batch(&reqs).unwrap();
    let b = g.generate_batch(&reqs).unwrap();
    assert_eq!(a, b);
    let unseeded: Vec<_> = (0..6)
        .map(|_| CoupletRequest { theme: Some("春".into()), ..Default::default() }.validate().unwrap())
        .collect();
    let out = g.generate_batch(&unseeded).unwrap();
    let distinct: std::collections::HashSet<String> = out.iter().map(|r| r.as_ref().unwrap().upper.clone()).collect();
    assert!(distinct.len() >= 3, "{distinct:?}");
}

#[test]
fn a_missing_runtime_library_is_one_clear_error_not_a_panic() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_couplet-worker"))
        .args(["generate", "--theme", "春"])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ORT_DYLIB_PATH") && err.contains("/nonexistent/libonnxruntime.so"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_couplet-worker"))
        .args(["generate", "--theme", "春"])
        .env("MODEL_DIR", "/nonexistent-model")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MODEL_DIR"));
}

#[test]
fn cuda_without_a_gpu_build_falls_back_to_cpu_with_a_warning() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_couplet-worker"))
        .args(["generate", "--device", "cuda", "--theme", "春", "--seed", "1"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    if !err.contains("falling back to CPU") {
        // Only on a machine whose ONNX Runtime has CUDA (onnxruntime-gpu) and a GPU.
        assert!(std::path::Path::new("/dev/nvidia0").exists(), "{err}");
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hengpi"].as_str().unwrap().chars().count(), 4);
}
