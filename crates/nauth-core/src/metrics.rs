//! Counters for `GET <mount>/metrics` (`[metrics] enabled = true`), in the Prometheus text
//! format: logins by result, lockouts, refreshes by result, refresh-token reuse detections,
//! answers by status class, and the password-hashing queue. Each instance counts its own
//! (Prometheus scrapes every instance); counting is one relaxed atomic add, nothing else.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::events::Event;

/// The engine's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    login_success: AtomicU64,
    login_failure: AtomicU64,
    lockouts: AtomicU64,
    refresh_success: AtomicU64,
    refresh_failure: AtomicU64,
    reuse_detected: AtomicU64,
    /// Answers of nauth's routes by status class: 1xx … 5xx.
    responses: [AtomicU64; 5],
}

fn add(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Metrics {
    /// Counts an audited event (logins, lockouts, reuse detections).
    pub(crate) fn event(&self, event: Event) {
        match event {
            Event::LoginSuccess => add(&self.login_success),
            Event::LoginFailed => add(&self.login_failure),
            Event::LoginLocked => add(&self.lockouts),
            Event::SuspiciousActivity => add(&self.reuse_detected),
            _ => {}
        }
    }

    /// Counts one `POST /refresh`.
    pub(crate) fn refresh(&self, ok: bool) {
        add(if ok {
            &self.refresh_success
        } else {
            &self.refresh_failure
        });
    }

    /// Counts one answer of nauth's routes.
    pub(crate) fn response(&self, status: u16) {
        if let Some(c) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.responses.get(usize::from(i)))
        {
            add(c);
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self) -> String {
        let (queued, capacity) = crate::password::queue();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "nauth_logins_total",
            "counter",
            "Password logins by result (a login answered with a challenge counts when it ends).",
            &[
                ("{result=\"success\"}", get(&self.login_success)),
                ("{result=\"failure\"}", get(&self.login_failure)),
            ],
        );
        family(
            "nauth_lockouts_total",
            "counter",
            "Account budgets (password, second factor, verification) that reached their limit.",
            &[("", get(&self.lockouts))],
        );
        family(
            "nauth_refreshes_total",
            "counter",
            "POST /refresh by result.",
            &[
                ("{result=\"success\"}", get(&self.refresh_success)),
                ("{result=\"failure\"}", get(&self.refresh_failure)),
            ],
        );
        family(
            "nauth_refresh_reuse_detected_total",
            "counter",
            "Rotated refresh tokens presented after the reuse interval (the session is revoked).",
            &[("", get(&self.reuse_detected))],
        );
        let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let labels: Vec<String> = classes
            .iter()
            .map(|c| format!("{{class=\"{c}\"}}"))
            .collect();
        let rows: Vec<(&str, u64)> = labels
            .iter()
            .zip(&self.responses)
            .map(|(l, c)| (l.as_str(), get(c)))
            .collect();
        family(
            "nauth_responses_total",
            "counter",
            "Answers of nauth's own routes by status class.",
            &rows,
        );
        family(
            "nauth_hash_queue_depth",
            "gauge",
            "Password hashes waiting for a hashing thread.",
            &[("", queued as u64)],
        );
        family(
            "nauth_hash_queue_capacity",
            "gauge",
            "Password hashes that may wait before a request is answered 503.",
            &[("", capacity as u64)],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::default();
        m.event(Event::LoginFailed);
        m.event(Event::LoginFailed);
        m.event(Event::LoginSuccess);
        m.event(Event::LoginLocked);
        m.event(Event::SuspiciousActivity);
        m.event(Event::Signup);
        m.refresh(true);
        m.refresh(false);
        for s in [200, 201, 401, 503, 99, 600] {
            m.response(s);
        }
        let text = m.render();
        for line in [
            "nauth_logins_total{result=\"success\"} 1",
            "nauth_logins_total{result=\"failure\"} 2",
            "nauth_lockouts_total 1",
            "nauth_refreshes_total{result=\"success\"} 1",
            "nauth_refreshes_total{result=\"failure\"} 1",
            "nauth_refresh_reuse_detected_total 1",
            "nauth_responses_total{class=\"2xx\"} 2",
            "nauth_responses_total{class=\"4xx\"} 1",
            "nauth_responses_total{class=\"5xx\"} 1",
            "# TYPE nauth_hash_queue_depth gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(text.contains("nauth_hash_queue_capacity "));
    }
}
