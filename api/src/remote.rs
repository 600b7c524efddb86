//! The client's socket address, handed from the accept loop to the routes.
//!
//! [`crate::server`] records each connection's peer in the request's
//! extensions ([`ClientAddr`]); [`crate::routes`] reads it back with
//! [`remote_addr`]. Both depend on this module and neither on the other's
//! internals, so the route table stays usable without the server (`warp::test`,
//! the fuzz target) and the server without knowing how routes use the address.

use std::convert::Infallible;
use std::net::SocketAddr;
use warp::Filter;

/// The client's socket address, put in each request's extensions by the
/// server's accept loop (warp's own is private to warp's server).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The remote address for the routes: the one the server recorded, else
/// warp's (which `warp::test` sets).
pub fn remote_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>()
        .and(warp::addr::remote())
        .map(|ours: Option<ClientAddr>, warps: Option<SocketAddr>| ours.map(|a| a.0).or(warps))
}
