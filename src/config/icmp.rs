//! `[icmp]`: the rate limits on the ICMP messages rvs originates, by the
//! kernel's sysctl names and with its defaults (see netstack::icmp_limit).

use serde::Deserialize;

use super::Validator;
use crate::netstack::icmp_limit::{parse_ratemask_v6, IcmpLimits, NR_ICMP_TYPES};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIcmp {
    pub icmp_ratelimit: Option<i64>,
    pub icmp_msgs_per_sec: Option<i64>,
    pub icmp_msgs_burst: Option<i64>,
    pub icmp_ratemask: Option<i64>,
    pub icmpv6_ratelimit: Option<i64>,
    pub icmpv6_ratemask: Option<String>,
}

/// The kernel keeps these in C ints.
const INT_MAX: i64 = i32::MAX as i64;

impl Validator {
    pub(super) fn icmp(&mut self, raw: RawIcmp) -> IcmpLimits {
        let d = IcmpLimits::default();
        let icmp_ratelimit = self.int(
            "icmp.icmp_ratelimit",
            raw.icmp_ratelimit,
            d.icmp_ratelimit,
            0,
            INT_MAX,
        );
        let icmp_msgs_per_sec = self.int(
            "icmp.icmp_msgs_per_sec",
            raw.icmp_msgs_per_sec,
            d.icmp_msgs_per_sec,
            0,
            INT_MAX,
        );
        let icmp_msgs_burst = self.int(
            "icmp.icmp_msgs_burst",
            raw.icmp_msgs_burst,
            d.icmp_msgs_burst,
            0,
            INT_MAX,
        );
        let all_types = (1i64 << (NR_ICMP_TYPES + 1)) - 1;
        let icmp_ratemask = match raw.icmp_ratemask {
            Some(m) if !(0..=all_types).contains(&m) => {
                self.err(
                    "icmp.icmp_ratemask",
                    format!("must be between 0 and {all_types} (bit t for ICMP type t, types 0 to {NR_ICMP_TYPES}), got {m}"),
                );
                d.icmp_ratemask
            }
            Some(m) => m as u32,
            None => d.icmp_ratemask,
        };
        let icmpv6_ratelimit = self.int(
            "icmp.icmpv6_ratelimit",
            raw.icmpv6_ratelimit,
            d.icmpv6_ratelimit,
            0,
            INT_MAX,
        );
        let icmpv6_ratemask = match raw.icmpv6_ratemask.as_deref().map(parse_ratemask_v6) {
            None => d.icmpv6_ratemask,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                self.err("icmp.icmpv6_ratemask", e);
                d.icmpv6_ratemask
            }
        };
        IcmpLimits {
            icmp_ratelimit,
            icmp_msgs_per_sec,
            icmp_msgs_burst,
            icmp_ratemask,
            icmpv6_ratelimit,
            icmpv6_ratemask,
        }
    }
}
