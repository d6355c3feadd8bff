//! One folder per connector: everything that knows a broker lives here, behind the
//! [`Connector`](crate::connector::Connector) seam.

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
