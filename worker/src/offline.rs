//! Offline commands: `generate` (bulk generation to JSON lines, also useful
//! to users) and `bench` (model throughput per batch size, peak memory, and
//! optionally character accuracy on a test split). Both call the same
//! [`Generator::generate_batch`] the queue consumer uses.

use crate::config::{BenchArgs, GenerateArgs};
use crate::model::Generator;
use common::request::CoupletRequest;
use serde_json::json;
use std::io::{BufRead, Write};
use std::time::Instant;

fn error_json(kind: &str, message: &str) -> serde_json::Value {
    json!({"error": {"type": kind, "message": message}})
}

/// Runs `generate`; returns the process exit code.
pub fn generate(gen: &Generator, args: &GenerateArgs) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut lines: Vec<Result<common::request::ValidRequest, serde_json::Value>> = Vec::new();
    if let Some(path) = &args.upper_file {
        let f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line?;
            let req = CoupletRequest {
                upper: Some(line.trim().to_string()),
                style: Some(args.style.clone()),
                theme: args.theme.clone(),
                seed: args.seed.map(|s| s.wrapping_add(i as u64)),
                candidates: args.candidates,
                head: args.head.clone(),
                ..Default::default()
            };
            lines.push(req.validate().map_err(|e| error_json(e.kind(), &e.to_string())));
        }
    } else if args.theme.is_some() {
        for i in 0..args.count {
            let req = CoupletRequest {
                theme: args.theme.clone(),
                style: Some(args.style.clone()),
                length: args.length,
                seed: args.seed.map(|s| s.wrapping_add(i as u64)),
                candidates: args.candidates,
                head: args.head.clone(),
                ..Default::default()
            };
            match req.validate() {
                Ok(v) => lines.push(Ok(v)),
                Err(e) => {
                    eprintln!("error: {} ({})", e, e.kind());
                    return Ok(2);
                }
            }
        }
    } else {
        eprintln!("error: give --upper-file FILE or --theme THEME");
        return Ok(2);
    }
    for chunk in lines.chunks(args.batch.max(1)) {
        let valid: Vec<_> = chunk.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        let mut results = gen.generate_batch(&valid)?.into_iter();
        for item in chunk {
            let v = match item {
                Err(e) => e.clone(),
                Ok(_) => match results.next() {
                    Some(Ok(c)) => json!({"upper": c.upper, "lower": c.lower, "hengpi": c.hengpi, "candidates": c.candidates}),
                    Some(Err(e)) => error_json(e.kind(), &e.to_string()),
                    None => error_json("internal", "missing result"),
                },
            };
            writeln!(out, "{v}")?;
        }
    }
    Ok(0)
}

/// Peak resident set size of this process, in MiB (VmHWM).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Runs `bench`; prints a table and returns the exit code.
pub fn bench(gen: &Generator, args: &BenchArgs) -> anyhow::Result<i32> {
    let themes = ["龙年 吉祥", "开业大吉", "家和", "春", "福寿", "金榜题名", "国泰民安", "马到成功"];
    let styles = common::Style::ALL;
    println!(
        "model bench: provider={} load={:.3}s candidates={} pool={} (samples decoded per request at batch {}: {})",
        gen.provider(),
        gen.load_seconds(),
        args.candidates,
        gen.pool(),
        args.batches.iter().map(|b| b.to_string()).collect::<Vec<_>>().join("/"),
        args.batches.iter().map(|&b| gen.pool_for(b).max(args.candidates.max(1) as usize).to_string()).collect::<Vec<_>>().join("/")
    );
    println!("{:>6} {:>10} {:>14} {:>14} {:>12}", "batch", "batches", "couplets/s", "ms/batch", "ms/couplet");
    let mut per_couplet_ms = Vec::new();
    for &bs in &args.batches {
        let reqs: Vec<_> = (0..bs)
            .map(|i| {
                CoupletRequest {
                    theme: Some(themes[i % themes.len()].to_string()),
                    style: Some(styles[i % styles.len()].as_str().to_string()),
                    length: Some(7),
                    seed: Some(i as u64),
                    candidates: Some(args.candidates),
                    ..Default::default()
                }
                .validate()
            })
            .collect::<Result<_, _>>()?;
        gen.generate_batch(&reqs)?; // warm-up
        let t0 = Instant::now();
        let mut n = 0usize;
        while t0.elapsed().as_secs_f64() < args.seconds || n == 0 {
            let res = gen.generate_batch(&reqs)?;
            if res.iter().any(|r| r.is_err()) {
                anyhow::bail!("bench batch had a failed item");
            }
            n += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        let cps = (n * bs) as f64 / secs;
        per_couplet_ms.push((bs, 1000.0 / cps));
        println!("{:>6} {:>10} {:>14.1} {:>14.2} {:>12.3}", bs, n, cps, secs * 1000.0 / n as f64, 1000.0 / cps);
    }
    if let (Some(one), Some(b32)) = (per_couplet_ms.iter().find(|x| x.0 == 1), per_couplet_ms.iter().find(|x| x.0 == 32)) {
        println!("batch 32 vs batch 1, per couplet: {:.2}x faster", one.1 / b32.1);
    }
    if let Some(path) = &args.accuracy_file {
        let text = std::fs::read_to_string(path)?;
        let mut pairs: Vec<(String, String)> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once('\t').map(|(u, lo)| (u.trim().to_string(), lo.trim().to_string())))
            .collect();
        if args.accuracy_limit > 0 {
            pairs.truncate(args.accuracy_limit);
        }
        let (mut hit, mut total, mut failed) = (0usize, 0usize, 0usize);
        for chunk in pairs.chunks(64) {
            let mut reqs = Vec::new();
            let mut refs = Vec::new();
            for (u, lo) in chunk {
                let r = CoupletRequest { upper: Some(u.clone()), style: Some("classic".into()), seed: Some(0), ..Default::default() };
                if let Ok(v) = r.validate() {
                    reqs.push(v);
                    refs.push(lo.clone());
                }
            }
            for (res, reference) in gen.generate_batch(&reqs)?.into_iter().zip(refs) {
                match res {
                    Ok(c) => {
                        for (a, b) in c.lower.chars().zip(reference.chars()) {
                            total += 1;
                            hit += usize::from(a == b);
                        }
                    }
                    Err(_) => failed += 1,
                }
            }
        }
        println!(
            "accuracy: {} pairs, char accuracy {:.2}% ({hit}/{total}), failed {failed}",
            pairs.len(),
            100.0 * hit as f64 / total.max(1) as f64
        );
    }
    println!("peak RSS: {:.1} MiB", peak_rss_mib());
    Ok(0)
}
