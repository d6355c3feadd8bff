//! The integration tests' helpers: everything comes from `dft-test-support` (brokers on free
//! loopback ports, producing, topic tables, running SQL), shared with the benchmarks.

pub use dft_test_support::*;
