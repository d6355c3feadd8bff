//! Opening a checkpoint location: any object_store URL (`file:///dir`, `memory://name`,
//! `s3://bucket/prefix`), or a plain local directory path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use url::Url;

use crate::error::{Result, TopicsError};

/// An object store and the path of the checkpoint's root inside it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The store holding the checkpoint.
    pub store: Arc<dyn ObjectStore>,
    /// The checkpoint's root inside the store.
    pub root: Path,
    /// The URL as given, for messages.
    pub url: String,
}

/// Opens `location`. S3 settings come from the standard `AWS_*` environment variables
/// (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ALLOW_HTTP`); `memory://name` is one in-process store per name (for tests and
/// experiments: it forgets everything when the process ends).
pub fn open(location: &str) -> Result<Location> {
    let bad = |detail: String| TopicsError::Checkpoint {
        url: location.to_string(),
        detail,
    };
    let url = match Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => url,
        // A plain path (or a Windows drive letter parsed as a scheme).
        _ => {
            let path = std::path::absolute(location)
                .map_err(|e| bad(format!("not a URL nor a usable path: {e}")))?;
            std::fs::create_dir_all(&path)
                .map_err(|e| bad(format!("cannot create the directory: {e}")))?;
            Url::from_directory_path(&path)
                .map_err(|_| bad("not a URL nor an absolute path".into()))?
        }
    };
    let store: Arc<dyn ObjectStore>;
    let root: Path;
    match url.scheme() {
        "memory" => {
            static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
            let name = url.host_str().unwrap_or_default().to_string();
            let mut stores = STORES
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            store = stores.entry(name).or_default().clone();
            root = Path::from(url.path());
        }
        "file" => {
            let dir = url
                .to_file_path()
                .map_err(|_| bad("not a local path".into()))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| bad(format!("cannot create the directory: {e}")))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| bad(e.to_string()))?;
            store = Arc::new(local);
            root = Path::default();
        }
        "s3" | "s3a" => {
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| bad(e.to_string()))?;
            store = Arc::new(s3);
            root = Path::from(url.path());
        }
        _ => {
            let (parsed, path) = object_store::parse_url(&url).map_err(|e| bad(e.to_string()))?;
            store = Arc::from(parsed);
            root = path;
        }
    }
    Ok(Location {
        store,
        root,
        url: location.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("cp");
        let opened = open(plain.to_str().unwrap()).unwrap();
        assert!(plain.is_dir());
        assert_eq!(opened.root, Path::default());
        let url = format!("file://{}", dir.path().join("cp2").display());
        open(&url).unwrap();
        assert!(dir.path().join("cp2").is_dir());
        let m1 = open("memory://a/q1").unwrap();
        let m2 = open("memory://a/q2").unwrap();
        assert!(Arc::ptr_eq(&m1.store, &m2.store));
        assert_eq!(m1.root, Path::from("q1"));
        assert!(open("nosuch://x/y").is_err());
    }
}
