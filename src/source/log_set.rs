//! The topics one table reads: a single topic, a list (`kafka:///orders,payments`), or every
//! topic whose name matches a pattern (`topic.pattern`), each a [`LogSource`]. Scans and
//! micro-batches ask the set for its members when they plan, so a pattern also takes in topics
//! created after the table was declared.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use regex::Regex;

use crate::error::{Result, TopicsError};
use crate::source::LogSource;

/// Opens the topics of one broker connection: what a table over several topics, or a topic
/// pattern, needs from its connector.
#[async_trait]
pub trait LogCatalog: fmt::Debug + Send + Sync {
    /// Every topic (stream) name the brokers hold that a table may read (internal topics
    /// such as `__consumer_offsets` left out).
    async fn topic_names(&self) -> Result<Vec<String>>;

    /// A source for `topic` with the table's settings; connects on first use.
    fn open(&self, topic: &str) -> Result<Arc<dyn LogSource>>;
}

/// Which topics a table reads.
#[derive(Debug, Clone)]
pub enum TopicSelector {
    /// These topics, in this order.
    Named(Vec<String>),
    /// Every topic whose whole name matches (`topic.pattern`), in name order.
    Pattern(Regex),
}

impl fmt::Display for TopicSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(names) => f.write_str(&names.join(",")),
            Self::Pattern(re) => write!(f, "pattern '{}'", pattern_text(re)),
        }
    }
}

/// The pattern as the user wrote it (without the anchors [`parse_topic_pattern`] adds).
pub fn pattern_text(re: &Regex) -> &str {
    let s = re.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

/// The topics of one table, each a [`LogSource`]; cheap to clone (shared).
#[derive(Clone)]
pub struct LogSet {
    inner: Arc<Inner>,
}

struct Inner {
    kind: &'static str,
    selector: TopicSelector,
    catalog: Option<Arc<dyn LogCatalog>>,
    /// Sources opened so far, by topic (a source keeps its metadata client).
    opened: Mutex<BTreeMap<String, Arc<dyn LogSource>>>,
    /// The label shown as the table's topic (`orders`, `orders,payments`, `orders-.*`).
    label: String,
}

impl fmt::Debug for LogSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSet")
            .field("kind", &self.inner.kind)
            .field("selector", &self.inner.selector)
            .finish()
    }
}

impl LogSet {
    /// A table over one source.
    pub fn single(source: Arc<dyn LogSource>) -> Self {
        let topic = source.topic().to_string();
        Self {
            inner: Arc::new(Inner {
                kind: source.kind(),
                label: topic.clone(),
                selector: TopicSelector::Named(vec![topic.clone()]),
                catalog: None,
                opened: Mutex::new([(topic, source)].into()),
            }),
        }
    }

    /// A table over the topics `selector` chooses among those `catalog` opens.
    pub fn new(kind: &'static str, selector: TopicSelector, catalog: Arc<dyn LogCatalog>) -> Self {
        let label = match &selector {
            TopicSelector::Named(names) => names.join(","),
            TopicSelector::Pattern(re) => pattern_text(re).to_string(),
        };
        Self {
            inner: Arc::new(Inner {
                kind,
                label,
                selector,
                catalog: Some(catalog),
                opened: Mutex::default(),
            }),
        }
    }

    /// The connector's name, lower case.
    pub fn kind(&self) -> &'static str {
        self.inner.kind
    }

    /// The table's topic as people read it: the topic, the list joined by commas, or the
    /// pattern.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Which topics the table reads.
    pub fn selector(&self) -> &TopicSelector {
        &self.inner.selector
    }

    /// True when the table reads one named topic (no list, no pattern).
    pub fn is_single(&self) -> bool {
        matches!(&self.inner.selector, TopicSelector::Named(n) if n.len() == 1)
    }

    /// True when the table reads whatever topics match a pattern: new ones may appear.
    pub fn is_pattern(&self) -> bool {
        matches!(self.inner.selector, TopicSelector::Pattern(_))
    }

    /// True when `topic` is one the table reads (listed, or matching the pattern).
    pub fn selects(&self, topic: &str) -> bool {
        match &self.inner.selector {
            TopicSelector::Named(names) => names.iter().any(|n| n == topic),
            TopicSelector::Pattern(re) => full_match(re, topic),
        }
    }

    /// The source of `topic`, opened once and kept. Fails for a topic the table does not read.
    pub fn member(&self, topic: &str) -> Result<Arc<dyn LogSource>> {
        if let Some(source) = self.lock().get(topic) {
            return Ok(Arc::clone(source));
        }
        if !self.selects(topic) {
            return Err(TopicsError::plan(format!(
                "topic '{topic}' is not one this table reads ({})",
                self.inner.selector
            )));
        }
        let catalog =
            self.inner.catalog.as_ref().ok_or_else(|| {
                TopicsError::plan(format!("this table cannot open topic '{topic}'"))
            })?;
        let source = catalog.open(topic)?;
        self.lock().insert(topic.to_string(), Arc::clone(&source));
        Ok(source)
    }

    /// The table's topics now, in selector order (a pattern asks the brokers which exist).
    pub async fn members(&self) -> Result<Vec<Arc<dyn LogSource>>> {
        let names = self.topic_names().await?;
        names.iter().map(|t| self.member(t)).collect()
    }

    /// The names of the table's topics now (for a pattern: those that exist now, sorted).
    pub async fn topic_names(&self) -> Result<Vec<String>> {
        match &self.inner.selector {
            TopicSelector::Named(names) => Ok(names.clone()),
            TopicSelector::Pattern(re) => {
                let catalog = self.inner.catalog.as_ref().ok_or_else(|| {
                    TopicsError::plan("a topic pattern needs a connector that lists topics")
                })?;
                let mut names: Vec<String> = catalog
                    .topic_names()
                    .await?
                    .into_iter()
                    .filter(|t| full_match(re, t))
                    .collect();
                names.sort();
                Ok(names)
            }
        }
    }

    /// The partitions of `source`, one of the set's topics. A topic a pattern listed that is
    /// gone by the time its partitions are asked for is left out (`None`); a named topic that
    /// is missing is an error.
    pub async fn partitions_of(&self, source: &dyn LogSource) -> Result<Option<Vec<i32>>> {
        match source.partitions().await {
            Ok(p) => Ok(Some(p)),
            Err(TopicsError::UnknownTopic { .. }) if self.is_pattern() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks that every named topic exists, or that the pattern matches at least one.
    pub async fn check(&self) -> Result<()> {
        let members = self.members().await?;
        if let (TopicSelector::Pattern(re), true) = (&self.inner.selector, members.is_empty()) {
            return Err(TopicsError::InvalidOption {
                key: "topic.pattern".into(),
                value: pattern_text(re).to_string(),
                reason: "no topic on the brokers matches it (the whole name must match); \
                         create one first, or check the pattern"
                    .into(),
            });
        }
        for m in members {
            m.partitions().await?;
        }
        Ok(())
    }

    /// True when every topic's timestamps never decrease with offsets. A pattern answers
    /// false: a topic that appears later may not be so.
    pub async fn timestamps_ordered(&self) -> Result<bool> {
        if self.is_pattern() {
            return Ok(false);
        }
        for m in self.members().await? {
            if !m.timestamps_ordered().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<dyn LogSource>>> {
        self.inner.opened.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Display for LogSet {
    /// As EXPLAIN shows it: the one topic's source (`kafka://host:port/orders`), or
    /// `kafka topics a,b` / `kafka topics matching 'orders-.*'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.lock().values().next().map(|s| s.to_string());
        match (&self.inner.selector, first) {
            (TopicSelector::Named(names), Some(first)) if names.len() == 1 => f.write_str(&first),
            (TopicSelector::Named(names), _) => {
                write!(f, "{} topics {}", self.inner.kind, names.join(","))
            }
            (TopicSelector::Pattern(re), _) => write!(
                f,
                "{} topics matching '{}'",
                self.inner.kind,
                pattern_text(re)
            ),
        }
    }
}

impl From<Arc<dyn LogSource>> for LogSet {
    fn from(source: Arc<dyn LogSource>) -> Self {
        Self::single(source)
    }
}

fn full_match(re: &Regex, name: &str) -> bool {
    re.find(name)
        .is_some_and(|m| m.start() == 0 && m.end() == name.len())
}

/// Parses a `topic.pattern` value: a regular expression the whole topic name must match.
pub fn parse_topic_pattern(value: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{value})$")).map_err(|e| TopicsError::InvalidOption {
        key: "topic.pattern".into(),
        value: value.to_string(),
        reason: format!("not a regular expression: {e}"),
    })
}
