//! The tokio runtime this module owns. DataFusion's Python package has its own runtime, but
//! it lives in another shared library (its own copy of tokio's thread-locals), so code of this
//! module polled by the host would find no reactor: the Kafka and NATS clients register
//! sockets and timers with the runtime that is *current* when they are polled. The FFI
//! wrappers enter this runtime while polling streams (the handle given to `FFI_TableProvider`);
//! [`InRuntime`] does the same for planning (`scan`, `insert_into`, the DDL factory), which the
//! FFI layer does not wrap.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::runtime::{Handle, Runtime};

/// The module's runtime, started on first use: the reactor, the partition readers and the
/// sinks' writers run on its threads (one per core); DataFusion's operators above the scan run
/// on the host's.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("datafusion-topics")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("datafusion_topics cannot start its tokio runtime: {e}"))
    })
}

/// A handle to [`runtime`].
pub fn handle() -> Handle {
    runtime().handle().clone()
}

/// A future polled inside this module's runtime context, wherever it is driven from.
pub struct InRuntime<F> {
    handle: Handle,
    inner: Pin<Box<F>>,
}

impl<F: Future> InRuntime<F> {
    pub fn new(inner: F) -> Self {
        Self {
            handle: handle(),
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _entered = this.handle.enter();
        this.inner.as_mut().poll(cx)
    }
}
