//! The registry a program's metrics live in, and their text encoding.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    TextEncoder,
};

use crate::Error;

/// The content type of the text [`Registry::render`] and [`encode`] write: the
/// Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why a [`Scrape`] produced no text; the responder answers 500 with it.
pub type ScrapeError = Box<dyn std::error::Error + Send + Sync>;

/// Something that renders its metrics in the text format when scraped.
///
/// [`Registry`] is one; a source that reads its values at scrape time (the
/// exporter's kernel reads) is another.
pub trait Scrape: Send + Sync + 'static {
    /// Every metric, now, in the text format 0.0.4 ([`CONTENT_TYPE`]). May block:
    /// [`serve`](crate::serve) calls it on tokio's blocking pool.
    fn scrape(&self) -> Result<String, ScrapeError>;
}

impl<T: Scrape + ?Sized> Scrape for Arc<T> {
    fn scrape(&self) -> Result<String, ScrapeError> {
        (**self).scrape()
    }
}

/// A set of metrics rendered together. Cloning is cheap and shares the set, so one
/// clone can be served while the program updates its metrics through another.
///
/// Each constructor makes the metric and registers it in one step; a name taken
/// twice or a name the format refuses is an [`Error`].
#[derive(Clone, Debug, Default)]
pub struct Registry {
    inner: prometheus::Registry,
}

impl Registry {
    /// An empty registry; names are taken as given.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// An empty registry whose metric names all start with `prefix_`
    /// (`with_prefix("mptcp_proxy")` and `"bytes_total"` make
    /// `mptcp_proxy_bytes_total`).
    pub fn with_prefix(prefix: &str) -> Registry {
        let inner = prometheus::Registry::new_custom(Some(prefix.to_string()), None)
            // Only an empty prefix is refused; treat it as none.
            .unwrap_or_default();
        Registry { inner }
    }

    /// Registers a collector built elsewhere (any `prometheus` metric or vector).
    pub fn register(&self, collector: Box<dyn Collector>) -> Result<(), Error> {
        self.inner.register(collector)
    }

    fn add<C: Collector + Clone + 'static>(&self, c: C) -> Result<C, Error> {
        self.inner.register(Box::new(c.clone()))?;
        Ok(c)
    }

    /// A counter without labels. Counter names end in `_total`.
    pub fn counter(&self, name: &str, help: &str) -> Result<IntCounter, Error> {
        self.add(IntCounter::with_opts(Opts::new(name, help))?)
    }

    /// A family of counters, one per value of `labels`. Counter names end in `_total`.
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    /// A gauge without labels.
    pub fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, Error> {
        self.add(IntGauge::with_opts(Opts::new(name, help))?)
    }

    /// A family of gauges, one per value of `labels`.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, Error> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    /// A family of histograms with these bucket upper bounds.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> Result<HistogramVec, Error> {
        self.add(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets),
            labels,
        )?)
    }

    /// Every metric with at least one sample, in the text format 0.0.4.
    pub fn render(&self) -> Result<String, Error> {
        encode(&self.inner.gather())
    }
}

impl Scrape for Registry {
    fn scrape(&self) -> Result<String, ScrapeError> {
        Ok(self.render()?)
    }
}

/// `families` in the text format 0.0.4, leaving out those without samples.
pub fn encode(families: &[MetricFamily]) -> Result<String, Error> {
    let families: Vec<MetricFamily> = families
        .iter()
        .filter(|f| !f.get_metric().is_empty())
        .cloned()
        .collect();
    let mut text = String::new();
    TextEncoder::new().encode_utf8(&families, &mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_sorted_and_empty_families_left_out() {
        let r = Registry::with_prefix("mptcp_proxy");
        let c = r
            .counter_vec("bytes_total", "Bytes.", &["route", "direction"])
            .unwrap();
        r.gauge_vec("never_set", "No sample.", &["x"]).unwrap();
        c.with_label_values(&["a", "to_client"]).inc_by(5);
        let text = r.render().unwrap();
        assert!(
            text.contains("mptcp_proxy_bytes_total{direction=\"to_client\",route=\"a\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE mptcp_proxy_bytes_total counter\n"),
            "{text}"
        );
        assert!(!text.contains("never_set"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn a_name_twice_or_a_bad_name_is_an_error() {
        let r = Registry::new();
        r.gauge("g", "A gauge.").unwrap();
        assert!(r.gauge("g", "Again.").is_err());
        assert!(r.counter("no-dashes", "Bad.").is_err());
        assert!(r.render().unwrap().contains("g 0\n"));
    }

    #[test]
    fn an_empty_registry_renders_nothing() {
        assert_eq!(Registry::new().render().unwrap(), "");
        assert_eq!(Registry::new().scrape().unwrap(), "");
    }
}
