//! The host's side of the exception path: the tap interface DPDK's net_tap
//! made, the health-check sources on it, and policy routes that send only
//! traffic from those sources through it. Nothing else on the host routes
//! differently, so checks can share a machine with its own management
//! network. Set up with iproute2's `ip`, undone on drop.
use std::net::IpAddr;
use std::process::Command;

/// The priority of the `from SOURCE lookup TABLE` rules: before the main
/// table (32766), after local (0).
const RULE_PREF: &str = "3260";

#[derive(Debug)]
pub struct HostRoutes {
    tap: String,
    sources: Vec<IpAddr>,
    table: u32,
}

fn family(a: &IpAddr) -> &'static str {
    if a.is_ipv4() {
        "-4"
    } else {
        "-6"
    }
}

pub(crate) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl HostRoutes {
    /// Brings `tap` up with the sources on it and routes their traffic
    /// into it through `table`.
    pub fn set_up(tap: &str, sources: &[IpAddr], table: u32) -> Result<HostRoutes, String> {
        let routes = HostRoutes {
            tap: tap.to_string(),
            sources: sources.to_vec(),
            table,
        };
        let t = table.to_string();
        // A rule left by an rvsd that was killed goes first.
        routes.remove_rules();
        if sources.iter().any(IpAddr::is_ipv6) {
            // The namespace's default may have IPv6 off for new interfaces
            // (test topologies and routers often do).
            let knob = format!("/proc/sys/net/ipv6/conf/{tap}/disable_ipv6");
            std::fs::write(&knob, "0").map_err(|e| format!("{knob}: {e}"))?;
        }
        ip(&["link", "set", tap, "up"])?;
        for a in sources {
            let (f, s) = (family(a), a.to_string());
            if a.is_ipv4() {
                ip(&[f, "addr", "add", &format!("{s}/32"), "dev", tap])?;
            } else {
                ip(&[f, "addr", "add", &format!("{s}/128"), "dev", tap, "nodad"])?;
            }
            ip(&[f, "route", "replace", "default", "dev", tap, "table", &t])?;
            ip(&[
                f, "rule", "add", "from", &s, "lookup", &t, "pref", RULE_PREF,
            ])?;
        }
        Ok(routes)
    }

    fn remove_rules(&self) {
        let t = self.table.to_string();
        for a in &self.sources {
            let s = a.to_string();
            // Repeated: a crashed run may have left more than one.
            while ip(&[family(a), "rule", "del", "from", &s, "lookup", &t]).is_ok() {}
        }
    }

    pub fn tap(&self) -> &str {
        &self.tap
    }
}

impl Drop for HostRoutes {
    /// The tap, its addresses and its routes go with the port; the rules
    /// live in the namespace and must be taken out.
    fn drop(&mut self) {
        self.remove_rules();
    }
}

/// The MAC of a kernel interface, from sysfs.
pub fn interface_mac(name: &str) -> Result<[u8; 6], String> {
    let path = format!("/sys/class/net/{name}/address");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{path}: {text:?} is not a MAC address"));
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| format!("{path}: {text:?} is not a MAC address"))?;
    }
    Ok(mac)
}
