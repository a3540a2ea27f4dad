//! The rules at start (`ctl.rules`, `[[health.check]]`) and their save at
//! stop.
use super::*;

/// `[[health.check]]`, through the same commands as `rvsadm --check-set`
/// and `--sorry-set`; a service the rules did not make is an error.
pub(super) fn apply_checks(engine: &Mutex<Engine>, cfg: &Config) -> Result<(), DaemonError> {
    let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
    for (i, c) in cfg.health.checks.iter().enumerate() {
        let mut lines = vec![[
            vec!["--check-set".to_string()],
            c.service.clone(),
            c.words.clone(),
        ]
        .concat()];
        if let Some(f) = &c.fallback {
            lines.push(
                [
                    vec!["--sorry-set".to_string()],
                    c.service.clone(),
                    f.clone(),
                ]
                .concat(),
            );
        }
        for args in lines {
            let r = e.execute("rvsadm", &args, None);
            if r.code != 0 {
                return Err(err(format!(
                    "health.check[{i}] ({}): {}",
                    c.service.join(" "),
                    r.stderr.trim()
                )));
            }
        }
    }
    Ok(())
}

pub(super) fn apply_rules(
    engine: &Mutex<Engine>,
    path: &std::path::Path,
) -> Result<(), DaemonError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("ctl.rules: cannot read {}: {e}", path.display())))?;
    let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
    let reply = e.restore("rvsd", &text);
    if reply.code != 0 {
        let why = reply.stderr.trim_end().replace('\n', "; ");
        return Err(err(format!("ctl.rules: {}: {why}", path.display())));
    }
    log::info!(
        "applied {} service(s) from {}",
        e.table().services().len(),
        path.display()
    );
    Ok(())
}

/// ipvsadm.service's save at stop. Every change was saved already; this
/// one retries a save that failed (a full disk since freed).
pub(super) fn save_rules_at_stop(engine: &Mutex<Engine>) {
    let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
    match e.save_rules() {
        Some(Ok(path)) => log::info!("rules saved to {}", path.display()),
        Some(Err(why)) => log::error!("ctl.persist: cannot save the rules at stop: {why}"),
        None => {}
    }
}
