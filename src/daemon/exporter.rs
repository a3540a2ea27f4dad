//! The Prometheus exporter's sources: ports, workers, pool, services.
use super::*;

/// Starts serving /metrics from the running daemon's parts.
#[allow(clippy::too_many_arguments)]
pub(super) fn start_metrics(
    listener: MetricsListener,
    cfg: &Config,
    ports: &[Port],
    flow_rules: &HashMap<u16, Arc<AtomicU64>>,
    lcores: &[u32],
    counters: &[Arc<WorkerCounters>],
    pool: &Arc<Mempool>,
    services: &Arc<ArcSwap<ServiceSet>>,
    session_log: Option<crate::sessionlog::writer::Counters>,
    vrrp: Option<Arc<crate::vrrp::status::Status>>,
    announce: Option<Arc<crate::announce::Status>>,
) -> Option<MetricsServer> {
    let sources = MetricsSources {
        workers: lcores
            .iter()
            .zip(counters)
            .enumerate()
            .map(|(index, (&lcore, c))| WorkerSource {
                index,
                lcore,
                counters: c.clone(),
            })
            .collect(),
        ports: cfg
            .ports
            .iter()
            .zip(ports)
            .map(|(pc, p)| metrics::port_source(&pc.name, p, flow_rules.get(&p.id()).cloned()))
            .collect(),
        pools: vec![metrics::pool_source("rvs_pkt", pool.clone())],
        services: services.clone(),
        dpdk_version: metrics::dpdk_version(),
        session_log,
        vrrp,
        announce,
    };
    match listener.serve(sources) {
        Ok(server) => {
            log::info!("metrics at http://{}/metrics", server.local_addr());
            Some(server)
        }
        Err(e) => {
            log::error!("cannot start the metrics thread: {e}");
            None
        }
    }
}
