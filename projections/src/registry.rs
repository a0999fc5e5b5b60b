//! Every projection a node runs, in the order the API lists them. Adding a
//! projection is its own file plus one line in `all`.

use std::sync::Arc;

use crate::worker::Projection;
use crate::{customer, finance, history, trace};

/// Every projection, in order.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(history::History),
        Arc::new(customer::Customer),
        Arc::new(finance::Finance),
        Arc::new(trace::Trace),
    ]
}

/// The names of every projection, in order.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name()).collect()
}

/// The projection called `name`, if there is one.
pub fn named(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}

/// "history, customer, finance or trace": for messages that list the choices.
pub fn names_listed(last: &str) -> String {
    listed(&names(), last)
}

/// "a, b or c".
pub fn listed(items: &[&str], last: &str) -> String {
    match items.split_last() {
        Some((tail, [])) => (*tail).to_owned(),
        Some((tail, head)) => format!("{} {last} {tail}", head.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_projection_is_found_by_its_name_and_listed_once() {
        let names = names();
        assert_eq!(names, ["history", "customer", "finance", "trace"]);
        for name in &names {
            assert_eq!(named(name).map(|p| p.name()), Some(*name));
        }
        assert!(named("nope").is_none());
        assert_eq!(names_listed("or"), "history, customer, finance or trace");
    }
}
