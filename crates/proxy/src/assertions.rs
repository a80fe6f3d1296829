//! Budgets every request pays, checked (as ztunnel's `assertions.rs`): the
//! size of the futures hyper moves once per request (and boxes per HTTP/2
//! stream). A change that bloats them fails here, loudly; one that shrinks
//! them lowers the number. Sizes are the test build's (unoptimised), which
//! are larger than a release build's but grow with them.

use crate::config::listener::Direction;
use crate::config::route::{Forward, Route};
use crate::conn::ConnCtx;
use crate::snapshot::Clusters;
use hyper::Request;
use hyper::body::Incoming;
use std::sync::Arc;

fn size_of_return2<A, B, F>(_: fn(A, B) -> F) -> usize {
    std::mem::size_of::<F>()
}

#[allow(clippy::type_complexity)]
fn size_of_return7<A, B, C, D, E, G, H, F>(_: fn(A, B, C, D, E, G, H) -> F) -> usize {
    std::mem::size_of::<F>()
}

/// `size` is within `[budget - slack, budget]`.
fn within(what: &str, size: usize, budget: usize, slack: usize) {
    assert!(size <= budget, "{what} grew to {size} bytes (budget {budget}): every request pays for it");
    assert!(size + slack >= budget, "{what} shrank to {size} bytes: lower its budget ({budget}) to keep the gain");
}

#[test]
fn the_request_futures_stay_within_their_budget() {
    let handle = size_of_return2::<Arc<ConnCtx>, Request<Incoming>, _>(crate::http::handle::handle);
    let forward = size_of_return7::<
        &Arc<ConnCtx>,
        &Clusters,
        Direction,
        &Route,
        &Forward,
        Request<Incoming>,
        Option<&crate::http::observe::Observed>,
        _,
    >(crate::http::forward::forward);
    eprintln!("handle {handle} bytes, forward {forward} bytes");
    within("the request future (http::handle)", handle, HANDLE, 256);
    within("the forward future (http::forward)", forward, FORWARD, 256);
}

const HANDLE: usize = 2264;
const FORWARD: usize = 1824;
