//! The proxy against real clients (curl, raw sockets, hyper) and test
//! backends on 127.0.0.x.
#![cfg(feature = "linux")]
#![allow(unreachable_pub)]

mod failures;
mod fast_path;
mod limits;
mod protocols;
mod request_head;
mod routing;
mod support;
mod tls;
