//! rte_flow rules that queue the replies to a FULLNAT local address to the
//! worker whose slice holds the local port (DPVS's sa_pool on a flow
//! director): destination address == LIP and TCP or UDP destination port
//! & mask == worker → QUEUE worker. Where a port has them (`[[port]]
//! flow_steering`), replies need neither RSS nor the ring.
use std::ffi::CStr;
use std::net::IpAddr;

use super::DpdkError;

/// One rule: `proto` (TCP or UDP) packets to `lip` whose destination port
/// & `mask` == `value` go to rx queue `queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LportRule {
    pub lip: IpAddr,
    pub proto: u8,
    pub mask: u16,
    pub value: u16,
    pub queue: u16,
}

/// An installed rule; destroyed when dropped.
pub struct FlowRule {
    port: u16,
    rule: LportRule,
    handle: *mut dpdk_sys::rte_flow,
}

// SAFETY: a flow handle is an opaque token for the port's flow API, which
// the control thread alone calls.
unsafe impl Send for FlowRule {}

impl FlowRule {
    pub fn rule(&self) -> &LportRule {
        &self.rule
    }
}

/// The C structures of one rule; they must stay put while DPDK reads them.
struct Parts {
    attr: dpdk_sys::rte_flow_attr,
    ip4: [dpdk_sys::rte_flow_item_ipv4; 2],
    ip6: [dpdk_sys::rte_flow_item_ipv6; 2],
    tcp: [dpdk_sys::rte_flow_item_tcp; 2],
    udp: [dpdk_sys::rte_flow_item_udp; 2],
    queue: dpdk_sys::rte_flow_action_queue,
}

fn ptr<T>(x: &T) -> *const std::ffi::c_void {
    x as *const T as *const std::ffi::c_void
}

impl Parts {
    fn new(r: &LportRule) -> Box<Parts> {
        let mut p = Box::new(Parts {
            attr: Default::default(),
            ip4: Default::default(),
            ip6: Default::default(),
            tcp: Default::default(),
            udp: Default::default(),
            queue: dpdk_sys::rte_flow_action_queue { index: r.queue },
        });
        p.attr.set_ingress(1);
        match r.lip {
            IpAddr::V4(a) => {
                p.ip4[0].hdr.dst_addr = u32::from(a).to_be();
                p.ip4[1].hdr.dst_addr = u32::MAX;
            }
            IpAddr::V6(a) => {
                p.ip6[0].hdr.dst_addr = a.octets();
                p.ip6[1].hdr.dst_addr = [0xff; 16];
            }
        }
        p.tcp[0].hdr.dst_port = r.value.to_be();
        p.tcp[1].hdr.dst_port = r.mask.to_be();
        p.udp[0].hdr.dst_port = r.value.to_be();
        p.udp[1].hdr.dst_port = r.mask.to_be();
        p
    }

    fn items(&self, r: &LportRule) -> [dpdk_sys::rte_flow_item; 4] {
        let item = |type_, spec: *const std::ffi::c_void, mask: *const std::ffi::c_void| {
            dpdk_sys::rte_flow_item {
                type_,
                spec,
                last: std::ptr::null(),
                mask,
            }
        };
        let ip = match r.lip {
            IpAddr::V4(_) => item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_IPV4,
                ptr(&self.ip4[0]),
                ptr(&self.ip4[1]),
            ),
            IpAddr::V6(_) => item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_IPV6,
                ptr(&self.ip6[0]),
                ptr(&self.ip6[1]),
            ),
        };
        let l4 = if r.proto == 6 {
            item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_TCP,
                ptr(&self.tcp[0]),
                ptr(&self.tcp[1]),
            )
        } else {
            item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_UDP,
                ptr(&self.udp[0]),
                ptr(&self.udp[1]),
            )
        };
        [
            item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_ETH,
                std::ptr::null(),
                std::ptr::null(),
            ),
            ip,
            l4,
            item(
                dpdk_sys::RTE_FLOW_ITEM_TYPE_END,
                std::ptr::null(),
                std::ptr::null(),
            ),
        ]
    }

    fn actions(&self) -> [dpdk_sys::rte_flow_action; 2] {
        [
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: &self.queue as *const _ as *const std::ffi::c_void,
            },
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::RTE_FLOW_ACTION_TYPE_END,
                conf: std::ptr::null(),
            },
        ]
    }
}

fn flow_error(what: &str, ret: i32, e: &dpdk_sys::rte_flow_error) -> DpdkError {
    // The PMD's reason, where it says more than the errno does.
    let msg = (!e.message.is_null())
        // SAFETY: the PMD set message to a NUL-terminated static string.
        .then(|| {
            unsafe { CStr::from_ptr(e.message) }
                .to_string_lossy()
                .into_owned()
        })
        .filter(|m| *m != super::strerror(-ret));
    match msg {
        Some(m) => DpdkError::new(format!("{what} ({m})"), -ret),
        None => DpdkError::new(what.to_string(), -ret),
    }
}

/// Whether the device would take `rule` (`rte_flow_validate`).
pub fn validate(port: u16, rule: &LportRule) -> Result<(), DpdkError> {
    let parts = Parts::new(rule);
    let (items, actions) = (parts.items(rule), parts.actions());
    let mut err = dpdk_sys::rte_flow_error::default();
    // SAFETY: attr, items and actions point into `parts`, alive for the call;
    // err is a valid out pointer.
    let ret = unsafe {
        dpdk_sys::rte_flow_validate(
            port,
            &parts.attr,
            items.as_ptr(),
            actions.as_ptr(),
            &mut err,
        )
    };
    if ret != 0 {
        return Err(flow_error("the device refuses the rule", ret, &err));
    }
    Ok(())
}

/// Installs `rule` on `port`.
pub fn create(port: u16, rule: &LportRule) -> Result<FlowRule, DpdkError> {
    let parts = Parts::new(rule);
    let (items, actions) = (parts.items(rule), parts.actions());
    let mut err = dpdk_sys::rte_flow_error::default();
    // SAFETY: as in `validate`; the PMD copies what it keeps.
    let handle = unsafe {
        dpdk_sys::rte_flow_create(
            port,
            &parts.attr,
            items.as_ptr(),
            actions.as_ptr(),
            &mut err,
        )
    };
    if handle.is_null() {
        return Err(flow_error("cannot install the rule", -libc::EINVAL, &err));
    }
    Ok(FlowRule {
        port,
        rule: *rule,
        handle,
    })
}

impl Drop for FlowRule {
    fn drop(&mut self) {
        let mut err = dpdk_sys::rte_flow_error::default();
        // SAFETY: handle came from rte_flow_create on this port and is
        // destroyed once, here.
        unsafe {
            dpdk_sys::rte_flow_destroy(self.port, self.handle, &mut err);
        }
    }
}
