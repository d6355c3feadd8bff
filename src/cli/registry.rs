//! The CLI's object-store registry: datafusion-cli resolves every `LOCATION` to an object
//! store before the table factory runs, so broker locations (`kafka://`, `nats://`, `tls://`)
//! get an empty placeholder store here and every other URL goes to datafusion-cli's
//! instrumented registry (local files, S3, GCS, HTTP, with `\object_store_profiling`).

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion_cli::object_storage::instrumented::InstrumentedObjectStoreRegistry;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use url::Url;

/// An object-store registry that accepts broker locations and delegates everything else.
#[derive(Debug)]
pub struct BrokerAwareRegistry {
    inner: Arc<InstrumentedObjectStoreRegistry>,
    /// Returned for broker URLs; topic tables never read or write it.
    placeholder: Arc<dyn ObjectStore>,
}

impl BrokerAwareRegistry {
    /// Wraps datafusion-cli's instrumented registry.
    pub fn new(inner: Arc<InstrumentedObjectStoreRegistry>) -> Self {
        Self {
            inner,
            placeholder: Arc::new(InMemory::new()),
        }
    }

    fn is_broker(url: &Url) -> bool {
        crate::connector::connector_schemes().contains(&url.scheme())
    }
}

impl ObjectStoreRegistry for BrokerAwareRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        if Self::is_broker(url) {
            return None;
        }
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if Self::is_broker(url) {
            return Ok(Arc::clone(&self.placeholder));
        }
        self.inner.get_store(url)
    }
}
