//! SSRF policy for webhook targets, applied at submission and again at
//! delivery (DNS answers may change in between).
//!
//! Only `http`/`https` URLs whose every resolved address is public pass.
//! Loopback, private, link-local (cloud metadata), unique-local, CGNAT,
//! multicast, documentation, unspecified and IPv4-mapped forms of these are
//! refused, and so are the IPv4-in-IPv6 tunnel ranges whose relays could
//! carry the request into IPv4 space we cannot see (6to4 `2002::/16` and its
//! IPv4 relay anycast `192.88.99.0/24`, Teredo `2001::/32`), unless the address or host name is in the operator's allowlist
//! (`WEBHOOK_ALLOWLIST`: comma-separated CIDRs and host names). Odd IP
//! spellings (decimal `2130706433`, hex `0x7f.1`) are normalised by the URL
//! parser before the check, so they cannot slip past.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Operator-approved exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl Allowlist {
    /// Parses `WEBHOOK_ALLOWLIST` (comma-separated CIDRs, IPs and host names).
    pub fn parse(s: &str) -> Result<Allowlist, String> {
        let mut a = Allowlist::default();
        for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            if let Ok(n) = item.parse::<IpNet>() {
                a.nets.push(n);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                a.nets.push(IpNet::from(ip));
            } else if item.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
                a.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!("WEBHOOK_ALLOWLIST entry `{item}` is neither a CIDR nor a host name"));
            }
        }
        Ok(a)
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    fn allows_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == &host.to_ascii_lowercase())
    }
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// Not http(s), no host, or unparsable.
    #[error("must be an http or https URL with a host")]
    BadUrl,
    /// The host resolves to a non-public address.
    #[error("resolves to a non-public address ({0}); not allowed")]
    Forbidden(IpAddr),
    /// DNS failed.
    #[error("host could not be resolved")]
    Unresolvable,
}

/// True for addresses a webhook may reach without an allowlist entry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg0 = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link local fe80::/10
                || (seg0 & 0xffc0) == 0xfec0 // site local (deprecated)
                || seg0 == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || seg0 == 0x0064 && v6.segments()[1] == 0xff9b // NAT64 can reach v4 private space
                || seg0 == 0x2002 // 6to4 2002::/16 embeds any v4 address, private ones included
                || seg0 == 0x2001 && v6.segments()[1] == 0x0000 // Teredo 2001::/32 (only this /32 of 2001::/16)
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0]) // v4-compatible ::a.b.c.d
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
        || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 6to4 relay anycast 192.88.99.0/24 (deprecated)
        || o[0] >= 240) // reserved
}

/// Checks a URL and returns the socket addresses it may be connected to
/// (callers must connect to exactly these, not resolve again).
pub async fn check(url: &url::Url, allow: &Allowlist) -> Result<Vec<SocketAddr>, SsrfError> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(SsrfError::BadUrl);
    }
    let host = url.host().ok_or(SsrfError::BadUrl)?;
    let port = url.port_or_known_default().ok_or(SsrfError::BadUrl)?;
    let addrs: Vec<SocketAddr> = match host {
        url::Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        url::Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        url::Host::Domain(d) => {
            let found: Vec<SocketAddr> = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                tokio::net::lookup_host((d, port)),
            )
            .await
            .map_err(|_| SsrfError::Unresolvable)?
            .map_err(|_| SsrfError::Unresolvable)?
            .collect();
            if found.is_empty() {
                return Err(SsrfError::Unresolvable);
            }
            if allow.allows_host(d) {
                return Ok(found);
            }
            found
        }
    };
    for a in &addrs {
        if !is_public(a.ip()) && !allow.allows_ip(a.ip()) {
            return Err(SsrfError::Forbidden(a.ip()));
        }
    }
    Ok(addrs)
}

/// Convenience for tests and docs: the v6 loopback.
pub const V6_LOOPBACK: Ipv6Addr = Ipv6Addr::LOCALHOST;

#[cfg(test)]
mod tests {
    use super::*;

    async fn refused(u: &str) -> bool {
        let url = url::Url::parse(u).expect("test URL parses");
        check(&url, &Allowlist::default()).await.is_err()
    }

    #[tokio::test]
    async fn non_public_targets_are_refused() {
        for u in [
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://localhost:8080/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://017700000001/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://100.64.0.1/",
        ] {
            assert!(refused(u).await, "{u} must be refused");
        }
        assert!(!refused("http://93.184.216.34/hook").await);
    }

    #[test]
    fn tunnel_ranges_are_refused_but_their_neighbours_are_public() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("test address parses");
        for a in [
            "2002:7f00:1::1",        // 6to4 of 127.0.0.1
            "2002:0a00:0001::1",     // 6to4 of 10.0.0.1
            "2002::",                // start of 2002::/16
            "2002:ffff:ffff::1",     // end of 2002::/16
            "2001:0:4136:e378::1",   // Teredo
            "2001::1",               // start of 2001::/32
            "2001:0:ffff:ffff::1",   // end of 2001::/32
            "192.88.99.1",           // 6to4 relay anycast
            "192.88.99.255",
            "::ffff:192.88.99.1",    // its v4-mapped form
        ] {
            assert!(!is_public(ip(a)), "{a} must be refused");
        }
        for a in [
            "2001:1::1",             // 2001:1::/32 is not Teredo
            "2001:4860:4860::8888",  // real unicast in 2001::/16
            "2003::1",               // next to 2002::/16
            "2001:db9::1",           // next to documentation
            "192.88.98.1",           // next to 192.88.99.0/24
            "192.88.100.1",
        ] {
            assert!(is_public(ip(a)), "{a} is public");
        }
        assert!(!is_public(ip("2001:db8::1")), "documentation stays refused");
    }

    #[tokio::test]
    async fn the_allowlist_opens_exactly_what_it_names() {
        let allow = Allowlist::parse("127.0.0.0/8, ::1").expect("valid allowlist");
        let ok = url::Url::parse("http://127.0.0.1:9/x").expect("url");
        assert!(check(&ok, &allow).await.is_ok());
        let no = url::Url::parse("http://10.0.0.1/x").expect("url");
        assert!(check(&no, &allow).await.is_err());
        assert!(Allowlist::parse("not a cidr/").is_err());
    }
}
