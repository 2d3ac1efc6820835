//! Networks in CIDR notation and the host addresses an instance may hold in them. Pure
//! arithmetic (which addresses are assignable, whether one lies in a network); which
//! ones are free the writer asks the store.

use std::net::IpAddr;

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: u128,
    prefix: u8,
    v4: bool,
}

fn parse_addr(raw: &str) -> Option<(u128, bool)> {
    match raw.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some((u128::from(u32::from(a)), true)),
        IpAddr::V6(a) => Some((u128::from(a), false)),
    }
}

fn format_addr(value: u128, v4: bool) -> String {
    if v4 {
        std::net::Ipv4Addr::from(value as u32).to_string()
    } else {
        std::net::Ipv6Addr::from(value).to_string()
    }
}

impl Network {
    /// Parses `10.0.0.0/24` or `fd00::/64`; host bits below the prefix are ignored.
    pub fn parse(cidr: &str) -> Option<Network> {
        let (addr, len) = cidr.split_once('/')?;
        let (value, v4) = parse_addr(addr)?;
        let prefix: u8 = len.parse().ok()?;
        let bits = if v4 { 32 } else { 128 };
        if prefix > bits {
            return None;
        }
        let host_bits = u32::from(bits - prefix);
        let mask = if host_bits >= 128 {
            0
        } else {
            !((1u128 << host_bits) - 1)
        };
        Some(Network {
            base: value & mask,
            prefix,
            v4,
        })
    }

    fn bits(&self) -> u8 {
        if self.v4 { 32 } else { 128 }
    }

    fn size(&self) -> u128 {
        let host_bits = u32::from(self.bits() - self.prefix);
        if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        }
    }

    /// Whether `addr` is an address of this network's family inside it.
    pub fn contains(&self, addr: &str) -> bool {
        match parse_addr(addr) {
            Some((value, v4)) if v4 == self.v4 => {
                value >= self.base && value - self.base < self.size()
            }
            _ => false,
        }
    }

    /// How many addresses instances may hold: all but the network address, the first
    /// host (the gateway) and, on IPv4, the broadcast address.
    pub fn hosts(&self) -> u128 {
        let reserved = if self.v4 { 3 } else { 2 };
        self.size().saturating_sub(reserved)
    }

    /// The `n`th assignable address (from 0), if there is one.
    pub fn host(&self, n: u128) -> Option<String> {
        (n < self.hosts()).then(|| format_addr(self.base + 2 + n, self.v4))
    }

    /// The canonical spelling of an address of this network (e.g. `fd00::5`).
    pub fn canonical(&self, addr: &str) -> Option<String> {
        self.contains(addr)
            .then(|| parse_addr(addr).map(|(v, _)| format_addr(v, self.v4)))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_hosts_skip_network_gateway_and_broadcast() {
        let n = Network::parse("10.0.0.0/24").expect("cidr");
        assert_eq!(n.hosts(), 253);
        assert_eq!(n.host(0).as_deref(), Some("10.0.0.2"));
        assert_eq!(n.host(252).as_deref(), Some("10.0.0.254"));
        assert_eq!(n.host(253), None);
        assert!(n.contains("10.0.0.77"));
        assert!(!n.contains("10.0.1.1"));
        assert!(!n.contains("fd00::1"));
        assert_eq!(Network::parse("10.0.0.0/31").map(|n| n.hosts()), Some(0));
    }

    #[test]
    fn host_bits_of_the_base_are_ignored_and_ipv6_works() {
        let n = Network::parse("192.168.7.99/16").expect("cidr");
        assert_eq!(n.host(0).as_deref(), Some("192.168.0.2"));
        let v6 = Network::parse("fd00::/64").expect("cidr");
        assert_eq!(v6.host(0).as_deref(), Some("fd00::2"));
        assert_eq!(v6.canonical("FD00:0::5").as_deref(), Some("fd00::5"));
        assert!(Network::parse("10.0.0.0/33").is_none());
        assert!(Network::parse("x/8").is_none());
    }
}
