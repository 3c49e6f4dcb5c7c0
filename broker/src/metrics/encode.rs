//! The Prometheus text exposition format (version 0.0.4), written by hand: one family at a
//! time (`# HELP`, `# TYPE`, then its samples), label values escaped as the format requires.
//! Kept small on purpose: a scrape writes a few thousand lines into one `String`.

use std::fmt::Write;

use super::histogram::HistogramSnapshot;

/// The `Content-Type` of what [`Exposition`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric type of the text format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Text being written; call [`Exposition::family`] before the samples of each family.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition { out: String::with_capacity(16 * 1024) }
    }

    /// Starts family `name` (for a counter: its name with `_total`).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        self.out.push(' ');
        write_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// The `_bucket`, `_sum` and `_count` samples of histogram family `name`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, count) in &h.buckets {
            let le = if bound.is_infinite() { "+Inf".to_string() } else { format_float(*bound) };
            self.out.push_str(name);
            self.out.push_str("_bucket");
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {count}");
        }
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn write_value(out: &mut String, v: f64) {
    out.push_str(&format_float(v));
}

fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Histogram;

    #[test]
    fn writes_the_text_format() {
        let mut e = Exposition::new();
        e.family("kafka_x_total", Kind::Counter, "A counter\nwith \\ newline.");
        e.sample("kafka_x_total", &[("topic", "a\"b\\c\nd")], 3.0);
        e.family("g", Kind::Gauge, "g");
        e.sample("g", &[], 0.25);
        e.sample("g", &[("a", "1"), ("b", "2")], f64::NAN);
        let h = Histogram::new(&[1.0, 2.5]);
        h.observe(2.0);
        e.family("t", Kind::Histogram, "t");
        e.histogram("t", &[("request", "Produce")], &h.snapshot());
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP kafka_x_total A counter\\nwith \\\\ newline.\n# TYPE kafka_x_total counter\n\
             kafka_x_total{topic=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP g g\n# TYPE g gauge\ng 0.25\ng{a=\"1\",b=\"2\"} NaN\n\
             # HELP t t\n# TYPE t histogram\n\
             t_bucket{request=\"Produce\",le=\"1\"} 0\nt_bucket{request=\"Produce\",le=\"2.5\"} 1\n\
             t_bucket{request=\"Produce\",le=\"+Inf\"} 1\nt_sum{request=\"Produce\"} 2\nt_count{request=\"Produce\"} 1\n"
        );
    }
}
